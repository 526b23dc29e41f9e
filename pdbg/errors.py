"""The whole pdbg exception tree.

Every error a user can meet is a :class:`PdbgError` carrying a ``hint``: what to
do next. Messages name the problem and never contain a private value, token or
key (DESIGN.md invariant 7)::

    PdbgError
    ├── WorkspaceError     workspace missing, already exists, wrong format version
    ├── PolicyError        dataset policy invalid or violated
    ├── IngestError        an ingest could not complete (dataset left unchanged)
    ├── AccessDenied       no role, grant, or token for the action
    ├── BudgetExceeded     a release would spend more than remains (nothing charged)
    ├── QueryRejected      SQL outside the DP subset (names the rule and a fix)
    ├── EngineError        the backend failed; message sanitized
    ├── QueryFailed        a query failed after it read private rows: charged and audited
    ├── AuditError         the audit log could not be written or does not verify
    └── StorageError       a workspace file (state.sqlite, data.duckdb) cannot be used; nothing changed
        ├── StorageBusy        another process holds it (DataBusy: a query met a writer; also an EngineError)
        ├── StorageReadOnly    it cannot be written (file mode, owner, read-only mount)
        ├── StorageFull        the disk (or a size limit) is full
        ├── StorageCorrupt     it is not a valid database any more (truncated, overwritten, bad checksum)
        └── StorageUnreadable  it cannot be opened or read (permissions, not a file, I/O error)
"""

from __future__ import annotations


class PdbgError(Exception):
    """Root of every pdbg error; ``hint`` says what to do next."""

    default_hint = "See `pdbg --help`."

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint or self.default_hint

    def __str__(self) -> str:
        return f"{self.message} (hint: {self.hint})"

    def to_dict(self) -> dict:
        """A JSON-safe form used by the CLI's --json output and the broker API."""
        return {"error": type(self).__name__, "message": self.message, "hint": self.hint}


class WorkspaceError(PdbgError):
    default_hint = "Create one with `pdbg init WS` or point at an existing workspace."


class PolicyError(PdbgError):
    default_hint = "Fix the dataset policy YAML and register it again with `pdbg dataset add`."


class IngestError(PdbgError):
    default_hint = "Fix the input file; the dataset was left exactly as it was."


class AccessDenied(PdbgError):
    default_hint = "Request access with `pdbg access request` and ask an approver to approve it."


class BudgetExceeded(PdbgError):
    """A release would cost more than remains; nothing was charged."""

    default_hint = "Ask for a smaller epsilon, reuse a cached answer, or request more budget."

    def __init__(
        self,
        message: str,
        hint: str | None = None,
        *,
        requested: float | None = None,
        remaining: float | None = None,
    ) -> None:
        super().__init__(message, hint)
        self.requested = requested
        self.remaining = remaining

    def to_dict(self) -> dict:
        d = super().to_dict()
        d.update(requested=self.requested, remaining=self.remaining)
        return d


class QueryRejected(PdbgError):
    """SQL outside the DP subset. ``rule`` is a stable identifier of the broken rule."""

    default_hint = "Rewrite the query as an aggregate over the dataset (COUNT, SUM, AVG, quantiles)."

    def __init__(self, message: str, hint: str | None = None, *, rule: str = "unsupported") -> None:
        super().__init__(message, hint)
        self.rule = rule

    def to_dict(self) -> dict:
        d = super().to_dict()
        d["rule"] = self.rule
        return d


class EngineError(PdbgError):
    default_hint = "The query engine failed; the message was sanitized. Simplify the query or retry."


class QueryFailed(PdbgError):
    """A query failed after the engine started reading private rows.

    Such a failure is a release (whether it happens can depend on the data), so its charge is
    committed and a ``query.failed`` audit record written (DESIGN.md invariant 10). The
    message is fixed per ``rule`` and never carries engine text or a value; the exception
    is raised outside the failing frame, so it holds no traceback frames with data.
    """

    default_hint = "The charge stands (the query read data). Simplify the query, narrow its window, or retry."

    def __init__(self, message: str, hint: str | None = None, *, rule: str = "internal") -> None:
        super().__init__(message, hint)
        self.rule = rule
        self.charged = True

    def to_dict(self) -> dict:
        d = super().to_dict()
        d.update(rule=self.rule, charged=True)
        return d


class AuditError(PdbgError):
    default_hint = "Run `pdbg audit verify WS`; nothing was released while the audit log was unavailable."


class StorageError(PdbgError):
    """A workspace file could not be used; what was being done did not happen.

    ``file`` is the file's name inside the workspace (``state.sqlite``, ``data.duckdb``), never
    a path; ``kind`` tells busy / read-only / full / corrupt / unreadable apart, since each
    needs a different fix. Messages never quote the underlying library's text.
    """

    kind = "unreadable"
    default_hint = "Check the workspace's disk and files; nothing was changed."

    def __init__(self, message: str, hint: str | None = None, *, file: str = "") -> None:
        super().__init__(message, hint)
        self.file = file

    def to_dict(self) -> dict:
        d = super().to_dict()
        d.update(kind=self.kind, file=self.file)
        return d


class StorageBusy(StorageError):
    kind = "busy"
    default_hint = "Another pdbg process is writing the workspace; retry in a moment. Nothing was changed."


class StorageReadOnly(StorageError):
    kind = "read-only"
    default_hint = ("Run as the workspace's owner, or make the workspace writable (file mode, owner, "
                    "read-only mount); nothing was changed.")


class StorageFull(StorageError):
    kind = "full"
    default_hint = "Free disk space on the workspace's file system, then retry; nothing was changed."


class StorageCorrupt(StorageError):
    kind = "corrupt"
    default_hint = ("Restore the file from a backup (the audit log tells what happened since); "
                    "do not write to the workspace until then.")


class StorageUnreadable(StorageError):
    kind = "unreadable"
    default_hint = "Check the file's permissions and the disk (e.g. `dmesg` for I/O errors); nothing was changed."


class DataBusy(StorageBusy, EngineError):
    """A query met a writer (ingest, purge, dataset add) holding or waiting for data.duckdb.

    Raised before any private row is read, so nothing is charged. An :class:`EngineError` too,
    so the broker answers it like the engine's other transient failures.
    """

    default_hint = "An ingest or purge is writing the data; retry in a moment. Nothing was charged."


__all__ = [
    "PdbgError",
    "WorkspaceError",
    "PolicyError",
    "IngestError",
    "AccessDenied",
    "BudgetExceeded",
    "QueryRejected",
    "EngineError",
    "QueryFailed",
    "AuditError",
    "StorageError",
    "StorageBusy",
    "StorageReadOnly",
    "StorageFull",
    "StorageCorrupt",
    "StorageUnreadable",
    "DataBusy",
]
