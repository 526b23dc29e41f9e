"""Break-glass limits: case membership, one active grant per user and dataset, a rolling cap from the policy."""

from __future__ import annotations

import pytest

from pdbg.errors import AccessDenied, PdbgError
from pdbg.governance import access, cases, members
from pdbg.policy.model import BREAK_GLASS_PER_30D, parse_policy

from .conftest import policy_dict


def _denied(gov) -> list[dict]:
    return [r for r in gov.records() if r["action"] == "authz.denied"]


def test_members_are_added_by_the_opener_approvers_and_admins_never_by_themselves(gov):
    cases.open_case(gov.ws, "alice", "INC-3", "alice opened this one")
    with pytest.raises(AccessDenied, match="themselves") as err:
        members.add_member(gov.ws, "alice", "INC-3", "alice")          # the opener, attaching herself
    assert err.value.hint
    with pytest.raises(AccessDenied, match="only its opener"):
        members.add_member(gov.ws, "dave", "INC-3", "dave")            # another investigator
    with pytest.raises(AccessDenied, match="needs role"):
        members.add_member(gov.ws, "audrey", "INC-3", "dave")          # an auditor (no case.update)
    assert [r["attempted"] for r in _denied(gov)] == ["case.member.add"] * 3
    members.add_member(gov.ws, "alice", "INC-3", "dave")               # the opener attaches a colleague
    members.add_member(gov.ws, "bob", "INC-3", "alice")                # an approver attaches the opener
    with pytest.raises(PdbgError, match="already a member"):
        members.add_member(gov.ws, "root", "INC-3", "alice")
    with pytest.raises(AccessDenied, match="not an active investigator"):
        members.add_member(gov.ws, "bob", "INC-3", "carol")
    assert sorted((m["user"], m["source"], m["added_by"]) for m in members.list_members(gov.ws, "INC-3")) == [
        ("alice", "member", "bob"), ("dave", "member", "alice")]
    members.remove_member(gov.ws, "root", "INC-3", "dave")
    assert [m["user"] for m in members.list_members(gov.ws, "INC-3")] == ["alice"]
    seen = [r["action"] for r in gov.records()]
    assert seen.count("case.member.add") == 2 and seen.count("case.member.remove") == 1


def test_holders_of_an_approved_unrevoked_grant_count_as_members(gov):
    req = access.request(gov.ws, "alice", "INC-1", "events", 1.0, 8, "find it")
    grant = access.approve(gov.ws, req.id, "bob")
    assert [(m["user"], m["source"]) for m in members.list_members(gov.ws, "INC-1")] == [("alice", "grant")]
    bg = access.break_glass(gov.ws, "alice", "INC-1", "other", "a second dataset, now")
    assert bg.kind == "break_glass"
    access.revoke(gov.ws, grant.id, "bob")
    access.revoke(gov.ws, bg.id, "bob")
    assert members.list_members(gov.ws, "INC-1") == []                 # a revoked approval attaches nobody
    with pytest.raises(AccessDenied, match="not a member"):
        access.break_glass(gov.ws, "alice", "INC-1", "other", "again")


def test_a_break_glass_grant_does_not_attach_its_holder(gov):
    """Membership comes from someone else's decision: breaking glass once is no ticket to the next."""
    members.add_member(gov.ws, "bob", "INC-1", "alice")
    access.break_glass(gov.ws, "alice", "INC-1", "events", "outage")
    members.remove_member(gov.ws, "bob", "INC-1", "alice")
    with pytest.raises(AccessDenied, match="not a member"):
        access.break_glass(gov.ws, "alice", "INC-1", "other", "outage")


def test_one_active_break_glass_per_user_and_dataset_across_cases(gov):
    for case in ("INC-1", "INC-2"):
        members.add_member(gov.ws, "bob", case, "alice")
    first = access.break_glass(gov.ws, "alice", "INC-1", "events", "outage")
    with pytest.raises(AccessDenied, match=f"active break-glass grant {first.id}"):
        access.break_glass(gov.ws, "alice", "INC-2", "events", "another case, same dataset")
    assert access.break_glass(gov.ws, "alice", "INC-2", "other", "another dataset").dataset == "other"
    access.revoke(gov.ws, first.id, "bob")                              # a revoked one is no longer active
    assert access.break_glass(gov.ws, "alice", "INC-2", "events", "replacing it").case == "INC-2"


def test_the_rolling_cap_follows_the_policy(gov):
    gov.register("capped", break_glass_per_30d=1)
    gov.register("off", break_glass_per_30d=0)
    members.add_member(gov.ws, "bob", "INC-1", "alice")
    access.break_glass(gov.ws, "alice", "INC-1", "capped", "outage")
    gov.clock.advance(hours=access.BREAK_GLASS_HOURS)
    with pytest.raises(AccessDenied, match="policy allows 1") as err:
        access.break_glass(gov.ws, "alice", "INC-1", "capped", "still down")
    assert "2026-12-03" in err.value.hint                                # when it is possible again
    with pytest.raises(AccessDenied, match="turned off"):
        access.break_glass(gov.ws, "alice", "INC-1", "off", "outage")
    gov.clock.advance(days=29, hours=20)
    assert access.break_glass(gov.ws, "alice", "INC-1", "capped", "a month later").kind == "break_glass"


def test_break_glass_per_30d_policy_field():
    base = parse_policy(policy_dict("x"))
    assert base.break_glass_per_30d is None and base.break_glass_limit == BREAK_GLASS_PER_30D == 3
    assert "break_glass_per_30d" not in base.canonical_json()           # older policies keep their digest
    set_ = parse_policy(policy_dict("x", break_glass_per_30d=5))
    assert set_.break_glass_limit == 5 and set_.digest != base.digest
    assert parse_policy(policy_dict("x", break_glass_per_30d=0)).break_glass_limit == 0
    from pdbg.errors import PolicyError

    for bad in (-1, 2.5, "3", True, 101):
        with pytest.raises(PolicyError, match="break_glass_per_30d: must be a whole number") as err:
            parse_policy(policy_dict("x", break_glass_per_30d=bad))
        assert err.value.hint
