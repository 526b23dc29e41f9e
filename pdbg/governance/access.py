"""Access requests, approvals, grants, break-glass and revocation (the Teleport model).

Nobody can spend privacy budget on their own say-so. An investigator *requests*
(case, dataset, ε, hours, reason); a different person with the approver role (or an
admin) *approves* or *denies*; approval creates a :class:`Grant` with a ledger
account ``grant:<id>`` holding (ε, δ) and, if missing, the dataset-wide cap account
``dataset:<name>``. Rules, each of which has a test:

* Self-approval is impossible on every path, for every role (``principals.SEPARATION_OF_DUTIES``).
* A pending request expires after :data:`PENDING_REQUEST_TTL`; an expired request
  cannot be approved (only denied, to tidy up).
* ε is capped by the dataset's ``epsilon.dataset_cap``; a grant lasts at most the
  policy's ``grant_max_hours``, counted from approval.
* Break-glass is for when waiting for an approver would make the incident worse: a
  mandatory reason, an immediate small grant (``epsilon.break_glass`` for
  :data:`BREAK_GLASS_HOURS`), a high-severity audit record and an open review item
  that someone else must close. Only for users attached to the case, one at a time,
  a few per 30 days (:mod:`pdbg.governance.breakglass`).
* :func:`active_grant` re-reads state on every call, so a revocation, an expiry or a
  deactivation takes effect on the next query.

Every grant change (approve, deny, break-glass, revoke) is audited as intent → effect →
completion (:func:`_change`): ``<action>.intent`` before the SQLite write transaction
(if it cannot be written, nothing changes), ``<action>`` after COMMIT; a crash in between
is settled by ``pdbg.governance.recovery`` from the grant/request rows. Requests are
still audited inside their write transaction. Lock order is always state.sqlite first,
then the audit file lock (intent and completion are appended outside the transaction).
"""

from __future__ import annotations

import math
import secrets
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta

from pdbg import clock
from pdbg.errors import AccessDenied, PdbgError
from pdbg.governance import breakglass
from pdbg.governance.cases import get_case
from pdbg.governance.init import gov_db
from pdbg.governance.principals import check, get_user
from pdbg.governance.reviews import open_review
from pdbg.ledger.audit import AuditLog
from pdbg.ledger.state import write_tx
from pdbg.policy.workspace import Workspace

PENDING_REQUEST_TTL = timedelta(hours=24)
"""A request nobody decided on within a day is stale: the incident has moved on, ask again."""

BREAK_GLASS_HOURS = 4.0
"""Long enough to contain an incident, short enough that a proper request follows."""


# -- records --------------------------------------------------------------------

@dataclass(frozen=True)
class Request:
    id: str
    user: str
    case: str
    dataset: str
    epsilon: float
    hours: float
    reason: str
    status: str                 # pending | approved | denied | expired (expired is derived from `expires`)
    created: str
    expires: str
    decided_by: str | None = None
    decided: str | None = None
    decision_reason: str | None = None
    grant_id: str | None = None

    def to_dict(self) -> dict:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}


@dataclass(frozen=True)
class Grant:
    id: str
    user: str
    case: str
    dataset: str
    epsilon: float
    delta: float
    accounting: str
    kind: str                   # approved | break_glass
    created: datetime
    expires: datetime
    request_id: str | None = None
    approved_by: str | None = None
    revoked: datetime | None = None
    revoked_by: str | None = None
    review_id: str | None = None

    @property
    def account_id(self) -> str:
        """The ledger account this grant spends from."""
        return f"grant:{self.id}"

    @property
    def dataset_account_id(self) -> str:
        """The dataset-wide cap account every grant on the dataset also spends from."""
        return f"dataset:{self.dataset}"

    def status(self, at: datetime | None = None) -> str:
        at = at or clock.now()
        if self.revoked is not None:
            return "revoked"
        if at >= self.expires:
            return "expired"
        return "active"

    def to_dict(self) -> dict:
        d = {k: getattr(self, k) for k in self.__dataclass_fields__}
        for k in ("created", "expires", "revoked"):
            d[k] = clock.iso(d[k]) if d[k] else None
        d["status"] = self.status()
        d["account"] = self.account_id
        return d


def _to_request(row) -> Request:
    status = row["status"]
    if status == "pending" and clock.parse_iso(row["expires"]) <= clock.now():
        status = "expired"
    return Request(row["id"], row["user"], row["case_id"], row["dataset"], row["epsilon"], row["hours"],
                   row["reason"], status, row["created"], row["expires"], row["decided_by"], row["decided"],
                   row["decision_reason"], row["grant_id"])


_GRANT_SELECT = ("SELECT g.*, r.id AS review_id FROM gov_grants g "
                 "LEFT JOIN gov_reviews r ON r.grant_id = g.id")


def _to_grant(row) -> Grant:
    def p(v):
        return clock.parse_iso(v) if v else None

    return Grant(row["id"], row["user"], row["case_id"], row["dataset"], row["epsilon"], row["delta"],
                 row["accounting"], row["kind"], p(row["created"]), p(row["expires"]), row["request_id"],
                 row["approved_by"], p(row["revoked"]), row["revoked_by"], row["review_id"])


# -- collaborators (imported lazily: they live in layers built in parallel) ------

def _policy(ws: Workspace, dataset: str):
    from pdbg.ingest.datasets import get_policy

    return get_policy(ws, dataset)


def _ledger(ws: Workspace):
    from pdbg.ledger.budget import Ledger

    return Ledger(ws)


def _open_accounts(ws: Workspace, grant_id: str, policy, epsilon: float) -> None:
    """Open ``grant:<id>`` and make sure ``dataset:<name>`` exists with the policy's cap.

    The grant's terms are immutable; the dataset cap account follows the current policy
    (:func:`follow_dataset_cap`), so an account left behind by a policy change (workspaces
    from before caps followed policies) is corrected at the next approval.
    """
    with _ledger(ws) as ledger:
        ledger.open_account(f"grant:{grant_id}", accounting=policy.accounting, epsilon=epsilon, delta=policy.delta)
        cap_id = f"dataset:{policy.dataset}"
        if not ledger.has_account(cap_id):
            ledger.open_account(cap_id, accounting=policy.accounting, epsilon=policy.epsilon.dataset_cap,
                                delta=policy.lifetime_delta)
            return
        old = ledger.retarget(cap_id, accounting=policy.accounting, epsilon=policy.epsilon.dataset_cap,
                              delta=policy.lifetime_delta)
    if old is not None:    # every change of a cap leaves a record, here on behalf of the registered policy
        AuditLog(ws).append("pdbg", "budget.cap", dataset=policy.dataset, account=cap_id,
                            accounting=policy.accounting, epsilon=policy.epsilon.dataset_cap,
                            delta=policy.lifetime_delta, previous=old, policy_hash=policy.digest,
                            reason="the cap account followed the registered policy at grant approval")


def follow_dataset_cap(ws: Workspace, policy, *, check_only: bool = False) -> dict | None:
    """Make ``dataset:<name>`` carry ``policy``'s lifetime cap; returns the old terms if they changed.

    Called when a policy is (re)registered. ``check_only`` raises the refusal a change would
    meet (a query in flight; a new accounting after spending) without changing anything.
    """
    with _ledger(ws) as ledger:
        return ledger.retarget(f"dataset:{policy.dataset}", accounting=policy.accounting,
                               epsilon=policy.epsilon.dataset_cap, delta=policy.lifetime_delta, check_only=check_only)


# -- validation helpers ----------------------------------------------------------

def _require_open_case(ws: Workspace, case: str) -> None:
    c = get_case(ws, case)
    if not c.is_open:
        raise AccessDenied(f"case {case!r} is closed", "Open a new case for new access.")


def _require_reason(reason: str | None, what: str) -> str:
    text = (reason or "").strip()
    if not text:
        raise AccessDenied(f"{what} needs a non-empty reason", "Pass --reason TEXT explaining why access is needed.")
    return text


def _validate_amounts(policy, epsilon: float, hours: float) -> None:
    if not (isinstance(epsilon, (int, float)) and math.isfinite(epsilon) and epsilon > 0):
        raise AccessDenied("epsilon must be a positive number", "Pass e.g. --epsilon 1.0.")
    cap = policy.epsilon.dataset_cap
    if epsilon > cap:
        raise AccessDenied(f"epsilon {epsilon:g} exceeds the dataset cap {cap:g} of {policy.dataset!r}",
                           f"Request at most {cap:g} (the policy's default for a case is "
                           f"{policy.epsilon.case_default:g}).")
    if not (isinstance(hours, (int, float)) and math.isfinite(hours) and hours > 0):
        raise AccessDenied("hours must be a positive number", "Pass e.g. --hours 8.")
    if hours > policy.grant_max_hours:
        raise AccessDenied(f"{hours:g} hours exceeds the maximum grant of {policy.grant_max_hours:g} hours "
                           f"for {policy.dataset!r}", f"Request at most {policy.grant_max_hours:g} hours.")


# -- reads -----------------------------------------------------------------------

def get_request(ws: Workspace, request_id: str) -> Request:
    with gov_db(ws) as conn:
        row = conn.execute("SELECT * FROM gov_requests WHERE id = ?", (request_id,)).fetchone()
    if row is None:
        raise PdbgError(f"no access request {request_id!r}", "List them with `pdbg access list WS`.")
    return _to_request(row)


def list_requests(ws: Workspace, *, pending_only: bool = False) -> list[Request]:
    with gov_db(ws) as conn:
        rows = conn.execute("SELECT * FROM gov_requests ORDER BY created, id").fetchall()
    reqs = [_to_request(r) for r in rows]
    return [r for r in reqs if r.status == "pending"] if pending_only else reqs


def get_grant(ws: Workspace, grant_id: str) -> Grant:
    with gov_db(ws) as conn:
        row = conn.execute(_GRANT_SELECT + " WHERE g.id = ?", (grant_id,)).fetchone()
    if row is None:
        raise PdbgError(f"no grant {grant_id!r}", "List them with `pdbg access list WS`.")
    return _to_grant(row)


def list_grants(ws: Workspace, *, user: str | None = None, case: str | None = None,
                dataset: str | None = None) -> list[Grant]:
    sql, args = _GRANT_SELECT + " WHERE 1=1", []
    for col, val in (("g.user", user), ("g.case_id", case), ("g.dataset", dataset)):
        if val is not None:
            sql += f" AND {col} = ?"
            args.append(val)
    with gov_db(ws) as conn:
        rows = conn.execute(sql + " ORDER BY g.created, g.id", args).fetchall()
    return [_to_grant(r) for r in rows]


# -- verbs -----------------------------------------------------------------------

def request(ws: Workspace, user: str, case: str, dataset: str, epsilon: float, hours: float,
            reason: str) -> Request:
    """File an access request. Checked now (role, open case, dataset, ε cap, max hours) and again at approval."""
    check(ws, user, "access.request", f"dataset {dataset} for case {case}")
    reason = _require_reason(reason, "an access request")
    _require_open_case(ws, case)
    policy = _policy(ws, dataset)
    _validate_amounts(policy, float(epsilon), float(hours))
    rid = "req-" + secrets.token_hex(5)
    now = clock.now()
    with gov_db(ws) as conn, write_tx(conn):
        conn.execute(
            "INSERT INTO gov_requests (id, user, case_id, dataset, epsilon, hours, reason, status, created, expires) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, 'pending', ?, ?)",
            (rid, user, case, dataset, float(epsilon), float(hours), reason, clock.iso(now),
             clock.iso(now + PENDING_REQUEST_TTL)),
        )
        AuditLog(ws).append(user, "access.request", request=rid, user=user, case=case, dataset=dataset,
                            epsilon=float(epsilon), hours=float(hours), reason=reason)
    return get_request(ws, rid)


def _decidable(ws: Workspace, request_id: str, approver: str, action: str) -> Request:
    req = get_request(ws, request_id)
    check(ws, approver, action, f"request {request_id}", subject=req.user, audit_refusal=True)
    if req.status in ("approved", "denied"):
        raise AccessDenied(f"request {request_id} was already {req.status} by {req.decided_by}",
                           "File a new request if more access is needed.")
    return req


def approve(ws: Workspace, request_id: str, approver: str) -> Grant:
    """Approve a pending request: a different approver (or admin) creates the grant and its ledger accounts."""
    req = _decidable(ws, request_id, approver, "access.approve")
    if req.status == "expired":
        raise AccessDenied(f"request {request_id} expired at {req.expires} (pending requests expire after "
                           f"{PENDING_REQUEST_TTL.total_seconds() / 3600:g} h)", "Ask the requester to request again.")
    requester = get_user(ws, req.user)
    if requester is None or not requester.active or requester.role != "investigator":
        raise AccessDenied(f"requester {req.user!r} is no longer an active investigator",
                           "Deny the request instead.")
    _require_open_case(ws, req.case)
    policy = _policy(ws, req.dataset)
    _validate_amounts(policy, req.epsilon, req.hours)   # the policy may have tightened since the request
    gid = "g-" + secrets.token_hex(5)
    _open_accounts(ws, gid, policy, req.epsilon)        # a dangling account (if we lose a race) grants nothing
    now = clock.now()
    expires = now + timedelta(hours=min(req.hours, policy.grant_max_hours))
    fields = dict(request=request_id, grant=gid, user=req.user, case=req.case, dataset=req.dataset,
                  epsilon=req.epsilon, delta=policy.delta, accounting=policy.accounting, expires=clock.iso(expires))
    with _change(ws, approver, "access.approve", **fields) as conn:
        row = conn.execute("SELECT status FROM gov_requests WHERE id = ?", (request_id,)).fetchone()
        if row["status"] != "pending":
            raise AccessDenied(f"request {request_id} was decided concurrently ({row['status']})", "Nothing to do.")
        check(ws, approver, "access.approve", f"request {request_id}", subject=req.user)
        conn.execute(
            "INSERT INTO gov_grants (id, user, case_id, dataset, epsilon, delta, accounting, kind, request_id, "
            "approved_by, created, expires) VALUES (?, ?, ?, ?, ?, ?, ?, 'approved', ?, ?, ?, ?)",
            (gid, req.user, req.case, req.dataset, req.epsilon, policy.delta, policy.accounting, request_id,
             approver, clock.iso(now), clock.iso(expires)),
        )
        conn.execute("UPDATE gov_requests SET status = 'approved', decided_by = ?, decided = ?, grant_id = ? "
                     "WHERE id = ?", (approver, clock.iso(now), gid, request_id))
    return get_grant(ws, gid)


def deny(ws: Workspace, request_id: str, approver: str, reason: str) -> Request:
    """Deny a pending (or expired) request with a reason the requester will see."""
    reason = _require_reason(reason, "a denial")
    req = _decidable(ws, request_id, approver, "access.deny")
    with _change(ws, approver, "access.deny", request=request_id, user=req.user, case=req.case,
                 dataset=req.dataset, reason=reason) as conn:
        row = conn.execute("SELECT status FROM gov_requests WHERE id = ?", (request_id,)).fetchone()
        if row["status"] != "pending":
            raise AccessDenied(f"request {request_id} was decided concurrently ({row['status']})", "Nothing to do.")
        conn.execute("UPDATE gov_requests SET status = 'denied', decided_by = ?, decided = ?, decision_reason = ? "
                     "WHERE id = ?", (approver, clock.iso(), reason, request_id))
    return get_request(ws, request_id)


def break_glass(ws: Workspace, user: str, case: str, dataset: str, reason: str) -> Grant:
    """Immediate, small, short grant without an approver; audited high and queued for review.

    Only for users attached to the case, one active at a time per user and dataset, and at
    most the policy's ``break_glass_per_30d`` in any 30 days (:mod:`pdbg.governance.breakglass`).
    The limits are checked before the ledger account opens and again inside the write
    transaction, so two concurrent attempts cannot both pass; a refusal is audited.
    """
    check(ws, user, "access.break_glass", f"dataset {dataset} for case {case}", audit_refusal=True)
    reason = _require_reason(reason, "break-glass")
    _require_open_case(ws, case)
    policy = _policy(ws, dataset)
    with gov_db(ws) as conn:
        _refuse_break_glass(ws, breakglass.refusal(conn, user, case, dataset, policy, clock.now()), user, case, dataset)
    epsilon = policy.epsilon.break_glass
    hours = min(BREAK_GLASS_HOURS, policy.grant_max_hours)
    gid = "g-" + secrets.token_hex(5)
    _open_accounts(ws, gid, policy, epsilon)
    now = clock.now()
    expires = now + timedelta(hours=hours)
    refused = None
    fields = dict(grant=gid, user=user, case=case, dataset=dataset, epsilon=epsilon, delta=policy.delta,
                  accounting=policy.accounting, expires=clock.iso(expires), reason=reason)
    with _change(ws, user, "access.break_glass", severity="high", **fields) as conn:
        refused = breakglass.refusal(conn, user, case, dataset, policy, now)
        if refused is not None:
            raise _NotChanged(refused[0])
        conn.execute(
            "INSERT INTO gov_grants (id, user, case_id, dataset, epsilon, delta, accounting, kind, created, "
            "expires) VALUES (?, ?, ?, ?, ?, ?, ?, 'break_glass', ?, ?)",
            (gid, user, case, dataset, epsilon, policy.delta, policy.accounting, clock.iso(now),
             clock.iso(expires)),
        )
        review = open_review(conn, kind="break_glass", subject_user=user, case=case, dataset=dataset,
                             grant_id=gid, reason=reason)
        conn.done_fields["review"] = review.id
    _refuse_break_glass(ws, refused, user, case, dataset)   # lost a race: the account opened above grants nothing
    return get_grant(ws, gid)


def _refuse_break_glass(ws: Workspace, refused: tuple[str, str] | None, user: str, case: str, dataset: str) -> None:
    """Audit (``authz.denied``, warning) and raise a break-glass refusal; nothing when ``refused`` is None."""
    if refused is None:
        return
    message, hint = refused
    AuditLog(ws).append(user, "authz.denied", severity="warning", attempted="access.break_glass",
                        resource=f"dataset {dataset} for case {case}", reason=message)
    raise AccessDenied(message, hint)


def revoke(ws: Workspace, grant_id: str, actor: str) -> Grant:
    """Revoke a grant; the next query under it is refused. Spent budget stays spent."""
    check(ws, actor, "access.revoke", f"grant {grant_id}", audit_refusal=True)
    row = get_grant(ws, grant_id)   # refusals (no such grant, already revoked) before any intent
    if row.revoked:
        raise PdbgError(f"grant {grant_id} was already revoked at {row.revoked}", "Nothing to do.")
    with _change(ws, actor, "access.revoke", grant=grant_id, user=row.user, case=row.case,
                 dataset=row.dataset) as conn:
        cur = conn.execute("SELECT revoked FROM gov_grants WHERE id = ?", (grant_id,)).fetchone()
        if cur["revoked"]:
            raise PdbgError(f"grant {grant_id} was already revoked at {cur['revoked']}", "Nothing to do.")
        conn.execute("UPDATE gov_grants SET revoked = ?, revoked_by = ? WHERE id = ?", (clock.iso(), actor, grant_id))
    return get_grant(ws, grant_id)


class _NotChanged(Exception):
    """Raised inside :func:`_change` to leave the transaction without an effect (no error for the caller)."""


class _ChangeConn:
    """The write-transaction connection of a grant change, plus fields for its completion record."""

    def __init__(self, conn) -> None:
        self._conn = conn
        self.done_fields: dict = {}

    def __getattr__(self, name):
        return getattr(self._conn, name)


@contextmanager
def _change(ws: Workspace, actor: str, action: str, *, severity: str = "info", **fields):
    """A grant change as intent → effect → completion (DESIGN.md invariant 12).

    The audit appender is preflighted and ``<action>.intent`` appended *before* the SQLite
    write transaction (AuditError: nothing changed); the body makes the change; after COMMIT
    the completion record (``<action>``, the name the log always used, now with ``intent``)
    is appended. A body that raises rolls back, and the intent is settled ``not-done``
    (``<action>.settled``). A crash between COMMIT and completion is settled by recovery
    (``pdbg.governance.recovery``: the grant id / request state says whether it happened).
    """
    from pdbg.governance import recovery
    from pdbg.ledger.audit import intents

    recovery.recover_pending(ws, actor)
    op = intents.begin(ws, actor, action, **fields)
    wrapped = None
    try:
        with gov_db(ws) as conn, write_tx(conn):
            wrapped = _ChangeConn(conn)
            yield wrapped
    except _NotChanged as why:
        op.settle("not-done", reason=str(why))
        return
    except BaseException:
        recovery.settle_now(op)
        raise
    op.done(severity=severity, **fields, **wrapped.done_fields)


def active_grants(ws: Workspace, user: str, case: str, dataset: str) -> list[Grant]:
    """All grants usable right now by ``user`` for ``case`` × ``dataset``, soonest expiry first."""
    u = get_user(ws, user)
    if u is None or not u.active:
        return []
    now = clock.now()
    return sorted((g for g in list_grants(ws, user=user, case=case, dataset=dataset) if g.status(now) == "active"),
                  key=lambda g: (g.expires, g.id))


def active_grant(ws: Workspace, user: str, case: str, dataset: str) -> Grant:
    """The grant a query by ``user`` on ``case`` × ``dataset`` runs under, or AccessDenied saying why not.

    With several active grants the one expiring first is used (use it before it
    lapses); callers wanting another can pick from :func:`active_grants`.
    """
    u = get_user(ws, user)
    if u is None or not u.active:
        raise AccessDenied(f"{user!r} is not an active pdbg user", "Ask an admin to add or reactivate the user.")
    usable = active_grants(ws, user, case, dataset)
    if usable:
        return usable[0]
    mine = list_grants(ws, user=user, case=case, dataset=dataset)
    if mine:
        last = mine[-1]
        if last.revoked is not None:
            raise AccessDenied(f"grant {last.id} for case {case!r} on {dataset!r} was revoked at "
                               f"{clock.iso(last.revoked)} by {last.revoked_by}",
                               "Request access again if the investigation needs it.")
        raise AccessDenied(f"grant {last.id} for case {case!r} on {dataset!r} expired at {clock.iso(last.expires)}",
                           "Request access again with `pdbg access request`.")
    same_case = {g.dataset for g in list_grants(ws, user=user, case=case)}
    if same_case:
        raise AccessDenied(f"{user!r} has no grant on dataset {dataset!r} for case {case!r} "
                           f"(grants for this case cover: {', '.join(sorted(same_case))})",
                           "Request access to this dataset for the case.")
    same_dataset = {g.case for g in list_grants(ws, user=user, dataset=dataset)}
    if same_dataset:
        raise AccessDenied(f"{user!r} has no grant on dataset {dataset!r} for case {case!r} "
                           f"(grants on this dataset are for case(s): {', '.join(sorted(same_dataset))})",
                           "Grants are per case; request access for this case.")
    raise AccessDenied(f"{user!r} has no grant on dataset {dataset!r} for case {case!r}")


def budget_report(ws: Workspace, *, user: str | None = None, case: str | None = None) -> dict:
    """Granted / spent / remaining ε per grant and per dataset cap, as the ledger holds them."""
    rows, datasets, caps = [], set(), []
    with _ledger(ws) as ledger:
        for g in list_grants(ws, user=user, case=case):
            datasets.add(g.dataset)
            bal = ledger.balance(g.account_id) if ledger.has_account(g.account_id) else None
            rows.append({
                "grant": g.id, "user": g.user, "case": g.case, "dataset": g.dataset, "kind": g.kind,
                "status": g.status(), "expires": clock.iso(g.expires), "delta": g.delta,
                "accounting": g.accounting, "granted_epsilon": g.epsilon,
                "spent_epsilon": bal.spent_epsilon if bal else 0.0,
                "reserved_epsilon": bal.reserved_epsilon if bal else 0.0,
                "remaining_epsilon": bal.remaining_epsilon if bal else 0.0,
            })
        for d in sorted(datasets):
            if ledger.has_account(f"dataset:{d}"):
                bal = ledger.balance(f"dataset:{d}")
                caps.append({"dataset": d, "granted_epsilon": bal.granted_epsilon,
                             "spent_epsilon": bal.spent_epsilon, "reserved_epsilon": bal.reserved_epsilon,
                             "remaining_epsilon": bal.remaining_epsilon})
    return {"grants": rows, "datasets": caps}
