"""Writers are not starved by readers (issue 13 item 6).

Readers back off while a writer waits (bounded: DataBusy after ``READER_WAIT_S``, before any
row is read), and a writer gets data.duckdb within its wait against reader *processes*
querying in a loop. benchmarks/writer_starvation.py measures the same with six Session kernels.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time

import duckdb
import pytest

from pdbg.errors import DataBusy
from pdbg.ingest import readers


@pytest.fixture
def ws(registry_ws):
    ws = registry_ws(1, "CREATE TABLE t AS SELECT range AS i FROM range(2000000)")
    yield ws
    readers.POOL.close_all()


def _marker(ws):
    return ws.data_path.parent / (ws.data_path.name + readers.MARKER_SUFFIX)


def test_new_reader_waits_while_a_writer_waits_then_proceeds(ws):
    marker = _marker(ws)
    marker.write_text(f"{os.getpid()}\n")      # a live writer announced itself
    threading.Timer(0.4, marker.unlink).start()
    t = time.monotonic()
    with readers.POOL.cursor(ws.data_path) as con:
        assert con.execute("SELECT count(*) FROM t").fetchone() == (2000000,)
    assert time.monotonic() - t >= 0.35


def test_reader_wait_is_bounded(ws, monkeypatch):
    monkeypatch.setattr(readers, "READER_WAIT_S", 0.3)
    marker = _marker(ws)
    marker.write_text(f"{os.getpid()}\n")
    try:
        t = time.monotonic()
        with pytest.raises(DataBusy):
            with readers.POOL.cursor(ws.data_path):
                pytest.fail("a cursor was handed out while a writer waited")
        assert 0.25 <= time.monotonic() - t < 2
    finally:
        marker.unlink()


def test_marker_of_a_dead_writer_is_ignored(ws):
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True).stdout.strip()
    _marker(ws).write_text(f"{dead}\n")
    t = time.monotonic()
    with readers.POOL.cursor(ws.data_path) as con:
        con.execute("SELECT 1").fetchall()
    assert time.monotonic() - t < 0.3


def test_nested_cursor_of_a_thread_does_not_wait_for_a_writer(ws):
    """A thread holding a cursor must not wait for a writer that waits for that very cursor."""
    with readers.POOL.cursor(ws.data_path) as outer:
        _marker(ws).write_text(f"{os.getpid()}\n")
        try:
            t = time.monotonic()
            with readers.POOL.cursor(ws.data_path) as inner:
                inner.execute("SELECT 1").fetchall()
            assert time.monotonic() - t < 0.3
            outer.execute("SELECT 1").fetchall()
        finally:
            _marker(ws).unlink()


READER = r"""
import json, os, sys, time
from pathlib import Path
from pdbg.ingest.readers import POOL
path, stop, out = sys.argv[1:4]
done, errors = 0, {}
while not os.path.exists(stop):
    try:
        with POOL.cursor(Path(path)) as c:
            c.execute("SELECT sum(i) FROM t WHERE i % 7 = 3").fetchall()
        done += 1
        if done == 1:
            Path(out + ".ready").write_text("")
    except Exception as exc:
        errors[type(exc).__name__] = errors.get(type(exc).__name__, 0) + 1
Path(out).write_text(json.dumps({"done": done, "errors": errors}))
"""


def test_writer_gets_in_against_reader_processes_querying_in_a_loop(ws, tmp_path):
    stop = tmp_path / "stop"
    outs = [tmp_path / f"r{i}.json" for i in range(4)]
    procs = [subprocess.Popen([sys.executable, "-c", READER, str(ws.data_path), str(stop), str(o)]) for o in outs]
    took, starved = [], 0
    try:
        deadline = time.monotonic() + 30
        while not all(os.path.exists(str(o) + ".ready") for o in outs):
            assert time.monotonic() < deadline, "readers did not start"
            time.sleep(0.05)
        for _ in range(3):
            t = time.monotonic()
            try:
                con = readers.open_writer(ws.data_path, {}, wait_s=4.0)
            except duckdb.IOException:   # still locked by readers after the wait: starved
                starved += 1
                continue
            finally:
                took.append(round(time.monotonic() - t, 2))
            con.execute("UPDATE _pdbg_datasets SET data_version = data_version + 1")
            con.close()
            time.sleep(0.5)
    finally:
        stop.write_text("")
        for p in procs:
            p.wait(timeout=30)
    results = [json.loads(o.read_text()) for o in outs]
    assert starved == 0 and max(took) < 4.0, (took, results)
    assert all(r["done"] > 1 for r in results), results
    # readers met the writer only as DataBusy (a free refusal), never another error
    assert all(set(r["errors"]) <= {"DataBusy"} for r in results), results
