"""Oversight views: everything for overseers and the workspace owner; a case only for those who worked it."""

from __future__ import annotations

import json

import pytest

from pdbg.errors import AccessDenied
from pdbg.governance.oversight import Oversight


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    from pdbg.demo.build import build_demo

    return build_demo(tmp_path_factory.mktemp("ov") / "ws", n_rows=5_000, seed=3)


def test_owner_and_auditor_see_everything_as_plain_data(demo):
    for actor in (None, "dave"):                    # the OS owner, and the demo auditor
        ov = Oversight(demo.ws, actor)
        views = [ov.requests(), ov.grants(), ov.budgets(), ov.reviews(), ov.verify(),
                 ov.case(demo.case), ov.privacy_impact(demo.case)]
        json.dumps(views)                            # JSON-able: the broker serves the same objects
        assert ov.verify()["ok"] and len(ov.grants()) == 1
        assert ov.privacy_impact(demo.case)["case"] == demo.case


def test_investigator_sees_only_the_case_they_worked(demo):
    ov = Oversight(demo.ws, "alice")
    assert ov.case(demo.case)["case"] == demo.case
    assert [g["user"] for g in ov.grants(demo.case)] == ["alice"]
    assert ov.privacy_impact(demo.case)["case"] == demo.case
    for view in (ov.requests, ov.budgets, ov.reviews, ov.verify, ov.grants):
        with pytest.raises(AccessDenied):
            view()
    from pdbg.governance import cases

    cases.open_case(demo.ws, "bob", "OTHER-1", "not alice's")
    with pytest.raises(AccessDenied):
        ov.privacy_impact("OTHER-1")
    with pytest.raises(AccessDenied):
        ov.case("OTHER-1")
