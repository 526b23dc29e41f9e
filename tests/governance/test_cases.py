"""Cases: milestones stored in UTC, ordered, and every change audited."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from pdbg.errors import PdbgError
from pdbg.governance import cases, principals


def test_open_update_show(frozen_clock, workspace):
    owner = principals.os_actor()
    c = cases.open_case(workspace, owner, "INC-7", " Checkout 5xx ", severity="sev2",
                        detected="2026-11-03T12:30:00+01:00")
    assert c.title == "Checkout 5xx" and c.severity == "SEV2" and c.is_open
    assert c.detected == datetime(2026, 11, 3, 11, 30, tzinfo=timezone.utc)
    assert c.opened == frozen_clock.now()
    frozen_clock.advance(minutes=5)
    c = cases.update_case(workspace, owner, "INC-7", acknowledged="now", contained="2026-11-03T12:10:00")
    assert c.acknowledged == frozen_clock.now()
    assert c.contained == datetime(2026, 11, 3, 12, 10, tzinfo=timezone.utc)   # naive means UTC
    got = cases.get_case(workspace, "INC-7")
    assert got == c and got.to_dict()["acknowledged"] == "2026-11-03T12:05:00.000000Z"
    c = cases.update_case(workspace, owner, "INC-7", resolved=frozen_clock.now() + timedelta(hours=1), close=True)
    assert c.status == "closed" and c.resolved is not None


def test_case_validation(frozen_clock, workspace):
    owner = principals.os_actor()
    cases.open_case(workspace, owner, "INC-1", "t", detected="2026-11-03T10:00:00Z")
    with pytest.raises(PdbgError, match="already exists"):
        cases.open_case(workspace, owner, "INC-1", "t")
    with pytest.raises(PdbgError, match="not allowed"):
        cases.open_case(workspace, owner, "bad case/../", "t")
    with pytest.raises(PdbgError, match="non-empty title"):
        cases.open_case(workspace, owner, "INC-2", " ")
    with pytest.raises(PdbgError, match="not an ISO-8601"):
        cases.update_case(workspace, owner, "INC-1", acknowledged="yesterday")
    with pytest.raises(PdbgError, match="acknowledged .* is before detected"):
        cases.update_case(workspace, owner, "INC-1", acknowledged="2026-11-03T09:00:00Z")
    with pytest.raises(PdbgError, match="nothing to update"):
        cases.update_case(workspace, owner, "INC-1")
    with pytest.raises(PdbgError, match="no case named"):
        cases.get_case(workspace, "INC-404")


def test_case_roles_and_audit(frozen_clock, workspace):
    from pdbg.errors import AccessDenied
    from pdbg.ledger.audit import AuditLog

    owner = principals.os_actor()
    principals.add_user(workspace, owner, "aud", "auditor")
    with pytest.raises(AccessDenied, match="needs role"):
        cases.open_case(workspace, "aud", "INC-1", "t")
    cases.open_case(workspace, owner, "INC-1", "t", severity="SEV1")
    cases.update_case(workspace, owner, "INC-1", detected="now")
    recs = AuditLog(workspace).records(case="INC-1")
    assert [r["action"] for r in recs] == ["case.open", "case.update"]
    assert recs[0]["case_severity"] == "SEV1" and recs[0]["severity"] == "info"
    assert recs[1]["changes"] == {"detected": "2026-11-03T12:00:00.000000Z"}
