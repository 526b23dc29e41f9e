"""Reconcile: the ledger's committed charges equal the charged query records of the audit log."""

from __future__ import annotations

import json

import pytest

from pdbg.dp.accounting import query_cost
from pdbg.ledger.audit import AuditLog
from pdbg.ledger.budget import Ledger
from pdbg.ledger.reconcile import reconcile

ACCOUNTS = ["grant:g", "dataset:d"]


@pytest.fixture
def setup(ws):
    ledger = Ledger(ws)
    for a in ACCOUNTS:
        ledger.open_account(a, accounting="zcdp", epsilon=2.0, delta=1e-6)
    yield ws, ledger, AuditLog(ws)
    ledger.close()


def release(ledger, audit, eps=0.3, *, audit_it=True, commit=True, **extra):
    res = ledger.reserve(ACCOUNTS, query_cost("zcdp", eps, grant_delta=1e-6, selection_delta=1e-8), holder="alice")
    if audit_it:
        audit.append("alice", "query", case="INC-1", **{**res.audit_fields(), **extra})
    if commit:
        ledger.commit(res)
    return res


def test_clean_history_reconciles(setup):
    ws, ledger, audit = setup
    for eps in (0.1, 0.3, 0.5):
        release(ledger, audit, eps)
    refused = ledger.reserve(ACCOUNTS, query_cost("zcdp", 0.2, grant_delta=1e-6), holder="alice")
    ledger.release(refused)  # failed before release: released, never audited as charged
    audit.append("alice", "query", case="INC-1", charged=False, cached=True)  # cache hit
    report = reconcile(ws)
    assert report.ok, report.problems
    units = ledger.balance("grant:g").committed_units
    assert report.per_account == {"dataset:d": (units, units), "grant:g": (units, units)}
    assert report.per_account_delta["grant:g"] == (3 * 10**7, 3 * 10**7)
    assert report.charged_records == 3 and report.committed_reservations == 3
    d = report.to_dict()
    assert d["ok"] and d["per_account"]["grant:g"] == {"ledger_units": units, "audit_units": units}
    json.dumps(d)


def test_committed_charge_without_audit_record_is_found(setup):
    ws, ledger, audit = setup
    release(ledger, audit)
    res = release(ledger, audit, audit_it=False)
    report = reconcile(ws)
    assert not report.ok
    assert any(res.id in p and "no charged query audit record" in p for p in report.problems)


def test_audited_charge_that_was_released_is_found(setup):
    ws, ledger, audit = setup
    res = release(ledger, audit, commit=False)
    ledger.release(res)
    report = reconcile(ws)
    assert not report.ok and any("was released" in p for p in report.problems)


def test_audit_record_for_unknown_reservation_or_wrong_units(setup):
    ws, ledger, audit = setup
    release(ledger, audit)
    audit.append("alice", "query", charged=True, reservation="r-ghost", accounts=ACCOUNTS,
                 cost_units={"privacy": 5, "delta": 0})
    release(ledger, audit, cost_units={"privacy": 1, "delta": 0})
    audit.append("alice", "query", charged=True, reservation="r-x")  # malformed
    problems = reconcile(ws).problems
    assert any("r-ghost" in p and "not in the ledger" in p for p in problems)
    assert any("units differ" in p for p in problems)
    assert any("lacks reservation" in p for p in problems)


def test_duplicate_audit_record_is_found(setup):
    ws, ledger, audit = setup
    res = release(ledger, audit)
    audit.append("alice", "query", case="INC-1", **res.audit_fields())
    report = reconcile(ws)
    assert not report.ok and any("2 audit records" in p for p in report.problems)


def test_running_totals_tampered_in_the_database_are_found(setup):
    ws, ledger, audit = setup
    release(ledger, audit)
    ledger.conn.execute("UPDATE budget_accounts SET committed_units = committed_units - 1 WHERE account_id = 'grant:g'")
    report = reconcile(ws)
    assert not report.ok and any("running totals" in p for p in report.problems)


def test_explicit_records_can_be_passed(setup):
    ws, ledger, audit = setup
    release(ledger, audit)
    assert not reconcile(ws, audit_records=[]).ok
    assert reconcile(ws, audit_records=audit.records()).ok
