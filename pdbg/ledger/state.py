"""state.sqlite: one SQLite database for governance state, the budget ledger and the release cache.

Several notebook kernels may use one workspace at once, so every connection runs
in WAL mode with a busy timeout, and every write transaction starts with
``BEGIN IMMEDIATE`` (take the write lock first, then read-check-write).

SQLite's failures that are about the file, not the statement (busy, read-only, disk full,
corrupt, cannot open, I/O error) become :class:`pdbg.errors.StorageError` subclasses, each with
its own one-line message and fix, wherever a state connection runs a statement
(:func:`storage_error`); constraint and programming errors stay ``sqlite3`` errors (bugs).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager

from pdbg.errors import (
    StorageBusy,
    StorageCorrupt,
    StorageError,
    StorageFull,
    StorageReadOnly,
    StorageUnreadable,
)
from pdbg.policy.workspace import Workspace

BUSY_TIMEOUT_MS = 30_000
STATE_FILE = "state.sqlite"

# Primary SQLite result codes (``exc.sqlite_errorcode & 0xFF``) that are about the file.
_PERM, _BUSY, _LOCKED, _READONLY, _IOERR, _CORRUPT, _FULL, _CANTOPEN, _NOTADB = 3, 5, 6, 8, 10, 11, 13, 14, 26
# The same by message, for errors raised without a code (older builds, the module itself).
_BY_MESSAGE = (
    ("database is locked", _BUSY), ("database table is locked", _LOCKED), ("readonly database", _READONLY),
    ("disk i/o error", _IOERR), ("malformed", _CORRUPT), ("database or disk is full", _FULL),
    ("unable to open database", _CANTOPEN), ("file is not a database", _NOTADB),
)


def storage_error(exc: BaseException, file: str = STATE_FILE) -> StorageError | None:
    """The :class:`StorageError` for a SQLite failure about the file itself, else None.

    Decided by SQLite's result code (the message only when there is none); the message of
    the result never quotes SQLite's text or a path, only the file's name in the workspace.
    """
    if not isinstance(exc, sqlite3.Error):
        return None
    code = getattr(exc, "sqlite_errorcode", None)
    primary = code & 0xFF if isinstance(code, int) else None
    if primary is None:
        text = str(exc).lower()
        primary = next((c for m, c in _BY_MESSAGE if m in text), None)
    name = getattr(exc, "sqlite_errorname", None) or ""
    if primary in (_BUSY, _LOCKED):
        return StorageBusy(
            f"{file} is locked by another process (waited {BUSY_TIMEOUT_MS / 1000:g} s)",
            "Another pdbg process (a kernel, the broker, an admin command) holds a long write; "
            "retry when it is done. Nothing was changed.", file=file)
    if primary in (_READONLY, _PERM):
        return StorageReadOnly(
            f"{file} is read-only for this process, so the workspace cannot be changed",
            "Run as the workspace's owner, or make the workspace directory and its files writable "
            "(mode, owner, read-only mount); nothing was changed.", file=file)
    if primary == _FULL:
        return StorageFull(f"the disk holding {file} is full", file=file)
    if primary in (_CORRUPT, _NOTADB):
        return StorageCorrupt(
            f"{file} is damaged: not a valid SQLite database (truncated, overwritten or corrupted)",
            f"Restore {file} from a backup and run `pdbg audit reconcile WS`; do not use the workspace until then.",
            file=file)
    if primary == _CANTOPEN:
        return StorageUnreadable(
            f"{file} cannot be opened (no permission, not a regular file, or its directory is missing)",
            f"Check that {file} and the workspace directory exist and this user may read and write them.",
            file=file)
    if primary == _IOERR:
        return StorageUnreadable(f"a disk I/O error occurred on {file}" + (f" ({name})" if name else ""),
                                 "Check the disk and file system (e.g. `dmesg`), then retry; "
                                 "nothing was changed.", file=file)
    return None


class _StateConnection(sqlite3.Connection):
    """A connection whose statements raise :class:`StorageError` for failures of the file."""

    def execute(self, *args, **kwargs):
        try:
            return super().execute(*args, **kwargs)
        except sqlite3.Error as exc:
            mapped = storage_error(exc)
            if mapped is None:
                raise
        raise mapped

    def executemany(self, *args, **kwargs):
        try:
            return super().executemany(*args, **kwargs)
        except sqlite3.Error as exc:
            mapped = storage_error(exc)
            if mapped is None:
                raise
        raise mapped

    def executescript(self, *args, **kwargs):
        try:
            return super().executescript(*args, **kwargs)
        except sqlite3.Error as exc:
            mapped = storage_error(exc)
            if mapped is None:
                raise
        raise mapped


def open_state(ws: Workspace) -> sqlite3.Connection:
    """Open state.sqlite in autocommit mode (transactions are explicit via :func:`write_tx`).

    Raises a :class:`StorageError` subclass when the file is busy, read-only, full, corrupt or
    cannot be opened.
    """
    try:
        conn = sqlite3.connect(ws.state_path, timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None,
                               factory=_StateConnection)
    except sqlite3.Error as exc:
        mapped = storage_error(exc)
        if mapped is None:
            raise
        raise mapped from None
    try:
        conn.row_factory = sqlite3.Row
        conn.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=FULL")
        conn.execute("PRAGMA foreign_keys=ON")
    except BaseException:
        conn.close()
        raise
    return conn


@contextmanager
def write_tx(conn: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """A write transaction holding the database write lock from its first statement.

    A failure of the file (at BEGIN, inside, or at COMMIT) rolls back and raises a
    :class:`StorageError`; a failing ROLLBACK (SQLite may have rolled back by itself, e.g. on
    a full disk) never hides the error that caused it.
    """
    _run(conn, "BEGIN IMMEDIATE")
    try:
        yield conn
    except BaseException as exc:
        _rollback_quietly(conn)
        mapped = storage_error(exc)
        if mapped is None:
            raise
        raise mapped from None
    try:
        _run(conn, "COMMIT")
    except BaseException:
        _rollback_quietly(conn)
        raise


def _run(conn: sqlite3.Connection, sql: str) -> None:
    try:
        conn.execute(sql)
    except sqlite3.Error as exc:   # a plain connection (not from open_state)
        mapped = storage_error(exc)
        if mapped is None:
            raise
        raise mapped from None


def _rollback_quietly(conn: sqlite3.Connection) -> None:
    if not conn.in_transaction:
        return
    try:
        conn.execute("ROLLBACK")
    except (sqlite3.Error, StorageError):
        pass


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
