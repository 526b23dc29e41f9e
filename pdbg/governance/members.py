"""Case membership: who is attached to an incident, and so may break glass on it.

Break-glass skips the approver, so it must not be open to every investigator on every
open case: the review found that anyone could break glass anywhere and then read the
case's cached answers and history. A user is *attached* to a case when someone
responsible for it added them (table ``gov_case_members``) or when an approver already
approved them a grant on it that was not revoked (that approval attached them).

Who may add or remove a member: approvers and admins, the workspace's OS owner, and the
person who opened the case. Nobody adds themselves: an investigator who opens a case
cannot attach themselves to it and break glass alone. Every change is audited.
"""

from __future__ import annotations

from pdbg import clock
from pdbg.errors import AccessDenied, PdbgError
from pdbg.governance.cases import get_case
from pdbg.governance.init import gov_db
from pdbg.governance.principals import authorize, get_user, is_owner
from pdbg.ledger.audit import AuditLog
from pdbg.ledger.state import write_tx
from pdbg.policy.workspace import Workspace

MANAGERS = ("approver", "admin")
"""Roles that may attach anyone (but themselves) to any case; the case opener may too."""


def _require_manager(ws: Workspace, actor: str, case: str, member: str, verb: str) -> None:
    decision = authorize(ws, actor, "case.update", f"case {case}")
    opened_by = get_case(ws, case).opened_by
    allowed = decision.allowed and (is_owner(actor) or actor == opened_by
                                    or (decision.user is not None and decision.user.role in MANAGERS))
    reason = None
    if not allowed:
        reason = (decision.reason if not decision.allowed else
                  f"{actor!r} may not {verb} members of case {case!r}: only its opener, approvers and admins may")
    elif actor == member:
        reason = f"{actor!r} may not {verb} themselves as a member of case {case!r} (separation of duties)"
    if reason:
        AuditLog(ws).append(actor, "authz.denied", severity="warning", attempted=f"case.member.{verb}",
                            resource=f"case {case}", reason=reason)
        raise AccessDenied(reason, "Ask the case's opener, an approver or an admin to attach the user.")


def add_member(ws: Workspace, actor: str, case: str, user: str) -> dict:
    """Attach ``user`` (an active investigator) to ``case``; returns the membership record."""
    _require_manager(ws, actor, case, user, "add")
    u = get_user(ws, user)
    if u is None or not u.active or u.role != "investigator":
        raise AccessDenied(f"{user!r} is not an active investigator",
                           "Only investigators break glass; add or reactivate the user first.")
    if not get_case(ws, case).is_open:
        raise AccessDenied(f"case {case!r} is closed", "Open a new case for new work.")
    now = clock.iso()
    with gov_db(ws) as conn, write_tx(conn):
        if conn.execute("SELECT 1 FROM gov_case_members WHERE case_id = ? AND user = ?", (case, user)).fetchone():
            raise PdbgError(f"{user!r} is already a member of case {case!r}", "Nothing to do.")
        conn.execute("INSERT INTO gov_case_members (case_id, user, added, added_by) VALUES (?, ?, ?, ?)",
                     (case, user, now, actor))
        AuditLog(ws).append(actor, "case.member.add", case=case, user=user)
    return {"case": case, "user": user, "source": "member", "added": now, "added_by": actor}


def remove_member(ws: Workspace, actor: str, case: str, user: str) -> None:
    """Detach ``user`` from ``case``; their grants stay as they are (revoke those separately)."""
    _require_manager(ws, actor, case, user, "remove")
    with gov_db(ws) as conn, write_tx(conn):
        cur = conn.execute("DELETE FROM gov_case_members WHERE case_id = ? AND user = ?", (case, user))
        if cur.rowcount == 0:
            raise PdbgError(f"{user!r} is not an added member of case {case!r}",
                            "List members with `pdbg case member list WS CASE`.")
        AuditLog(ws).append(actor, "case.member.remove", case=case, user=user)


def list_members(ws: Workspace, case: str) -> list[dict]:
    """Everyone attached to ``case``: added members, then holders of an approved, unrevoked grant."""
    get_case(ws, case)
    with gov_db(ws) as conn:
        rows = conn.execute("SELECT * FROM gov_case_members WHERE case_id = ? ORDER BY added, user",
                            (case,)).fetchall()
        holders = conn.execute(
            "SELECT user, MIN(created) AS since, approved_by FROM gov_grants WHERE case_id = ? AND kind = 'approved' "
            "AND revoked IS NULL GROUP BY user ORDER BY since, user", (case,)).fetchall()
    out = [{"case": case, "user": r["user"], "source": "member", "added": r["added"], "added_by": r["added_by"]}
           for r in rows]
    named = {m["user"] for m in out}
    out += [{"case": case, "user": r["user"], "source": "grant", "added": r["since"], "added_by": r["approved_by"]}
            for r in holders if r["user"] not in named]
    return out


def is_attached(conn, user: str, case: str) -> bool:
    """Whether ``user`` is attached to ``case`` (read on the caller's connection, e.g. in its transaction)."""
    return bool(conn.execute("SELECT 1 FROM gov_case_members WHERE case_id = ? AND user = ?", (case, user)).fetchone()
                or conn.execute("SELECT 1 FROM gov_grants WHERE case_id = ? AND user = ? AND kind = 'approved' "
                                "AND revoked IS NULL", (case, user)).fetchone())
