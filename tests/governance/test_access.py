"""Access model (Teleport-style) with a frozen clock: who may approve, expiry, revocation, scope, break-glass."""

from __future__ import annotations

from datetime import timedelta

import pytest

from pdbg.errors import AccessDenied, PdbgError
from pdbg.governance import access, cases, members, principals, reviews
from pdbg.ledger.budget import Ledger


def _request(g, user="alice", case="INC-1", dataset="events", epsilon=1.0, hours=8):
    return access.request(g.ws, user, case, dataset, epsilon, hours, "find the failing service")


def test_request_and_approve_creates_grant_and_ledger_accounts(gov):
    req = _request(gov)
    assert req.status == "pending" and req.id.startswith("req-")
    assert req.expires == "2026-11-04T12:00:00.000000Z"          # 24 h after the frozen start
    grant = access.approve(gov.ws, req.id, "bob")
    assert (grant.user, grant.case, grant.dataset, grant.epsilon) == ("alice", "INC-1", "events", 1.0)
    assert grant.delta == 1e-6 and grant.approved_by == "bob" and grant.kind == "approved"
    assert grant.expires - grant.created == timedelta(hours=8)
    assert access.get_request(gov.ws, req.id).status == "approved"
    assert access.active_grant(gov.ws, "alice", "INC-1", "events").id == grant.id
    with Ledger(gov.ws) as led:
        assert led.balance(f"grant:{grant.id}").granted_epsilon == 1.0
        assert led.balance("dataset:events").granted_epsilon == 5.0


def test_investigator_cannot_approve(gov):
    req = _request(gov)
    with pytest.raises(AccessDenied, match="needs role admin or approver; 'dave' is investigator"):
        access.approve(gov.ws, req.id, "dave")
    with pytest.raises(AccessDenied, match="needs role"):
        access.approve(gov.ws, req.id, "alice")
    assert access.get_request(gov.ws, req.id).status == "pending"


@pytest.mark.parametrize("new_role", ["approver", "admin"])
def test_self_approval_refused_for_every_role(gov, new_role):
    req = _request(gov)
    principals.set_role(gov.ws, "root", "alice", new_role)     # the requester later gains approval rights
    with pytest.raises(AccessDenied, match="their own"):
        access.approve(gov.ws, req.id, "alice")
    with pytest.raises(AccessDenied, match="their own"):
        access.deny(gov.ws, req.id, "alice", "withdrawn")
    assert access.get_request(gov.ws, req.id).status == "pending"
    assert access.list_grants(gov.ws) == []
    refusals = [r for r in gov.records() if r["action"] == "authz.denied"]
    assert refusals and refusals[0]["attempted"] == "access.approve" and refusals[0]["actor"] == "alice"


def test_admin_may_approve_someone_elses_request(gov):
    principals.add_user(gov.ws, gov.owner, "root2", "admin")     # an admin who did not create alice
    grant = access.approve(gov.ws, _request(gov).id, "root2")
    assert grant.approved_by == "root2"


def test_the_creator_of_the_requesters_account_may_not_approve_or_close_its_review(gov):
    """root created alice (see conftest): one person may not hold both roles, admins included."""
    req = _request(gov)
    with pytest.raises(AccessDenied, match="created 'alice'") as err:
        access.approve(gov.ws, req.id, "root")
    assert "created the requester's account" in err.value.hint
    assert access.get_request(gov.ws, req.id).status == "pending"
    refusal = [r for r in gov.records() if r["action"] == "authz.denied"][-1]
    assert refusal["actor"] == "root" and refusal["attempted"] == "access.approve"
    assert access.deny(gov.ws, req.id, "root", "not needed").status == "denied"   # denying grants nothing
    access.approve(gov.ws, _request(gov).id, "bob")                  # alice is attached: she may break glass
    bg = access.break_glass(gov.ws, "alice", "INC-1", "events", "outage")
    with pytest.raises(AccessDenied, match="created 'alice'"):
        reviews.close_review(gov.ws, bg.review_id, "root", "fine")
    assert reviews.close_review(gov.ws, bg.review_id, "bob", "fine").closed_by == "bob"


def test_unknown_creator_excludes_nobody(gov):
    from pdbg.governance.init import gov_db
    from pdbg.ledger.state import write_tx

    with gov_db(gov.ws) as conn, write_tx(conn):
        conn.execute("UPDATE gov_users SET created_by = '' WHERE name = 'alice'")
    assert principals.issuers(gov.ws, "alice") == frozenset()
    assert principals.issuers(gov.ws, "dave") == {"root"}
    assert access.approve(gov.ws, _request(gov).id, "root").approved_by == "root"


def test_owner_cannot_approve(gov):
    with pytest.raises(AccessDenied, match="needs a named pdbg user"):
        access.approve(gov.ws, _request(gov).id, gov.owner)


def test_expired_pending_request_cannot_be_approved(gov):
    req = _request(gov)
    gov.clock.advance(hours=24)
    assert access.get_request(gov.ws, req.id).status == "expired"
    assert access.list_requests(gov.ws, pending_only=True) == []
    with pytest.raises(AccessDenied, match="expired"):
        access.approve(gov.ws, req.id, "bob")
    assert access.deny(gov.ws, req.id, "bob", "stale").status == "denied"   # tidying up is allowed


def test_request_decided_once(gov):
    req = _request(gov)
    access.approve(gov.ws, req.id, "bob")
    with pytest.raises(AccessDenied, match="already approved"):
        access.approve(gov.ws, req.id, "carol")
    with pytest.raises(AccessDenied, match="already approved"):
        access.deny(gov.ws, req.id, "carol", "no")


def test_denied_request_cannot_be_approved_and_deny_needs_reason(gov):
    req = _request(gov)
    with pytest.raises(AccessDenied, match="non-empty reason"):
        access.deny(gov.ws, req.id, "bob", "  ")
    denied = access.deny(gov.ws, req.id, "bob", "use the sampled dataset")
    assert denied.status == "denied" and denied.decision_reason == "use the sampled dataset"
    with pytest.raises(AccessDenied, match="already denied"):
        access.approve(gov.ws, req.id, "carol")


def test_expired_grant_refused(gov):
    grant = access.approve(gov.ws, _request(gov, hours=2).id, "bob")
    gov.clock.advance(hours=1, minutes=59)
    assert access.active_grant(gov.ws, "alice", "INC-1", "events").id == grant.id
    gov.clock.advance(minutes=1)
    with pytest.raises(AccessDenied, match=f"grant {grant.id} .* expired at"):
        access.active_grant(gov.ws, "alice", "INC-1", "events")


def test_grant_duration_counts_from_approval(gov):
    req = _request(gov, hours=8)
    gov.clock.advance(hours=3)
    grant = access.approve(gov.ws, req.id, "bob")
    assert grant.created == gov.clock.now() and grant.expires == gov.clock.now() + timedelta(hours=8)


def test_revoked_grant_refused_on_next_check(gov):
    grant = access.approve(gov.ws, _request(gov).id, "bob")
    with pytest.raises(AccessDenied, match="needs role"):
        access.revoke(gov.ws, grant.id, "alice")
    access.revoke(gov.ws, grant.id, "carol")
    with pytest.raises(AccessDenied, match="revoked .* by carol"):
        access.active_grant(gov.ws, "alice", "INC-1", "events")
    with pytest.raises(PdbgError, match="already revoked"):
        access.revoke(gov.ws, grant.id, "root")


def test_grant_scope_is_one_case_and_one_dataset(gov):
    access.approve(gov.ws, _request(gov, case="INC-1", dataset="events").id, "bob")
    with pytest.raises(AccessDenied, match="grants on this dataset are for case\\(s\\): INC-1"):
        access.active_grant(gov.ws, "alice", "INC-2", "events")
    with pytest.raises(AccessDenied, match="grants for this case cover: events"):
        access.active_grant(gov.ws, "alice", "INC-1", "other")
    with pytest.raises(AccessDenied, match="'dave' has no grant"):
        access.active_grant(gov.ws, "dave", "INC-1", "events")
    with pytest.raises(AccessDenied, match="not an active pdbg user"):
        access.active_grant(gov.ws, "nobody", "INC-1", "events")


def test_deactivated_user_loses_access(gov):
    access.approve(gov.ws, _request(gov).id, "bob")
    principals.deactivate(gov.ws, "root", "alice")
    with pytest.raises(AccessDenied, match="not an active"):
        access.active_grant(gov.ws, "alice", "INC-1", "events")


@pytest.mark.parametrize("kwargs, match", [
    ({"epsilon": 5.01}, "exceeds the dataset cap 5"),
    ({"epsilon": 0}, "positive"),
    ({"epsilon": float("nan")}, "positive"),
    ({"hours": 24.5}, "maximum grant of 24 hours"),
    ({"hours": -1}, "positive"),
])
def test_request_limits_from_policy(gov, kwargs, match):
    with pytest.raises(AccessDenied, match=match):
        _request(gov, **kwargs)
    assert access.list_requests(gov.ws) == []


def test_request_needs_investigator_open_case_known_dataset_and_reason(gov):
    with pytest.raises(AccessDenied, match="needs role investigator"):
        _request(gov, user="bob")
    with pytest.raises(PdbgError, match="no case named"):
        _request(gov, case="INC-404")
    with pytest.raises(PdbgError, match="not registered"):
        _request(gov, dataset="nope")
    with pytest.raises(AccessDenied, match="non-empty reason"):
        access.request(gov.ws, "alice", "INC-1", "events", 1.0, 2, "")
    cases.update_case(gov.ws, "bob", "INC-2", close=True)
    with pytest.raises(AccessDenied, match="closed"):
        _request(gov, case="INC-2")


def test_approval_rechecks_policy_and_case(gov):
    req = _request(gov, case="INC-2")
    cases.update_case(gov.ws, "bob", "INC-2", close=True)
    with pytest.raises(AccessDenied, match="closed"):
        access.approve(gov.ws, req.id, "bob")


def test_break_glass_requires_reason(gov):
    for reason in ("", "   ", None):
        with pytest.raises(AccessDenied, match="non-empty reason"):
            access.break_glass(gov.ws, "alice", "INC-1", "events", reason)
    assert access.list_grants(gov.ws) == [] and reviews.list_reviews(gov.ws) == []


def test_break_glass_grants_immediately_audits_high_and_opens_review(gov):
    members.add_member(gov.ws, "bob", "INC-1", "alice")
    grant = access.break_glass(gov.ws, "alice", "INC-1", "events", "checkout down, approvers unreachable")
    assert grant.kind == "break_glass" and grant.epsilon == 0.5
    assert grant.expires - grant.created == timedelta(hours=access.BREAK_GLASS_HOURS)
    assert access.active_grant(gov.ws, "alice", "INC-1", "events").id == grant.id
    rec = [r for r in gov.records() if r["action"] == "access.break_glass"]
    assert len(rec) == 1 and rec[0]["severity"] == "high" and rec[0]["grant"] == grant.id
    assert rec[0]["reason"] == "checkout down, approvers unreachable"
    (item,) = reviews.list_reviews(gov.ws, open_only=True)
    assert item.id == grant.review_id and item.subject_user == "alice" and item.grant_id == grant.id


def test_break_glass_review_cannot_be_closed_by_the_same_person(gov):
    members.add_member(gov.ws, "bob", "INC-1", "alice")
    grant = access.break_glass(gov.ws, "alice", "INC-1", "events", "outage")
    with pytest.raises(AccessDenied, match="needs role"):
        reviews.close_review(gov.ws, grant.review_id, "alice", "fine")
    principals.set_role(gov.ws, "root", "alice", "approver")
    with pytest.raises(AccessDenied, match="their own"):
        reviews.close_review(gov.ws, grant.review_id, "alice", "fine")
    with pytest.raises(PdbgError, match="needs a note"):
        reviews.close_review(gov.ws, grant.review_id, "bob", "")
    closed = reviews.close_review(gov.ws, grant.review_id, "bob", "justified: SEV1, queries were aggregates")
    assert closed.status == "closed" and closed.closed_by == "bob"
    assert reviews.list_reviews(gov.ws, open_only=True) == []
    with pytest.raises(PdbgError, match="already closed"):
        reviews.close_review(gov.ws, grant.review_id, "carol", "again")


def test_break_glass_only_for_investigators(gov):
    with pytest.raises(AccessDenied, match="needs role investigator"):
        access.break_glass(gov.ws, "bob", "INC-1", "events", "urgent")


def test_multiple_active_grants_use_the_one_expiring_first(gov):
    long = access.approve(gov.ws, _request(gov, hours=20).id, "bob")
    bg = access.break_glass(gov.ws, "alice", "INC-1", "events", "urgent")
    assert access.active_grant(gov.ws, "alice", "INC-1", "events").id == bg.id
    assert [g.id for g in access.active_grants(gov.ws, "alice", "INC-1", "events")] == [bg.id, long.id]


def test_budget_report(gov):
    grant = access.approve(gov.ws, _request(gov, epsilon=1.5).id, "bob")
    rep = access.budget_report(gov.ws, user="alice")
    (row,) = rep["grants"]
    assert row["grant"] == grant.id and row["granted_epsilon"] == 1.5 and row["spent_epsilon"] == 0
    assert row["remaining_epsilon"] == pytest.approx(1.5) and row["status"] == "active"
    assert rep["datasets"][0]["dataset"] == "events" and rep["datasets"][0]["granted_epsilon"] == 5.0
    assert access.budget_report(gov.ws, case="INC-2") == {"grants": [], "datasets": []}


def test_every_change_is_audited(gov):
    req = _request(gov)
    grant = access.approve(gov.ws, req.id, "bob")
    access.deny(gov.ws, _request(gov, case="INC-2").id, "carol", "not needed")
    members.add_member(gov.ws, "bob", "INC-1", "dave")
    bg = access.break_glass(gov.ws, "dave", "INC-1", "events", "urgent")
    reviews.close_review(gov.ws, bg.review_id, "bob", "ok")
    access.revoke(gov.ws, grant.id, "root")
    cases.update_case(gov.ws, "bob", "INC-1", acknowledged="now")
    seen = [r["action"] for r in gov.records()]
    assert seen[0] == "workspace.init"
    for action in ("user.add", "case.open", "case.update", "access.request", "access.approve", "access.deny",
                   "case.member.add", "access.break_glass", "review.close", "access.revoke"):
        assert action in seen, action
    by_action = {r["action"]: r for r in gov.records()}
    assert by_action["access.approve"]["actor"] == "bob" and by_action["access.approve"]["case"] == "INC-1"
    assert by_action["access.revoke"]["grant"] == grant.id
