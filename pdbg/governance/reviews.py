"""Review items: after-the-fact scrutiny of access that skipped approval (break-glass).

Break-glass trades the approval step for speed, so the approval happens later: an
open review item stays visible (`pdbg review list`, the governance notebook, the
postmortem) until a person with the approver role, who is *not* the person who
broke glass, closes it with a note. The note is the reviewer's judgement and is
kept in the audit log.
"""

from __future__ import annotations

import secrets
import sqlite3
from dataclasses import asdict, dataclass

from pdbg import clock
from pdbg.errors import PdbgError
from pdbg.governance.init import gov_db
from pdbg.governance.principals import check
from pdbg.ledger.audit import AuditLog
from pdbg.ledger.state import write_tx
from pdbg.policy.workspace import Workspace


@dataclass(frozen=True)
class Review:
    id: str
    kind: str
    subject_user: str
    case: str
    dataset: str | None
    grant_id: str | None
    reason: str
    status: str
    created: str
    closed: str | None = None
    closed_by: str | None = None
    note: str | None = None

    def to_dict(self) -> dict:
        return asdict(self)


def _to_review(row) -> Review:
    return Review(row["id"], row["kind"], row["subject_user"], row["case_id"], row["dataset"], row["grant_id"],
                  row["reason"], row["status"], row["created"], row["closed"], row["closed_by"], row["note"])


def open_review(conn: sqlite3.Connection, *, kind: str, subject_user: str, case: str, dataset: str | None,
                grant_id: str | None, reason: str) -> Review:
    """Insert an open review item inside the caller's transaction (so it exists iff the grant does)."""
    rid = "rev-" + secrets.token_hex(5)
    now = clock.iso()
    conn.execute(
        "INSERT INTO gov_reviews (id, kind, subject_user, case_id, dataset, grant_id, reason, status, created) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, 'open', ?)",
        (rid, kind, subject_user, case, dataset, grant_id, reason, now),
    )
    return Review(rid, kind, subject_user, case, dataset, grant_id, reason, "open", now)


def get_review(ws: Workspace, review_id: str) -> Review:
    with gov_db(ws) as conn:
        row = conn.execute("SELECT * FROM gov_reviews WHERE id = ?", (review_id,)).fetchone()
    if row is None:
        raise PdbgError(f"no review item {review_id!r}", "List them with `pdbg review list WS`.")
    return _to_review(row)


def list_reviews(ws: Workspace, *, open_only: bool = False, case: str | None = None) -> list[Review]:
    sql = "SELECT * FROM gov_reviews WHERE 1=1"
    args: list = []
    if open_only:
        sql += " AND status = 'open'"
    if case is not None:
        sql += " AND case_id = ?"
        args.append(case)
    with gov_db(ws) as conn:
        rows = conn.execute(sql + " ORDER BY created, id", args).fetchall()
    return [_to_review(r) for r in rows]


def close_review(ws: Workspace, review_id: str, actor: str, note: str) -> Review:
    """Close a review with a mandatory note; the reviewed person can never close their own item."""
    if not (note or "").strip():
        raise PdbgError("closing a review needs a note", "Pass --note TEXT saying what was checked.")
    with gov_db(ws) as conn, write_tx(conn):
        row = conn.execute("SELECT * FROM gov_reviews WHERE id = ?", (review_id,)).fetchone()
        if row is None:
            raise PdbgError(f"no review item {review_id!r}", "List them with `pdbg review list WS`.")
        check(ws, actor, "review.close", f"review {review_id}", subject=row["subject_user"], audit_refusal=True)
        if row["status"] != "open":
            raise PdbgError(f"review {review_id} is already closed", "Nothing to do.")
        now = clock.iso()
        conn.execute("UPDATE gov_reviews SET status = 'closed', closed = ?, closed_by = ?, note = ? WHERE id = ?",
                     (now, actor, note.strip(), review_id))
        AuditLog(ws).append(actor, "review.close", review=review_id, case=row["case_id"],
                            subject_user=row["subject_user"], grant=row["grant_id"], note=note.strip())
    return get_review(ws, review_id)
