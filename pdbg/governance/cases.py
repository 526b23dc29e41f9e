"""Cases (incidents): the unit that access is granted for and that a postmortem describes.

A case records when the incident was detected, acknowledged, contained and resolved
(UTC), because the postmortem's TTD / TTA / TTC are computed from these stamps and
must not depend on anyone's local time zone. A case is *open* until it is closed
(``close=True``); being resolved does not close it, since the postmortem
investigation usually continues after the fix. Only open cases accept new access
requests or break-glass.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timezone

from pdbg import clock
from pdbg.errors import PdbgError
from pdbg.governance.init import gov_db
from pdbg.governance.principals import check
from pdbg.ledger.audit import AuditLog
from pdbg.ledger.state import write_tx
from pdbg.policy.workspace import Workspace

CASE_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
SEVERITIES = ("SEV1", "SEV2", "SEV3", "SEV4")
MILESTONES = ("detected", "acknowledged", "contained", "resolved")


@dataclass(frozen=True)
class Case:
    id: str
    title: str
    severity: str | None
    status: str
    opened: datetime
    opened_by: str
    detected: datetime | None
    acknowledged: datetime | None
    contained: datetime | None
    resolved: datetime | None
    closed: datetime | None

    @property
    def is_open(self) -> bool:
        return self.status == "open"

    def to_dict(self) -> dict:
        def f(ts):
            return clock.iso(ts) if ts else None

        return {
            "case": self.id, "title": self.title, "severity": self.severity, "status": self.status,
            "opened": f(self.opened), "opened_by": self.opened_by,
            **{m: f(getattr(self, m)) for m in MILESTONES},
            "closed": f(self.closed),
        }


def parse_when(text: str | datetime | None) -> datetime | None:
    """``now``, an ISO-8601 string, or a datetime → aware UTC. A naive time is taken as UTC."""
    if text is None:
        return None
    if isinstance(text, datetime):
        ts = text
    elif text.strip().lower() == "now":
        return clock.now().astimezone(timezone.utc)
    else:
        try:
            ts = clock.parse_iso(text.strip())
        except ValueError:
            raise PdbgError(f"{text!r} is not an ISO-8601 time",
                            "Use e.g. 2026-11-03T14:05:00Z, or `now`.") from None
    if ts.tzinfo is None:
        ts = ts.replace(tzinfo=timezone.utc)
    return ts.astimezone(timezone.utc)


def _to_case(row) -> Case:
    def p(v):
        return clock.parse_iso(v) if v else None

    return Case(row["id"], row["title"], row["severity"], row["status"], p(row["opened"]), row["opened_by"],
                p(row["detected"]), p(row["acknowledged"]), p(row["contained"]), p(row["resolved"]),
                p(row["closed"]))


def _check_order(stamps: dict[str, datetime | None]) -> None:
    """Milestones that are set must be in order; otherwise TTD/TTA/TTC would be negative."""
    seen: list[tuple[str, datetime]] = [(m, stamps[m]) for m in MILESTONES if stamps.get(m)]
    for (a, ta), (b, tb) in zip(seen, seen[1:]):
        if tb < ta:
            raise PdbgError(f"{b} ({clock.iso(tb)}) is before {a} ({clock.iso(ta)})",
                            f"Milestones go {' <= '.join(MILESTONES)}; fix the earlier or later stamp.")


def _normalize_severity(severity: str | None) -> str | None:
    if severity is None:
        return None
    s = severity.upper()
    if s not in SEVERITIES:
        raise PdbgError(f"unknown severity {severity!r}", f"Use one of: {', '.join(SEVERITIES)}.")
    return s


def get_case(ws: Workspace, case: str) -> Case:
    """The case, with its milestones as aware UTC datetimes (postmortems read this)."""
    with gov_db(ws) as conn:
        row = conn.execute("SELECT * FROM gov_cases WHERE id = ?", (case,)).fetchone()
    if row is None:
        raise PdbgError(f"no case named {case!r}", "Open it with `pdbg case open WS CASE --title TEXT`.")
    return _to_case(row)


def list_cases(ws: Workspace) -> list[Case]:
    with gov_db(ws) as conn:
        rows = conn.execute("SELECT * FROM gov_cases ORDER BY opened, id").fetchall()
    return [_to_case(r) for r in rows]


def open_case(ws: Workspace, actor: str, case: str, title: str, *, severity: str | None = None,
              detected: str | datetime | None = None) -> Case:
    if not CASE_RE.match(case or ""):
        raise PdbgError(f"case id {case!r} is not allowed",
                        "Use 1-64 characters: letters, digits, '.', '_', '-' (e.g. INC-7).")
    if not (title or "").strip():
        raise PdbgError("a case needs a non-empty title", "Pass --title TEXT.")
    sev = _normalize_severity(severity)
    det = parse_when(detected)
    check(ws, actor, "case.open", f"case {case}")
    with gov_db(ws) as conn, write_tx(conn):
        if conn.execute("SELECT 1 FROM gov_cases WHERE id = ?", (case,)).fetchone():
            raise PdbgError(f"case {case!r} already exists", "Use `pdbg case update` to change it.")
        conn.execute(
            "INSERT INTO gov_cases (id, title, severity, status, opened, opened_by, detected) "
            "VALUES (?, ?, ?, 'open', ?, ?, ?)",
            (case, title.strip(), sev, clock.iso(), actor, clock.iso(det) if det else None),
        )
        AuditLog(ws).append(actor, "case.open", case=case, title=title.strip(), case_severity=sev,
                            detected=clock.iso(det) if det else None)
    return get_case(ws, case)


def update_case(ws: Workspace, actor: str, case: str, *, title: str | None = None, severity: str | None = None,
                close: bool = False, **milestones: str | datetime | None) -> Case:
    """Set milestones (``detected=…, acknowledged=…, contained=…, resolved=…``), title, severity, or close.

    Only the given fields change; the audit record lists exactly what changed.
    """
    unknown = set(milestones) - set(MILESTONES)
    if unknown:
        raise PdbgError(f"unknown case field(s): {', '.join(sorted(unknown))}", f"Use {', '.join(MILESTONES)}.")
    if title is not None and not title.strip():
        raise PdbgError("a case title may not be empty", "Pass a non-empty --title.")
    sev = _normalize_severity(severity)
    new = {m: parse_when(v) for m, v in milestones.items() if v is not None}
    check(ws, actor, "case.update", f"case {case}")
    current = get_case(ws, case)
    merged = {m: new.get(m, getattr(current, m)) for m in MILESTONES}
    _check_order(merged)
    changes: dict[str, str | None] = {m: clock.iso(t) for m, t in new.items()}
    if title is not None:
        changes["title"] = title.strip()
    if sev is not None:
        changes["severity"] = sev
    if close and current.is_open:
        changes["status"] = "closed"
        changes["closed"] = clock.iso()
    if not changes:
        raise PdbgError("nothing to update", "Pass at least one of --detected/--acknowledged/--contained/"
                        "--resolved/--title/--severity/--close.")
    with gov_db(ws) as conn, write_tx(conn):
        sets = ", ".join(f"{k} = ?" for k in changes)
        conn.execute(f"UPDATE gov_cases SET {sets} WHERE id = ?", (*changes.values(), case))
        AuditLog(ws).append(actor, "case.update", case=case, changes=changes)
    return get_case(ws, case)
