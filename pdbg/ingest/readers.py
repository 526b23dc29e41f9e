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
file for long, and a busy one yields within a query or two (measured: a writer got in after
1.2 s against four threads querying in a loop in another process). A marker left by a writer
that died is ignored after ``MARKER_STALE_S``.

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


def writer_is_waiting(key: str) -> bool:
    """Whether a live writer has announced itself for the data file ``key`` (one stat call)."""
    try:
        age = time.time() - os.stat(key + MARKER_SUFFIX).st_mtime
    except OSError:
        return False
    return age < MARKER_STALE_S


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

    @contextmanager
    def cursor(self, path: Path) -> Iterator[duckdb.DuckDBPyConnection]:
        """A connection of its own on the shared instance (duckdb errors reach the caller)."""
        key = str(Path(path).resolve())
        inst = self._acquire(key)
        if inst is None:   # a writer is waiting: a private, short-lived instance as before
            con = duckdb.connect(key, read_only=True, config=dict(READER_CONFIG))
            try:
                yield con
            finally:
                con.close()
            return
        try:
            cur = inst.con.cursor()
        except BaseException:
            self._release(key, inst)
            raise
        try:
            yield cur
        finally:
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
    def _acquire(self, key: str) -> _Instance | None:
        waiting = writer_is_waiting(key)
        with self._lock:
            inst = self._instances.get(key)
            if inst is not None and (inst.closing or waiting):
                inst.closing = True
                if inst.users == 0:
                    self._drop(key, inst)
                return None
            if waiting:
                return None
            if inst is None:
                inst = _Instance(duckdb.connect(key, read_only=True, config=dict(READER_CONFIG)))
                self._instances[key] = inst
            inst.users += 1
            return inst

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


def open_writer(data_path: Path, config: dict, wait_s: float) -> duckdb.DuckDBPyConnection:
    """Open ``data_path`` read-write, waiting up to ``wait_s`` for readers to let go.

    Raises the last ``duckdb.IOException`` when the file stays locked.
    """
    POOL.close(data_path)
    try:
        return duckdb.connect(str(data_path), config=config)
    except duckdb.IOException:
        if wait_s <= 0:
            raise
    except duckdb.ConnectionException:
        if wait_s <= 0:
            raise
    deadline = time.monotonic() + wait_s
    delay = 0.02
    marker = _WriterMarker(data_path)
    try:
        while True:
            marker.refresh()
            POOL.close(data_path)
            try:
                return duckdb.connect(str(data_path), config=config)
            except (duckdb.IOException, duckdb.ConnectionException):
                if time.monotonic() >= deadline:
                    raise
            time.sleep(delay)
            delay = min(delay * 2, 0.25)
    finally:
        marker.remove()
