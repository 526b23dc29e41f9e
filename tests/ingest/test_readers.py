"""Shared read-only instances and writers: real processes, the real data file.

Readers keep one instance of data.duckdb per process (opening costs 10-20 ms per query);
a writer must still get in within a query or two, and must give up cleanly if it cannot.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
import threading
import time

import pytest

from pdbg.engine.duckdb import DuckDBEngine
from pdbg.errors import IngestError
from pdbg.ingest import datasets
from pdbg.ingest.readers import MARKER_SUFFIX, POOL


@pytest.fixture
def ws(registry_ws):
    return registry_ws(1)


def _marker(ws):
    return ws.data_path.parent / (ws.data_path.name + MARKER_SUFFIX)


READER = textwrap.dedent("""
    import sys, time
    from pdbg.engine.duckdb import DuckDBEngine
    from pdbg.errors import EngineError
    from pdbg.policy.workspace import Workspace
    eng = DuckDBEngine(Workspace(sys.argv[1]))
    print("ready", flush=True)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:          # a busy notebook: one query after another
        try:
            if eng.data_version("t") == 2:
                print("saw 2", flush=True)
                break
        except EngineError:
            pass                                 # the writer holds the file right now
        time.sleep(0.01)
""")


def test_writer_gets_in_while_another_process_keeps_querying(ws):
    reader = subprocess.Popen([sys.executable, "-c", READER, str(ws.root)], stdout=subprocess.PIPE, text=True)
    try:
        assert reader.stdout.readline().strip() == "ready"
        time.sleep(0.3)                          # the reader holds its shared instance by now
        t0 = time.monotonic()
        con = datasets.open_admin(ws, wait_s=10)
        waited = time.monotonic() - t0
        con.execute("UPDATE _pdbg_datasets SET data_version = 2")
        con.close()
        assert waited < 5, f"the writer waited {waited:.1f} s for a busy reader"
        assert not _marker(ws).exists()
        out, _ = reader.communicate(timeout=30)
        assert "saw 2" in out                    # and the reader sees the new data afterwards
    finally:
        reader.kill()
        reader.wait()
        reader.stdout.close()


HOLDER = textwrap.dedent("""
    import sys, time, duckdb
    con = duckdb.connect(sys.argv[1])            # someone else's read-write connection
    print("holding", flush=True)
    time.sleep(30)
""")


def test_writer_gives_up_with_a_clear_error_and_leaves_no_marker(ws):
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(ws.data_path)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "holding"
        t0 = time.monotonic()
        with pytest.raises(IngestError) as err:
            datasets.open_admin(ws, wait_s=0.5)
        assert 0.5 <= time.monotonic() - t0 < 5
        assert "locked" in err.value.message and err.value.hint
        assert not _marker(ws).exists()
    finally:
        holder.kill()
        holder.wait()
        holder.stdout.close()


def test_in_process_writer_closes_the_idle_instance_at_once(ws):
    DuckDBEngine(ws).data_version("t")           # the pool now holds the file
    t0 = time.monotonic()
    con = datasets.open_admin(ws, wait_s=5)
    assert time.monotonic() - t0 < POOL.linger_s  # no waiting for the linger
    con.execute("UPDATE _pdbg_datasets SET data_version = 3")
    con.close()
    assert DuckDBEngine(ws).data_version("t") == 3


def test_concurrent_threads_get_their_own_cursors(ws):
    """The broker runs releases in threads: each has its own transaction on the shared instance."""
    eng = DuckDBEngine(ws)
    errors, seen = [], []

    def work():
        try:
            for _ in range(20):
                with eng.connect() as con:
                    con.execute("BEGIN TRANSACTION")
                    seen.append(con.execute("SELECT data_version FROM _pdbg_datasets").fetchall()[0][0])
                    con.execute("COMMIT")
        except Exception as exc:  # noqa: BLE001 - collected and asserted below
            errors.append(exc)

    threads = [threading.Thread(target=work) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == [] and seen == [1] * 160
    assert str(ws.data_path.resolve()) in POOL._instances   # one shared instance served them all


def test_waiting_writer_marker_stops_reuse(ws, monkeypatch):
    """While a writer waits, readers neither reuse nor keep their instance, nor open another:
    they wait (bounded) and then refuse as busy (issue 13: private instances starved writers)."""
    from pdbg.errors import DataBusy
    from pdbg.ingest import readers

    eng = DuckDBEngine(ws)
    eng.data_version("t")
    key = str(ws.data_path.resolve())
    assert key in POOL._instances
    _marker(ws).write_text("1\n")
    monkeypatch.setattr(readers, "READER_WAIT_S", 0.2)
    try:
        with pytest.raises(DataBusy):
            eng.data_version("t")
        assert key not in POOL._instances        # and the shared one was closed
    finally:
        _marker(ws).unlink()
    eng.data_version("t")
    assert key in POOL._instances


def test_a_dead_writers_marker_is_ignored_once_stale(ws):
    """A writer killed while waiting must not leave every reader on slow private instances."""
    import os

    from pdbg.ingest.readers import MARKER_STALE_S

    eng = DuckDBEngine(ws)
    key = str(ws.data_path.resolve())
    _marker(ws).write_text("1\n")
    old = time.time() - MARKER_STALE_S - 1
    os.utime(_marker(ws), (old, old))
    try:
        eng.data_version("t")
        assert key in POOL._instances           # stale: shared instance reused as usual
    finally:
        _marker(ws).unlink()


def test_workspace_recreated_at_the_same_path_in_one_process(ws, tmp_path, monkeypatch):
    """A notebook that queried a workspace, then deletes and re-creates it, must not trip over
    the reader instance it still holds for that path."""
    import shutil

    from pdbg.governance.init import init_workspace
    from pdbg.policy.workspace import MIRROR_ENV

    monkeypatch.delenv(MIRROR_ENV, raising=False)
    DuckDBEngine(ws).data_version("t")
    assert str(ws.data_path.resolve()) in POOL._instances
    shutil.rmtree(ws.root)
    shutil.rmtree(tmp_path / "mirror", ignore_errors=True)
    again = init_workspace(ws.root, audit_mirror=tmp_path / "mirror2")
    assert again.data_path.exists()
