"""Tamper-evident audit log: hash-chained JSON Lines, RFC 6962 tree heads, signed
checkpoints kept twice.

Public API (stable; other layers call it)::

    AuditLog(ws).append(actor, action, *, severity="info", **fields) -> dict   # raises AuditError
    AuditLog(ws).preflight()                                                   # raises AuditError
    AuditLog(ws).records(case=None) -> list[dict]
    verify(ws, *, all_signatures=False) -> VerifyReport
    show(ws, case=None) -> list[dict]

Files: ``WS/audit/audit.jsonl`` (records), ``WS/audit/checkpoints.jsonl`` (signed tree
heads), ``WS/audit/head.json`` (appender cache), ``WS/audit/quarantine/`` (torn tails),
``MIRROR/<workspace_id>/`` (checkpoint copies + first-seen key). Formats:
:mod:`pdbg.ledger.audit.encoding`; append protocol: :mod:`pdbg.ledger.audit.log`;
checks: :mod:`pdbg.ledger.audit.verify`.
"""

from __future__ import annotations

import json
from collections.abc import Sequence

from pdbg.ledger.audit.encoding import GENESIS, canonical
from pdbg.ledger.audit.log import AppendStatus, append_entries, preflight
from pdbg.ledger.audit.show import show
from pdbg.ledger.audit.verify import VerifyReport, verify
from pdbg.policy.workspace import Workspace


class AuditLog:
    """Handle on a workspace's audit log. Cheap to create; holds no open files."""

    def __init__(self, ws: Workspace) -> None:
        self.ws = ws
        self.mirror_error: str | None = None   # set by the last append when the mirror is behind

    def append(self, actor: str, action: str, *, severity: str = "info", **fields) -> dict:
        """Append one record and a signed checkpoint; return the record as stored.

        Raises AuditError when *nothing* was recorded (lock, disk, unreachable mirror,
        damaged log or key, bad field): the caller must then release nothing (fail closed).
        When it returns, the record and its local signed checkpoint are durable (fsynced):
        the caller's effect may proceed (a charge is committed). If only the copy to the
        mirror failed, ``self.mirror_error`` says so (the mirror is *behind*; the next
        append copies a newer checkpoint, which covers this record; `pdbg audit verify`
        warns). Field names ``seq``, ``ts``, ``actor``, ``action``, ``severity``,
        ``prev``, ``hash`` are reserved, and secret-like names (``token``, ``secret``,
        ``password``, …) are refused.
        """
        status = AppendStatus()
        rec = append_entries(self.ws, [(actor, action, severity, fields)], status)[0]
        self.mirror_error = status.mirror_error
        return rec

    def preflight(self) -> None:
        """Raise AuditError unless an append could be written now (key, lock, files,
        mirror, sound tail); writes nothing. State changes call it before their effect."""
        preflight(self.ws)

    def append_many(self, entries: Sequence[tuple[str, str, dict]]) -> list[dict]:
        """Append several records under one lock with one checkpoint (group commit).

        Each entry is ``(actor, action, fields)``; ``fields`` may hold ``severity``.
        Why: one fsync round and one signature per batch instead of per record, for
        callers that produce many records at once (bulk receipts, imports). All or
        nothing is *attempted*; on AuditError treat the whole batch as not recorded.
        """
        batch = []
        for actor, action, fields in entries:
            fields = dict(fields)
            severity = fields.pop("severity", "info")
            batch.append((actor, action, severity, fields))
        if not batch:
            return []
        status = AppendStatus()
        out = append_entries(self.ws, batch, status)
        self.mirror_error = status.mirror_error
        return out

    def records(self, case: str | None = None) -> list[dict]:
        """All complete records in order (a torn last line is skipped), optionally only
        those whose ``case`` field equals ``case``. Reads without the lock: records
        are append-only, and only whole lines are returned."""
        try:
            data = self.ws.audit_path.read_bytes()
        except FileNotFoundError:
            return []
        out = []
        for line in data.split(b"\n")[:-1]:
            if not line:
                continue
            try:
                rec = json.loads(line)
            except ValueError:
                continue
            if isinstance(rec, dict) and (case is None or rec.get("case") == case):
                out.append(rec)
        return out


__all__ = ["AuditLog", "VerifyReport", "verify", "show", "canonical", "GENESIS"]
