"""A readable history: the records an auditor reads, secrets never shown.

The log should never hold a secret (appends refuse secret-named fields), but this
view redacts such names anyway, in case an older record or a hand edit has one.
"""

from __future__ import annotations

from pdbg.ledger.audit.log import FORBIDDEN_FIELDS
from pdbg.policy.workspace import Workspace

HEADER_FIELDS = ("seq", "ts", "actor", "action", "severity")
_CHAIN_FIELDS = frozenset({"prev", "hash"})
REDACTED = "<redacted>"


def redact(value, depth: int = 0):
    """A copy with any secret-named key's value replaced by ``<redacted>``."""
    if depth > 20:
        return REDACTED
    if isinstance(value, dict):
        return {
            k: (REDACTED if isinstance(k, str) and k.lower() in FORBIDDEN_FIELDS else redact(v, depth + 1))
            for k, v in value.items()
        }
    if isinstance(value, list):
        return [redact(v, depth + 1) for v in value]
    return value


def show(ws: Workspace, case: str | None = None) -> list[dict]:
    """One row per record (optionally only those with ``case == case``): the header
    fields plus ``fields`` (everything else but the chain hashes, redacted)."""
    from pdbg.ledger.audit import AuditLog

    rows = []
    for rec in AuditLog(ws).records(case=case):
        row = {k: rec.get(k) for k in HEADER_FIELDS}
        row["fields"] = redact({k: v for k, v in rec.items() if k not in HEADER_FIELDS and k not in _CHAIN_FIELDS})
        rows.append(row)
    return rows
