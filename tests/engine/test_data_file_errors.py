"""data.duckdb failures are told apart (issue 13): busy vs corrupt vs unreadable, never a path.

Each case uses a real broken file or a real second process holding the write lock. A corrupt
file used to be reported as "busy" to queries and, to writers, as "locked by another process"
after the full writer wait.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest

from pdbg.engine.duckdb import DuckDBEngine
from pdbg.errors import DataBusy, EngineError, StorageCorrupt, StorageError, StorageUnreadable
from pdbg.ingest import readers


@pytest.fixture
def ws(registry_ws):
    ws = registry_ws(1, "CREATE TABLE t AS SELECT range AS i, 'x' || range AS s FROM range(200000)")
    yield ws
    readers.POOL.close_all()


def _open(ws):
    with DuckDBEngine(ws).connect() as con:
        return con.execute("SELECT count(*) FROM t").fetchall()


def _clean(err: StorageError, ws) -> None:
    assert "\n" not in err.message and err.hint and err.file == "data.duckdb"
    assert str(ws.root) not in err.message and str(ws.root) not in err.hint
    assert "busy" not in err.message or isinstance(err, DataBusy)


def _damage(path, how: str) -> None:
    data = bytearray(path.read_bytes())
    if how == "garbage":
        path.write_bytes(os.urandom(len(data)))
    elif how == "truncated":
        path.write_bytes(bytes(data[:10_000]))
    elif how == "checksum":   # the headers stay valid; every data block's bytes change
        for off in range(12288 + 200, len(data), 4096):
            data[off:off + 64] = os.urandom(64)
        path.write_bytes(bytes(data))


@pytest.mark.parametrize("how", ["garbage", "truncated", "checksum"])
def test_corrupt_data_file_is_corrupt_not_busy(ws, how):
    _damage(ws.data_path, how)
    with pytest.raises(StorageCorrupt) as err:
        _open(ws)
    assert "damaged" in err.value.message
    _clean(err.value, ws)


def test_directory_in_place_of_data_file_is_unreadable(ws):
    ws.data_path.unlink()
    ws.data_path.mkdir()
    with pytest.raises(StorageUnreadable) as err:
        _open(ws)
    _clean(err.value, ws)


def test_writer_refuses_corrupt_file_at_once_not_after_waiting(ws):
    from pdbg.ingest.datasets import open_admin

    _damage(ws.data_path, "garbage")
    t = time.monotonic()
    with pytest.raises(StorageCorrupt) as err:
        open_admin(ws, wait_s=5)
    assert time.monotonic() - t < 2
    assert "locked" not in err.value.message
    _clean(err.value, ws)


def test_writer_holding_the_file_is_busy_after_a_bounded_wait(ws, monkeypatch):
    holder = subprocess.Popen(
        [sys.executable, "-c",
         "import duckdb, time\n"
         f"c = duckdb.connect({str(ws.data_path)!r}); print('held', flush=True); time.sleep(60)"],
        stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        monkeypatch.setattr(readers, "READER_WAIT_S", 0.5)
        t = time.monotonic()
        with pytest.raises(DataBusy) as err:
            _open(ws)
        took = time.monotonic() - t
    finally:
        holder.kill()
        holder.wait()
        holder.stdout.close()
    assert 0.4 <= took < 3
    assert isinstance(err.value, EngineError)          # the broker's transient engine failure
    assert "nothing was charged" in err.value.hint
    _clean(err.value, ws)
    assert _open(ws) == [(200000,)]                    # the writer is gone: queries work again
