"""One shared, locked-down, read-only DuckDB instance per data file per process.

Why: opening data.duckdb costs 10-20 ms (DuckDB builds a database instance each time),
and a fresh instance starts with a cold buffer pool, so a per-query open more than doubled
the time of a small DP release. Queries, registry reads and the broker's threads therefore
take a *cursor* (a connection of their own: own transaction, own interrupt, own registered
views) on one instance that lingers for ``LINGER_S`` after its last use.

Why it lingers only briefly, and how writers get in: DuckDB lets one process write a file
only when no other process has it open. A writer (ingest, purge, dataset add) goes through
:func:`open_writer`: it closes this process's idle instance and, while it retries, keeps
a marker file next to the data file fresh. Readers in every process see the marker on their
next use and stop reusing their instance (closing it as soon as it is idle), and an idle
instance closes by itself after ``LINGER_S``. So an idle notebook or broker never holds the
file for long, and a busy one yields within a query or two. While the marker is fresh, or a
writer holds the file, a new cursor *waits* (at most ``READER_WAIT_S``, then
:class:`pdbg.errors.DataBusy`, raised before any private row is read, so nothing is charged)
instead of opening the file again: readers that kept opening private instances while a writer
waited starved it (3 of 6 admin operations failed after 15 s with six kernels querying;
``benchmarks/writer_starvation.py``). A thread that already holds a cursor on the instance
gets another one without waiting (it would otherwise wait for a writer that waits for it).
A marker left by a writer that died is ignored once its process is gone, or after
``MARKER_STALE_S``.

Failures to open the file are told apart (:func:`open_error`): busy, corrupt (not a DuckDB
file, a checksum failure, a truncated file), read-only (for a writer), full, unreadable. Only
busy is waited for; the others are raised at once as :class:`pdbg.errors.StorageError`
subclasses that name the file, never its path or DuckDB's message.

The instance is opened with :data:`READER_CONFIG` only (external access off, extensions never
installed or loaded, configuration locked): every cursor inherits the lock-down.
"""

from __future__ import annotations

import atexit
import os
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import duckdb

from pdbg.errors import (
    DataBusy,
    StorageCorrupt,
    StorageError,
    StorageFull,
    StorageReadOnly,
    StorageUnreadable,
)

# The one configuration every read-only connection to data.duckdb uses (the query engine
# included). DuckDB refuses two configurations of one file in one process at a time, so a
# registry read must never open the file read-write or with other settings.
READER_CONFIG = {
    "enable_external_access": False,
    "autoinstall_known_extensions": False,
    "autoload_known_extensions": False,
    "lock_configuration": True,
    "memory_limit": "4GB",
}

LINGER_S = 2.0
MARKER_SUFFIX = ".writer-waiting"
# A marker not refreshed for this long is ignored: its writer died (e.g. SIGKILL) while waiting.
# Waiting writers rewrite it on every retry, so a live one is never older than a fraction of a second.
MARKER_STALE_S = 30.0
# How long a new cursor waits for a waiting or writing writer before DataBusy (nothing charged).
READER_WAIT_S = 5.0
DATA_FILE = "data.duckdb"


def writer_is_waiting(key: str) -> bool:
    """Whether a live writer has announced itself for the data file ``key`` (one stat call;
    the marker is read only when it exists, to ignore a writer that died)."""
    marker = key + MARKER_SUFFIX
    try:
        age = time.time() - os.stat(marker).st_mtime
    except OSError:
        return False
    if age >= MARKER_STALE_S:
        return False
    try:
        pid = int(Path(marker).read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        pass
    return True


# What DuckDB says when it cannot open a file, by kind (matched, never shown: it quotes paths).
_OPEN_FAILURES = (
    ("busy", ("could not set lock on file", "conflicting lock")),
    ("corrupt", ("not a valid duckdb database", "corrupt database file", "checksum", "could not read enough bytes",
                 "serialization error", "invalid block", "failed to deserialize")),
    ("full", ("no space left on device",)),
    ("read-only", ("permission denied", "read-only file system", "operation not permitted")),
    ("unreadable", ("is a directory", "database does not exist", "no such file", "cannot open file",
                    "could not open file", "could not read", "i/o error")),
)


def open_error_kind(exc: BaseException) -> str | None:
    """``busy``, ``corrupt``, ``full``, ``read-only``, ``unreadable`` for a failure to open a data
    file, or None when it is none of those (e.g. a configuration clash inside this process)."""
    if not isinstance(exc, duckdb.Error):
        return None
    text = str(exc).lower()
    return next((kind for kind, needles in _OPEN_FAILURES if any(n in text for n in needles)), None)


def open_error(exc: BaseException, *, writing: bool) -> StorageError | None:
    """The :class:`StorageError` for a failure to open data.duckdb (None: not a file problem)."""
    kind = open_error_kind(exc)
    f = DATA_FILE
    if kind == "busy":
        return DataBusy(f"{f} is busy: an ingest, purge or dataset change is writing it",
                        "Retry in a moment; nothing was charged.", file=f)
    if kind == "corrupt":
        return StorageCorrupt(
            f"{f} is damaged: not a valid DuckDB database, truncated, or a checksum failed",
            f"Restore {f} from a backup (or rebuild it: register the datasets and ingest again); "
            "nothing was read or changed.", file=f)
    if kind == "full":
        return StorageFull(f"the disk holding {f} is full", file=f)
    if kind == "read-only" and writing:
        return StorageReadOnly(f"{f} is read-only for this process, so the data cannot be changed",
                               "Run as the workspace's owner, or make the workspace writable "
                               "(mode, owner, read-only mount); nothing was changed.", file=f)
    if kind in ("read-only", "unreadable"):
        return StorageUnreadable(f"{f} cannot be opened by this process (permissions, not a regular file, "
                                 "or an I/O error)",
                                 f"Check that {f} exists, is a regular file and this user may read it.", file=f)
    return None


def _busy_for(waited: float) -> DataBusy:
    return DataBusy(f"{DATA_FILE} is busy: an ingest, purge or dataset change is writing it "
                    f"(this query waited {waited:.0f} s)",
                    "Retry in a moment; nothing was charged.", file=DATA_FILE)


class _Instance:
    __slots__ = ("con", "users", "idle_since", "timer_armed", "closing")

    def __init__(self, con: duckdb.DuckDBPyConnection) -> None:
        self.con = con
        self.users = 0
        self.idle_since = 0.0
        self.timer_armed = False
        self.closing = False


class ReaderPool:
    """Shared read-only instances keyed by data file; thread-safe."""

    def __init__(self, linger_s: float = LINGER_S) -> None:
        self.linger_s = linger_s
        self._lock = threading.Lock()
        self._instances: dict[str, _Instance] = {}
        self._held = threading.local()   # per thread: key -> cursors this thread holds

    @contextmanager
    def cursor(self, path: Path, wait_s: float | None = None) -> Iterator[duckdb.DuckDBPyConnection]:
        """A connection of its own on the shared instance.

        Waits up to ``wait_s`` (default :data:`READER_WAIT_S`) while a writer waits for or holds
        the file, then raises :class:`DataBusy`; a corrupt, unreadable or otherwise unusable file
        raises the matching :class:`StorageError` at once. Other duckdb errors reach the caller.
        """
        key = str(Path(path).resolve())
        inst = self._acquire(key, READER_WAIT_S if wait_s is None else wait_s)
        held = self._held.__dict__
        try:
            cur = inst.con.cursor()
        except BaseException:
            self._release(key, inst)
            raise
        held[key] = held.get(key, 0) + 1
        try:
            yield cur
        finally:
            held[key] -= 1
            try:
                cur.close()
            finally:
                self._release(key, inst)

    def close(self, path: Path) -> bool:
        """Close this process's instance of ``path`` now if idle (else when its last user ends).

        Returns True when no instance of the file stays open in this process.
        """
        key = str(Path(path).resolve())
        with self._lock:
            inst = self._instances.get(key)
            if inst is None:
                return True
            inst.closing = True
            if inst.users == 0:
                self._drop(key, inst)
                return True
            return False

    def close_all(self) -> None:
        """Close every idle instance (the others close when their last user ends)."""
        with self._lock:
            for key, inst in list(self._instances.items()):
                inst.closing = True
                if inst.users == 0:
                    self._drop(key, inst)

    # -- internals ---------------------------------------------------------------
    def _acquire(self, key: str, wait_s: float) -> _Instance:
        start = time.monotonic()
        delay = 0.01
        while True:
            if self._held.__dict__.get(key):   # this thread holds a cursor already: never wait for it
                with self._lock:
                    inst = self._instances.get(key)
                    if inst is not None:
                        inst.users += 1
                        return inst
            waiting = writer_is_waiting(key)
            with self._lock:
                inst = self._instances.get(key)
                if inst is not None and (inst.closing or waiting):
                    inst.closing = True   # no new cursors: close it as soon as its last user ends
                    if inst.users == 0:
                        self._drop(key, inst)
                elif not waiting:
                    if inst is None:
                        try:
                            inst = _Instance(duckdb.connect(key, read_only=True, config=dict(READER_CONFIG)))
                        except duckdb.Error as exc:
                            mapped = open_error(exc, writing=False)
                            if mapped is None:
                                raise
                            if not isinstance(mapped, DataBusy):
                                raise mapped from None
                            inst = None   # a writer holds the file: wait for it below
                        else:
                            self._instances[key] = inst
                    if inst is not None:
                        inst.users += 1
                        return inst
            waited = time.monotonic() - start
            if waited >= wait_s:
                raise _busy_for(waited)
            time.sleep(min(delay, max(wait_s - waited, 0.0)))
            delay = min(delay * 2, 0.1)

    def _release(self, key: str, inst: _Instance) -> None:
        with self._lock:
            inst.users -= 1
            if inst.users:
                return
            if inst.closing or writer_is_waiting(key):
                self._drop(key, inst)
                return
            inst.idle_since = time.monotonic()
            if inst.timer_armed:
                return
            inst.timer_armed = True
        self._arm(key, inst, self.linger_s)

    def _arm(self, key: str, inst: _Instance, delay: float) -> None:
        timer = threading.Timer(delay, self._expire, args=(key, inst))
        timer.daemon = True
        timer.start()

    def _expire(self, key: str, inst: _Instance) -> None:
        """Close the instance once it has been idle for ``linger_s``; re-arm if it was used since."""
        with self._lock:
            if self._instances.get(key) is not inst:
                inst.timer_armed = False
                return
            if inst.users == 0:
                left = inst.idle_since + self.linger_s - time.monotonic()
                if left <= 0:
                    inst.timer_armed = False
                    self._drop(key, inst)
                    return
            else:
                left = self.linger_s
        self._arm(key, inst, max(left, 0.01))

    def _drop(self, key: str, inst: _Instance) -> None:
        if self._instances.get(key) is inst:
            del self._instances[key]
        try:
            inst.con.close()
        except duckdb.Error:
            pass

    def _forget_after_fork(self) -> None:
        # DuckDB instances are not fork-safe: a child starts with an empty pool and never
        # touches (or closes) the parent's instances.
        self._lock = threading.Lock()
        _LEAKED.extend(self._instances.values())
        self._instances = {}
        self._held = threading.local()


_LEAKED: list[_Instance] = []
POOL = ReaderPool()
atexit.register(POOL.close_all)   # close before interpreter teardown, never from a dying thread
if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=POOL._forget_after_fork)


class _WriterMarker:
    """The marker file a waiting writer keeps fresh; removed when the writer is in or gives up."""

    def __init__(self, data_path: Path) -> None:
        self.path = Path(str(Path(data_path).resolve()) + MARKER_SUFFIX)
        self.written = False

    def refresh(self) -> None:
        try:   # rewritten on every retry: fresh for readers, and back if another writer removed it
            self.path.write_text(f"{os.getpid()}\n")
            self.written = True
        except OSError:
            pass

    def remove(self) -> None:
        if self.written:
            try:
                self.path.unlink()
            except FileNotFoundError:
                pass


def _connect_writer(data_path: Path, config: dict) -> duckdb.DuckDBPyConnection:
    """One attempt; a failure that waiting cannot fix (corrupt, read-only, full, unreadable) is
    raised at once as a StorageError, never retried until the deadline and then called "locked"."""
    try:
        return duckdb.connect(str(data_path), config=config)
    except duckdb.Error as exc:
        mapped = open_error(exc, writing=True)
        if mapped is None or isinstance(mapped, DataBusy):
            raise
    raise mapped


def open_writer(data_path: Path, config: dict, wait_s: float) -> duckdb.DuckDBPyConnection:
    """Open ``data_path`` read-write, waiting up to ``wait_s`` for readers to let go.

    Raises the last ``duckdb.IOException`` when the file stays locked, and a
    :class:`StorageError` subclass at once when the file is corrupt, read-only, full or unreadable.
    While it waits, a fresh marker keeps every process's new readers waiting (see the module
    docstring), so the file frees up as soon as the queries in flight end.
    """
    POOL.close(data_path)
    try:
        return _connect_writer(data_path, config)
    except (duckdb.IOException, duckdb.ConnectionException):
        if wait_s <= 0:
            raise
    deadline = time.monotonic() + wait_s
    delay = 0.01
    marker = _WriterMarker(data_path)
    try:
        while True:
            marker.refresh()
            POOL.close(data_path)
            try:
                return _connect_writer(data_path, config)
            except (duckdb.IOException, duckdb.ConnectionException):
                if time.monotonic() >= deadline:
                    raise
            time.sleep(delay)
            delay = min(delay * 2, 0.1)   # readers are held off: the file frees up within a query
    finally:
        marker.remove()
