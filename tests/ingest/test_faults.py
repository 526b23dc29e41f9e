"""Faults at the ingest boundary: busy, corrupt, read-only and full are different one-line
errors with a fix; no library text, no path, no value; the dataset is left unchanged."""

from __future__ import annotations

import errno
import time

import duckdb
import pytest

from pdbg.errors import PdbgError
from pdbg.ingest import datasets, faults, load

from .conftest import raw_rows, write_jsonl


def _one_line(err: PdbgError, ws) -> str:
    assert "\n" not in err.message and err.hint
    assert str(ws.root) not in err.message and "/tmp" not in err.message
    assert "IO Error" not in err.message
    return err.message


def test_corrupt_data_file_is_not_reported_busy(registered, raw_file):
    from pdbg.ingest.readers import POOL

    POOL.close(registered.data_path)
    registered.data_path.write_bytes(b"\x00garbage" * 2048)
    t0 = time.monotonic()
    with pytest.raises(PdbgError) as ei:
        load.ingest(registered, "requests", [raw_file])
    assert time.monotonic() - t0 < 10, "a damaged file is not waited for like a lock"
    msg = _one_line(ei.value, registered)
    assert "damaged" in msg and "busy" not in msg and "locked" not in msg


@pytest.mark.parametrize("text,word", [
    ('IO Error: Cannot open file "/srv/ws/data.duckdb": Read-only file system', "read-only"),
    ('IO Error: Could not write file "/srv/ws/data.duckdb": No space left on device', "full"),
    ('IO Error: Could not set lock on file "/srv/ws/data.duckdb": Conflicting lock is held', "lock"),
])
def test_open_failures_told_apart(registered, raw_file, monkeypatch, text, word):
    def fail(*a, **k):
        raise duckdb.IOException(text)

    monkeypatch.setattr(datasets, "open_writer", fail)
    with pytest.raises(PdbgError) as ei:
        load.ingest(registered, "requests", [raw_file])
    msg = _one_line(ei.value, registered)
    assert word in msg and "/srv" not in msg


@pytest.mark.parametrize("exc,word", [
    (duckdb.IOException('Could not write file "/srv/ws/data.duckdb.wal": No space left on device'), "full"),
    (OSError(errno.ENOSPC, "No space left on device", "/srv/ws/x"), "full"),
    (OSError(errno.EROFS, "Read-only file system", "/srv/ws/x"), "read-only"),
    (duckdb.IOException("Corrupt database file: block checksum mismatch"), "damaged"),
])
def test_faults_during_ingest_roll_back(registered, raw_file, exc, word):
    before = datasets.data_version(registered, "requests")

    def boom(con):
        raise exc

    with pytest.raises(PdbgError) as ei:
        load.ingest(registered, "requests", [raw_file], _after_insert=boom)
    msg = _one_line(ei.value, registered)
    assert word in msg and "/srv" not in msg
    assert datasets.data_version(registered, "requests") == before
    assert [i.rows for i in datasets.list_datasets(registered)] == [0]


def test_kinds_have_distinct_messages():
    msgs = {k: faults.ingest_error(duckdb.IOException(t), "ingest failed").message for k, t in [
        ("busy", "Could not set lock on file"), ("corrupt", "not a valid DuckDB database file"),
        ("read-only", "Read-only file system"), ("full", "No space left on device")]}
    assert len(set(msgs.values())) == 4


def test_csv_not_utf8_is_one_line(registered, tmp_path):
    cols = ["ts", "user_id", "session_id", "service", "endpoint", "region", "status", "error_code",
            "latency_ms", "bytes_out", "user_agent", "client_ip", "message"]
    p = tmp_path / "bad.csv"
    row = ["2024-05-01T10:00:00Z", "u1", "s1", "api", "/x", "eu-west", "200", "", "1", "1", "curl/8",
           "1.2.3.4", "topsecret"]
    p.write_bytes((",".join(cols) + "\n" + ",".join(row) + "\n").encode() + b"u2,\xff\xfe topsecret\n")
    with pytest.raises(PdbgError) as ei:
        load.ingest(registered, "requests", [p])
    msg = _one_line(ei.value, registered)
    assert "topsecret" not in msg and "bad.csv" in msg


def test_corrupt_parquet_and_gzip_are_one_line(registered, tmp_path):
    pq = tmp_path / "bad.parquet"
    pq.write_bytes(b"PAR1" + b"\x00" * 100 + b"PAR1")
    gz = tmp_path / "bad.jsonl.gz"
    gz.write_bytes(b"\x1f\x8b\x08\x00garbage")
    for p in (pq, gz):
        with pytest.raises(PdbgError) as ei:
            load.ingest(registered, "requests", [p])
        assert p.name in _one_line(ei.value, registered)


def test_a_good_ingest_still_works_after_refusals(registered, tmp_path):
    rep = load.ingest(registered, "requests", [write_jsonl(tmp_path / "ok.jsonl", raw_rows())])
    assert rep.rows_out == 3 and rep.data_version == 1


@pytest.mark.parametrize("err,word", [(errno.ENOSPC, "full"), (errno.EROFS, "read-only")])
def test_register_cannot_write_policy_file(ws, policy, monkeypatch, err, word):
    from pathlib import Path

    real = Path.write_text

    def fail(self, *a, **k):
        if self.name.endswith(".yaml.tmp"):
            raise OSError(err, "nope", str(self))
        return real(self, *a, **k)

    monkeypatch.setattr(Path, "write_text", fail)
    with pytest.raises(PdbgError) as ei:
        datasets.register(ws, policy)
    msg = _one_line(ei.value, ws)
    assert word in msg and "not registered" in msg
    monkeypatch.setattr(Path, "write_text", real)
    assert datasets.register(ws, policy)[1] == "created"


def test_register_engine_failure_is_one_line(ws, policy, monkeypatch):
    real = datasets._create_table_sql

    def bad(p):
        return real(p) + " /* */ , garbage"   # a DuckDB error inside the registration transaction

    monkeypatch.setattr(datasets, "_create_table_sql", bad)
    with pytest.raises(PdbgError) as ei:
        datasets.register(ws, policy)
    _one_line(ei.value, ws)
    monkeypatch.setattr(datasets, "_create_table_sql", real)
    assert datasets.register(ws, policy)[1] == "created"
