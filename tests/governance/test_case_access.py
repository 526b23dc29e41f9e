"""case_access: the one decision behind history, replay and the oversight views of a case."""

from __future__ import annotations

from datetime import timedelta

import pytest

from pdbg import clock
from pdbg.errors import AccessDenied
from pdbg.governance import access
from pdbg.governance.case_access import case_access
from pdbg.governance.oversight import Oversight


def _grant(gov, user="alice", case="INC-1", dataset="events", hours=8):
    req = access.request(gov.ws, user, case, dataset, 1.0, hours, "find it")
    return access.approve(gov.ws, req.id, "bob")


def test_overseers_and_the_owner_see_everything(gov):
    for actor in ("bob", "root", "audrey", gov.owner):
        view = case_access(gov.ws, actor, "INC-1")
        assert view.overseer and view.allows(None) and view.allows("2020-01-01T00:00:00.000000Z", "events")


def test_no_grant_no_view_and_other_roles_are_refused(gov):
    with pytest.raises(AccessDenied, match="held no grant") as err:
        case_access(gov.ws, "alice", "INC-1")
    assert err.value.hint
    _grant(gov, dataset="other")
    with pytest.raises(AccessDenied, match="held no grant on 'events'"):
        case_access(gov.ws, "alice", "INC-1", "events")
    with pytest.raises(AccessDenied, match="not an active pdbg user"):
        case_access(gov.ws, "nobody", "INC-1")


def test_an_active_grant_shows_the_whole_case_on_its_dataset(gov):
    _grant(gov)
    view = case_access(gov.ws, "alice", "INC-1")
    assert view.active == {"events"}
    assert view.allows("2020-01-01T00:00:00.000000Z", "events")        # earlier releases of the case too
    assert not view.allows("2020-01-01T00:00:00.000000Z", "other")
    assert view.allows(None)                                           # refusals carry no dataset


def test_an_expired_grant_shows_only_its_window(gov):
    g = _grant(gov, hours=2)
    gov.clock.advance(hours=3)
    view = case_access(gov.ws, "alice", "INC-1")
    assert not view.active and view.past == (("events", g.created, g.expires),)
    assert view.allows(g.created, "events") and view.allows(clock.iso(g.expires - timedelta(seconds=1)), "events")
    assert not view.allows(g.expires, "events") and not view.allows(g.created - timedelta(seconds=1), "events")
    assert not view.allows(g.created, "other") and not view.allows(None)


def test_revocation_ends_the_view_at_once_and_only_for_the_revoked_grant(gov):
    g1 = _grant(gov, hours=2)
    gov.clock.advance(hours=3)
    g2 = _grant(gov)
    access.revoke(gov.ws, g2.id, "bob")
    view = case_access(gov.ws, "alice", "INC-1")
    assert not view.active and [w[0] for w in view.past] == ["events"]   # g1's window only
    access.revoke(gov.ws, g1.id, "bob")
    with pytest.raises(AccessDenied, match="revoked") as err:
        case_access(gov.ws, "alice", "INC-1")
    assert "Revocation ends" in err.value.hint


def test_oversight_views_follow_case_access(gov):
    g = _grant(gov)
    ov = Oversight(gov.ws, "alice")
    assert ov.case("INC-1")["case"] == "INC-1" and [x["id"] for x in ov.grants("INC-1")] == [g.id]
    gov.clock.advance(hours=9)                                         # expired: the postmortem still reads
    assert ov.privacy_impact("INC-1")["case"] == "INC-1"
    access.revoke(gov.ws, g.id, "bob")
    for view in (ov.case, ov.grants, ov.privacy_impact):
        with pytest.raises(AccessDenied, match="revoked"):
            view("INC-1")
    assert Oversight(gov.ws, "audrey").case("INC-1")["case"] == "INC-1"
