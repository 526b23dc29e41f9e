"""state.sqlite failures become one-line StorageError subclasses, each with its own fix (issue 13).

Every case breaks a real file (or really holds the lock from another process); only the read-only
case injects a ``?mode=ro`` URI, because the tests run as root and root ignores file modes
(tests/cli/test_errors_cli.py also runs the real CLI as an unprivileged user on a root-owned
workspace).
"""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import time

import pytest

from pdbg.dp.accounting import Cost
from pdbg.errors import (
    BudgetExceeded,
    StorageBusy,
    StorageCorrupt,
    StorageError,
    StorageFull,
    StorageReadOnly,
    StorageUnreadable,
)
from pdbg.ledger import state
from pdbg.ledger.budget import Ledger


def _ledger_with_account(ws) -> None:
    with Ledger(ws) as led:
        led.open_account("g1", accounting="pure", epsilon=1.0, delta=0.0)


def _assert_clean(err: StorageError, ws) -> None:
    assert "\n" not in err.message and err.hint
    assert str(ws.root) not in err.message and str(ws.root) not in err.hint
    assert err.file == "state.sqlite"


def test_locked_by_another_process_is_busy(ws, monkeypatch):
    _ledger_with_account(ws)
    holder = subprocess.Popen(
        [sys.executable, "-c",
         "import sqlite3, sys, time\n"
         f"c = sqlite3.connect({str(ws.state_path)!r}, isolation_level=None)\n"
         "c.execute('BEGIN IMMEDIATE'); print('held', flush=True); time.sleep(30)"],
        stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        monkeypatch.setattr(state, "BUSY_TIMEOUT_MS", 200)
        with Ledger(ws) as led, pytest.raises(StorageBusy) as err:
            led.open_account("g2", accounting="pure", epsilon=1.0, delta=0.0)
    finally:
        holder.kill()
        holder.wait()
        holder.stdout.close()
    assert "locked by another process" in err.value.message
    _assert_clean(err.value, ws)


def test_read_only_is_not_reported_as_locked(ws, monkeypatch):
    _ledger_with_account(ws)
    real_connect = sqlite3.connect

    def read_only(path, *args, **kwargs):   # what a read-only mount or another owner's file gives
        return real_connect(f"file:{path}?mode=ro", *args, uri=True, **kwargs)

    monkeypatch.setattr(state.sqlite3, "connect", read_only)
    with pytest.raises(StorageReadOnly) as err:
        with Ledger(ws) as led:
            led.open_account("g2", accounting="pure", epsilon=1.0, delta=0.0)
    assert "read-only" in err.value.message and "locked" not in err.value.message
    _assert_clean(err.value, ws)


@pytest.mark.parametrize("damage", ["garbage", "truncated"])
def test_corrupt_state_file(ws, damage):
    _ledger_with_account(ws)
    size = ws.state_path.stat().st_size
    if damage == "garbage":
        ws.state_path.write_bytes(os.urandom(size))
    else:
        with open(ws.state_path, "r+b") as f:   # the header survives, the pages do not
            f.truncate(1024)
    with pytest.raises(StorageCorrupt) as err:
        with Ledger(ws) as led:
            led.balance("g1")
    assert "damaged" in err.value.message
    _assert_clean(err.value, ws)


def test_disk_full_rolls_back_and_says_full(ws, monkeypatch):
    """SQLITE_FULL from SQLite's own pager: the database may not grow past its current size."""
    _ledger_with_account(ws)
    real_open = state.open_state

    def capped(w):
        conn = real_open(w)
        pages = conn.execute("PRAGMA page_count").fetchone()[0]
        conn.execute(f"PRAGMA max_page_count = {pages}")
        return conn

    monkeypatch.setattr(state, "open_state", capped)
    with Ledger(ws) as led:
        with pytest.raises(StorageFull) as err:
            with state.write_tx(led.conn) as c:
                c.execute("CREATE TABLE filler (x BLOB)")
                for _ in range(200):
                    c.execute("INSERT INTO filler VALUES (randomblob(4000))")
        assert not led.conn.in_transaction   # rolled back; the connection stays usable
        assert led.balance("g1").spent_epsilon == 0
    assert "full" in err.value.message
    _assert_clean(err.value, ws)


def test_directory_in_place_of_the_file_is_unreadable(ws):
    ws.state_path.mkdir()
    with pytest.raises(StorageUnreadable) as err:
        state.open_state(ws)
    assert "cannot be opened" in err.value.message
    _assert_clean(err.value, ws)


def test_kinds_have_different_messages(ws):
    msgs = {}
    for code in (5, 8, 13, 11, 14, 10):
        exc = sqlite3.OperationalError("x")
        exc.sqlite_errorcode = code
        mapped = state.storage_error(exc)
        msgs[mapped.kind, mapped.message] = mapped.hint
    assert len({m for _, m in msgs}) == 6 and len(set(msgs.values())) >= 5
    assert state.storage_error(sqlite3.IntegrityError("CHECK constraint failed")) is None


def test_constraint_refusal_inside_reserve_is_budget_exceeded(ws, monkeypatch):
    """Defence in depth: if the explicit check ever let an overspend through, the CHECK constraint's
    refusal is reported as BudgetExceeded (nothing charged), not as a raw sqlite3 error."""
    _ledger_with_account(ws)
    monkeypatch.setattr(Ledger, "_check_fits", staticmethod(lambda row, cost: None))
    with Ledger(ws) as led:
        with pytest.raises(BudgetExceeded):
            led.reserve(["g1"], Cost(rho=None, epsilon=5.0), holder="t")
        assert led.balance("g1").reserved_units == 0


def test_busy_wait_is_the_configured_timeout(ws, monkeypatch):
    """The busy error arrives after the busy timeout, not at once and not never."""
    _ledger_with_account(ws)
    other = sqlite3.connect(ws.state_path, isolation_level=None)
    other.execute("BEGIN IMMEDIATE")
    try:
        monkeypatch.setattr(state, "BUSY_TIMEOUT_MS", 300)
        with Ledger(ws) as led:
            t = time.monotonic()
            with pytest.raises(StorageBusy):
                with state.write_tx(led.conn):
                    pass
            assert 0.2 < time.monotonic() - t < 5
            assert not led.conn.in_transaction
    finally:
        other.close()
