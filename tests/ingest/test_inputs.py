"""Ingest input edge cases: each gets its own one-line refusal and changes nothing.

An ingest of 0 rows must not bump the data version (that would invalidate every cached answer,
so the next identical question would be charged again) nor write an audit record.
"""

from __future__ import annotations

import json
import os
import threading

import pytest

from pdbg.errors import IngestError
from pdbg.governance import admin
from pdbg.governance.principals import os_actor
from pdbg.ingest import datasets, load
from pdbg.ledger.audit import AuditLog

from .conftest import raw_rows, write_jsonl


def state(ws):
    return datasets.data_version(ws, "requests"), [i.rows for i in datasets.list_datasets(ws)]


def refused(ws, files, *words):
    before = state(ws)
    with pytest.raises(IngestError) as ei:
        load.ingest(ws, "requests", files)
    err = ei.value
    assert "\n" not in err.message and err.hint
    assert str(ws.root) not in err.message and "/tmp" not in err.message   # no server path
    for w in words:
        assert w in err.message, err.message
    assert state(ws) == before, "a refused ingest changed the dataset or its data version"
    return err


def test_empty_files_refused(registered, tmp_path):
    for name in ("empty.jsonl", "empty.csv", "empty.parquet"):
        p = tmp_path / name
        p.write_bytes(b"")
        refused(registered, [p], name, "empty")


def test_header_only_csv_refused(registered, tmp_path):
    cols = ["ts", "user_id", "session_id", "service", "endpoint", "region", "status", "error_code",
            "latency_ms", "bytes_out", "user_agent", "client_ip", "message"]
    p = tmp_path / "header.csv"
    p.write_text(",".join(cols) + "\n")
    refused(registered, [p], "header.csv", "no rows")


def test_blank_jsonl_refused(registered, tmp_path):
    p = tmp_path / "blank.jsonl"
    p.write_text("\n\n  \n")
    refused(registered, [p], "blank.jsonl")


@pytest.mark.parametrize("unit", [None, "", "   "])
def test_file_without_any_privacy_unit_refused(registered, tmp_path, unit):
    rows = [{**r, "user_id": unit} for r in raw_rows()]
    p = write_jsonl(tmp_path / "nounit.jsonl", rows)
    refused(registered, [p], "nounit.jsonl", "user_id")


def test_blank_units_are_rows_without_unit(registered, tmp_path):
    rows = raw_rows()
    rows[0] = {**rows[0], "user_id": "  "}
    rep = load.ingest(registered, "requests", [write_jsonl(tmp_path / "some.jsonl", rows)])
    assert rep.rows_out == 2 and rep.rows_without_unit == 2


def test_zero_row_ingest_never_bumps_the_version_with_good_files(registered, tmp_path, raw_file):
    empty = tmp_path / "later.jsonl"
    empty.write_text("")
    refused(registered, [raw_file, empty], "later.jsonl")


def test_directory_refused(registered, tmp_path):
    d = tmp_path / "dir.jsonl"
    d.mkdir()
    refused(registered, [d], "dir.jsonl", "directory")


def _within(fn, seconds):
    out = {}

    def run():
        try:
            out["v"] = fn()
        except BaseException as exc:  # noqa: BLE001
            out["e"] = exc

    t = threading.Thread(target=run, daemon=True)
    t.start()
    t.join(seconds)
    assert not t.is_alive(), "ingest blocked on a special file"
    return out


def test_fifo_refused_without_blocking(registered, tmp_path):
    f = tmp_path / "pipe.jsonl"
    os.mkfifo(f)
    out = _within(lambda: refused(registered, [f], "pipe.jsonl", "regular file"), 20)
    assert "e" not in out, out.get("e")


def test_device_refused(registered, tmp_path):
    link = tmp_path / "zero.jsonl"
    link.symlink_to("/dev/zero")
    out = _within(lambda: refused(registered, [link], "zero.jsonl", "regular file"), 20)
    assert "e" not in out, out.get("e")
    out = _within(lambda: refused(registered, ["/dev/null"], "regular file"), 20)
    assert "e" not in out, out.get("e")


def test_missing_file_message(registered, tmp_path):
    refused(registered, [tmp_path / "nope.jsonl"], "nope.jsonl", "does not exist")


@pytest.fixture
def admin_ws(tmp_path, monkeypatch, policy):
    """A registered workspace for the admin layer, and an empty input file."""
    from pdbg.governance.init import init_workspace
    from pdbg.policy.workspace import MIRROR_ENV

    monkeypatch.delenv(MIRROR_ENV, raising=False)
    ws = init_workspace(tmp_path / "ws", audit_mirror=tmp_path / "m")
    datasets.register(ws, policy)
    p = tmp_path / "empty.jsonl"
    p.write_text("")
    return ws, p


def test_admin_refusal_writes_no_ingest_record(admin_ws):
    ws, p = admin_ws
    n = len(list(AuditLog(ws).records()))
    with pytest.raises(IngestError):
        admin.ingest(ws, "requests", [p], os_actor())
    assert not [r for r in list(AuditLog(ws).records())[n:] if r["action"] == "ingest"]
    assert datasets.data_version(ws, "requests") == 0


def test_undecodable_jsonl_is_one_line(registered, tmp_path):
    p = tmp_path / "bad.jsonl"
    p.write_bytes(b'{"user_id": "u1", "message": "\xff\xfe secret"}\n')
    err = refused(registered, [p], "bad.jsonl")
    assert "secret" not in err.message
    p2 = tmp_path / "trunc.jsonl"
    p2.write_text(json.dumps(raw_rows()[0])[:40] + "\n")
    refused(registered, [p2], "trunc.jsonl")


def test_unreadable_file_refused(registered, raw_file, monkeypatch):
    real = os.access
    monkeypatch.setattr(os, "access", lambda p, mode, *a, **k: False if str(p) == str(raw_file) else real(p, mode))
    refused(registered, [raw_file], "raw.jsonl", "permission denied")


def test_a_single_path_is_one_file(registered, raw_file):
    rep = load.ingest(registered, "requests", raw_file)          # a Path, not a list
    assert rep.files == ["raw.jsonl"] and rep.rows_out == 3
    rep = load.ingest(registered, "requests", str(raw_file))     # a str, not its characters
    assert rep.files == ["raw.jsonl"] and rep.data_version == 2


@pytest.mark.parametrize("single", [False, True])
def test_a_bad_path_is_refused_before_any_intent_is_written(admin_ws, tmp_path, single):
    """An empty file or a directory is refused by the admin layer before it records an intent:
    the log shows no ingest.intent and no settlement, only the refusal the caller sees."""
    ws, p = admin_ws
    n = len(list(AuditLog(ws).records()))
    with pytest.raises(IngestError):
        admin.ingest(ws, "requests", str(p) if single else [p, tmp_path], os_actor())
    assert not [r for r in list(AuditLog(ws).records())[n:] if r["action"].startswith("ingest")]
