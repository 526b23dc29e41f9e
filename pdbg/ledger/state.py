"""state.sqlite: one SQLite database for governance state, the budget ledger and the release cache.

Several notebook kernels may use one workspace at once, so every connection runs
in WAL mode with a busy timeout, and every write transaction starts with
``BEGIN IMMEDIATE`` (take the write lock first, then read-check-write).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager

from pdbg.policy.workspace import Workspace

BUSY_TIMEOUT_MS = 30_000


def open_state(ws: Workspace) -> sqlite3.Connection:
    """Open state.sqlite in autocommit mode (transactions are explicit via :func:`write_tx`)."""
    conn = sqlite3.connect(ws.state_path, timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None)
    conn.row_factory = sqlite3.Row
    conn.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=FULL")
    conn.execute("PRAGMA foreign_keys=ON")
    return conn


@contextmanager
def write_tx(conn: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """A write transaction holding the database write lock from its first statement."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield conn
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    else:
        conn.execute("COMMIT")


def ensure_schema(conn: sqlite3.Connection, ddl: str) -> None:
    """Apply idempotent DDL (CREATE TABLE IF NOT EXISTS …) owned by a layer."""
    conn.executescript(ddl)


class StateStore:
    """A component that owns tables in state.sqlite: opens a connection and ensures its schema.

    Subclasses set ``SCHEMA``; use as a context manager so connections are closed promptly
    (several kernels share the database).
    """

    SCHEMA = ""

    def __init__(self, ws: Workspace) -> None:
        self.ws = ws
        self.conn = open_state(ws)
        ensure_schema(self.conn, self.SCHEMA)

    def close(self) -> None:
        self.conn.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()
