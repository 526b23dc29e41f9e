"""Faults at the ingest boundary, told apart and turned into one-line errors with a fix.

Why here: DuckDB raises ``IOException`` alike for a lock held by another process, a file
that is not a database any more, a read-only file and a full disk, and its messages quote
server paths (and, for casts, values). Each of those needs a different fix, so we classify
by the text and the errno, and never show the text itself.

Kinds: ``busy``, ``corrupt``, ``read-only``, ``full``, ``unreadable``.
"""

from __future__ import annotations

import errno

from pdbg.errors import IngestError

_FULL = (errno.ENOSPC, getattr(errno, "EDQUOT", -1), errno.EFBIG)
_READ_ONLY = (errno.EROFS, errno.EACCES, errno.EPERM)

_MARKERS = (
    ("busy", ("could not set lock", "conflicting lock", "database is locked", "resource temporarily unavailable")),
    ("full", ("no space left", "disk quota", "file too large", "database or disk is full", "out of space")),
    ("read-only", ("read-only file system", "permission denied", "read only", "read-only",
                   "operation not permitted")),
    ("corrupt", ("not a valid duckdb database", "could not read enough bytes", "checksum", "corrupt",
                 "malformed", "serialization", "invalid database", "truncated")),
)

HINTS = {
    "busy": "Another process holds data.duckdb; close notebooks or servers running long queries, then retry.",
    "full": "Free disk space on the workspace's file system, then retry; nothing was changed.",
    "read-only": "Run as the workspace's owner or make the workspace writable (file mode, owner, read-only "
                 "mount); nothing was changed.",
    "corrupt": "data.duckdb is damaged: restore it from a backup (the audit log tells what happened since) "
               "and do not write to the workspace until then.",
    "unreadable": "Check the workspace's files and disk (e.g. `dmesg` for I/O errors); nothing was changed.",
}

WHAT = {
    "busy": "is locked by another process",
    "full": "the disk is full",
    "read-only": "cannot be written (read-only)",
    "corrupt": "is damaged (not a valid database)",
    "unreadable": "could not be read or written",
}


def kind_of(exc: BaseException) -> str:
    """Classify an OSError or a DuckDB/SQLite error into one of the kinds above."""
    if isinstance(exc, OSError) and exc.errno is not None:
        if exc.errno in _FULL:
            return "full"
        if exc.errno in _READ_ONLY:
            return "read-only"
        if exc.errno in (errno.EAGAIN, errno.EBUSY):
            return "busy"
    text = str(exc).lower()
    for kind, markers in _MARKERS:
        if any(m in text for m in markers):
            return kind
    if type(exc).__name__ in ("SerializationException", "InternalException", "FatalException"):
        return "corrupt"
    return "unreadable"


def ingest_error(exc: BaseException, what: str, *, input_file: bool = False) -> IngestError:
    """``what`` (already path-free) plus the kind of fault; never the library's message.

    ``input_file``: the fault is about an input file (its hint says to fix the input),
    else about data.duckdb.
    """
    kind = kind_of(exc)
    if input_file:
        reason = "permission denied" if kind == "read-only" else \
            (getattr(exc, "strerror", None) or type(exc).__name__).lower()
        hint = ("Make the input file readable by the account running pdbg." if kind == "read-only" else
                "Check the input file and the disk it is on; the dataset was left unchanged.")
    else:
        reason = WHAT[kind] if kind == "full" else f"data.duckdb {WHAT[kind]}"
        hint = HINTS[kind]
    err = IngestError(f"{what}: {reason}", hint)
    err.kind = kind
    return err
