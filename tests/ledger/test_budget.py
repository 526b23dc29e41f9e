"""Budget ledger: accounts, all-or-nothing reservations, exact sums, refusals that charge nothing."""

from __future__ import annotations

import pytest

from pdbg.dp.accounting import Cost, capacity, query_cost, to_units
from pdbg.errors import BudgetExceeded, PdbgError, PolicyError
from pdbg.ledger.budget import Ledger


def pure(eps: float, delta: float = 0.0) -> Cost:
    return query_cost("pure", eps, grant_delta=0.0, selection_delta=delta)


@pytest.fixture
def ledger(ws):
    with Ledger(ws) as led:
        yield led


def test_open_account_is_idempotent_and_refuses_changed_terms(ledger):
    ledger.open_account("grant:g1", accounting="pure", epsilon=1.0, delta=1e-6)
    ledger.open_account("grant:g1", accounting="pure", epsilon=1.0, delta=1e-6)
    assert ledger.has_account("grant:g1") and not ledger.has_account("grant:nope")
    with pytest.raises(PolicyError):
        ledger.open_account("grant:g1", accounting="pure", epsilon=2.0, delta=1e-6)
    with pytest.raises(PolicyError):
        ledger.open_account("grant:g1", accounting="zcdp", epsilon=1.0, delta=1e-6)
    assert ledger.accounts() == ["grant:g1"]


def test_reserve_commit_and_balance_are_exact(ledger):
    ledger.open_account("grant:g1", accounting="pure", epsilon=1.0, delta=1e-6)
    res = ledger.reserve(["grant:g1"], pure(0.3, 1e-7), holder="alice/INC-1")
    b = ledger.balance("grant:g1")
    assert (b.committed_units, b.reserved_units) == (0, to_units(0.3))
    assert b.reserved_epsilon == 0.3 and b.remaining_epsilon == 0.7
    ledger.commit(res)
    b = ledger.balance("grant:g1")
    assert (b.committed_units, b.reserved_units) == (to_units(0.3), 0)
    assert b.spent_epsilon == 0.3 and b.remaining_epsilon == 0.7 and b.granted_epsilon == 1.0
    assert b.delta_spent == 1e-7 and b.delta_cap == 1e-6 and b.conversion_delta == 0.0
    assert b.to_dict()["accounting"] == "pure"
    assert ledger.state_of(res) == "committed"


def test_refusal_names_requested_remaining_difference_and_charges_nothing(ledger):
    ledger.open_account("grant:g1", accounting="pure", epsilon=1.0, delta=0.0)
    ledger.commit(ledger.reserve(["grant:g1"], pure(0.75), holder="h"))
    before = ledger.balance("grant:g1")
    with pytest.raises(BudgetExceeded) as ei:
        ledger.reserve(["grant:g1"], pure(0.5), holder="h")
    err = ei.value
    assert err.requested == 0.5 and err.remaining == 0.25
    assert "ε=0.5" in err.message and "ε=0.25" in err.message and "difference ε=0.25" in err.message
    assert "nothing was charged" in err.message and err.hint
    assert ledger.balance("grant:g1") == before
    assert ledger.reservations("reserved") == []
    # the ledger and its connection keep working after a refusal
    ledger.commit(ledger.reserve(["grant:g1"], pure(0.25), holder="h"))
    assert ledger.balance("grant:g1").remaining_units == 0


def test_delta_is_checked_too(ledger):
    ledger.open_account("grant:g1", accounting="pure", epsilon=1.0, delta=1e-6)
    ledger.commit(ledger.reserve(["grant:g1"], pure(0.1, 6e-7), holder="h"))
    with pytest.raises(BudgetExceeded) as ei:
        ledger.reserve(["grant:g1"], pure(0.1, 6e-7), holder="h")
    assert "δ=" in ei.value.message
    assert ledger.balance("grant:g1").delta_reserved_units == 0


def test_reservation_is_all_or_nothing_across_accounts(ledger):
    ledger.open_account("grant:g1", accounting="pure", epsilon=1.0, delta=0.0)
    ledger.open_account("dataset:requests", accounting="pure", epsilon=0.5, delta=0.0)
    ledger.commit(ledger.reserve(["grant:g1", "dataset:requests"], pure(0.4), holder="h"))
    with pytest.raises(BudgetExceeded) as ei:
        ledger.reserve(["grant:g1", "dataset:requests"], pure(0.2), holder="h")
    assert "dataset:requests" in ei.value.message
    assert ledger.balance("grant:g1").committed_units == to_units(0.4)
    assert ledger.balance("grant:g1").reserved_units == 0
    assert ledger.balance("dataset:requests").reserved_units == 0


def test_commit_and_release_are_idempotent_and_ordered(ledger):
    ledger.open_account("grant:g1", accounting="pure", epsilon=1.0, delta=0.0)
    a = ledger.reserve(["grant:g1"], pure(0.1), holder="h")
    ledger.commit(a)
    ledger.commit(a)
    assert ledger.release(a) == "committed"  # a charge that may have been shown stands
    b = ledger.reserve(["grant:g1"], pure(0.1), holder="h")
    assert ledger.release(b) == "released"
    assert ledger.release(b.id) == "released"
    with pytest.raises(PdbgError, match="already released"):
        ledger.commit(b)
    assert ledger.balance("grant:g1").committed_units == to_units(0.1)
    with pytest.raises(PdbgError):
        ledger.commit("r-unknown")


def test_unknown_account_and_accounting_mismatch_are_refused(ledger):
    ledger.open_account("grant:g1", accounting="zcdp", epsilon=1.0, delta=1e-6)
    with pytest.raises(PdbgError, match="no budget account"):
        ledger.reserve(["grant:g1", "dataset:missing"], query_cost("zcdp", 0.1, grant_delta=1e-6), holder="h")
    with pytest.raises(PolicyError, match="accounting"):
        ledger.reserve(["grant:g1"], pure(0.1), holder="h")
    assert ledger.reservations() == []
    with pytest.raises(PdbgError):
        ledger.balance("grant:missing")
    with pytest.raises(PdbgError):
        ledger.reserve([], pure(0.1), holder="h")


def test_zcdp_full_grant_query_fits_exactly_once(ledger):
    ledger.open_account("grant:z", accounting="zcdp", epsilon=1.0, delta=1e-6)
    cost = query_cost("zcdp", 1.0, grant_delta=1e-6)
    ledger.commit(ledger.reserve(["grant:z"], cost, holder="h"))
    b = ledger.balance("grant:z")
    assert b.remaining_units == 0 and b.remaining_epsilon == 0.0
    assert 0.999 < b.spent_epsilon <= 1.0
    with pytest.raises(BudgetExceeded):
        ledger.reserve(["grant:z"], query_cost("zcdp", 0.01, grant_delta=1e-6), holder="h")


def test_zcdp_small_queries_compose_below_their_sum(ledger):
    ledger.open_account("grant:z", accounting="zcdp", epsilon=1.0, delta=1e-6)
    cost = query_cost("zcdp", 0.1, grant_delta=1e-6)
    n = 0
    while True:
        try:
            ledger.commit(ledger.reserve(["grant:z"], cost, holder="h"))
        except BudgetExceeded:
            break
        n += 1
    assert n == capacity("zcdp", 1.0, 1e-6).privacy_units // cost.privacy_units
    assert n > 10
    b = ledger.balance("grant:z")
    assert b.spent_epsilon <= 1.0 and b.remaining_units >= 0


def test_remaining_epsilon_of_a_zcdp_grant_is_spendable_in_one_query(ledger):
    ledger.open_account("grant:z", accounting="zcdp", epsilon=1.0, delta=1e-6)
    ledger.commit(ledger.reserve(["grant:z"], query_cost("zcdp", 0.5, grant_delta=1e-6), holder="h"))
    left = ledger.balance("grant:z").remaining_epsilon
    assert left > 0.5  # the zCDP discount
    ledger.commit(ledger.reserve(["grant:z"], query_cost("zcdp", left, grant_delta=1e-6), holder="h"))
    assert ledger.balance("grant:z").remaining_units >= 0


def test_ten_thousand_releases_fit_a_grant_exactly(ledger):
    # exactness, not durability, is under test: skip the fsync per transaction so the test
    # does not measure the disk (20,000 durable commits take minutes on a busy machine)
    ledger.conn.execute("PRAGMA synchronous=OFF")
    ledger.open_account("grant:g", accounting="pure", epsilon=1.0, delta=0.0)
    cost = pure(1e-4)
    for _ in range(10_000):
        ledger.commit(ledger.reserve(["grant:g"], cost, holder="h"))
    b = ledger.balance("grant:g")
    assert b.committed_units == to_units(1.0) and b.remaining_units == 0
    assert b.spent_epsilon == 1.0
    with pytest.raises(BudgetExceeded):
        ledger.reserve(["grant:g"], Cost(rho=None, epsilon=1e-15), holder="h")


def test_a_reservation_carries_the_audit_contract(ledger):
    ledger.open_account("grant:g1", accounting="pure", epsilon=1.0, delta=1e-6)
    ledger.open_account("dataset:d", accounting="pure", epsilon=2.0, delta=1e-6)
    res = ledger.reserve(["grant:g1", "dataset:d", "grant:g1"], pure(0.2, 1e-8), holder="h")
    assert res.account_ids == ("grant:g1", "dataset:d")
    assert res.audit_fields() == {
        "charged": True,
        "reservation": res.id,
        "accounts": ["grant:g1", "dataset:d"],
        "cost_units": {"privacy": to_units(0.2), "delta": to_units(1e-8)},
    }
    assert (res.privacy_units, res.delta_units) == (to_units(0.2), to_units(1e-8))


def test_dataset_cap_follows_a_lowered_policy_cap_and_keeps_what_was_spent(ledger):
    ledger.open_account("dataset:d", accounting="pure", epsilon=10.0, delta=1e-6)
    ledger.commit(ledger.reserve(["dataset:d"], pure(3.0), holder="h"))
    assert ledger.retarget("dataset:d", accounting="pure", epsilon=10.0, delta=1e-6) is None   # same terms
    old = ledger.retarget("dataset:d", accounting="pure", epsilon=5.0, delta=1e-6)
    assert old == {"accounting": "pure", "epsilon": 10.0, "delta": 1e-6}
    b = ledger.balance("dataset:d")
    assert (b.granted_epsilon, b.spent_epsilon, b.remaining_epsilon) == (5.0, 3.0, 2.0)
    with pytest.raises(BudgetExceeded):
        ledger.reserve(["dataset:d"], pure(2.5), holder="h")
    # below what was spent: nothing left, the spend stays on the books
    ledger.retarget("dataset:d", accounting="pure", epsilon=1.0, delta=1e-6)
    b = ledger.balance("dataset:d")
    assert (b.granted_epsilon, b.spent_epsilon, b.remaining_units) == (1.0, 3.0, 0)
    with pytest.raises(BudgetExceeded):
        ledger.reserve(["dataset:d"], pure(0.01), holder="h")
    # raised again: the room above the spend comes back, exactly
    ledger.retarget("dataset:d", accounting="pure", epsilon=4.0, delta=1e-6)
    assert ledger.balance("dataset:d").remaining_units == to_units(1.0)


def test_dataset_cap_follows_delta_and_zcdp_capacity(ledger):
    ledger.open_account("dataset:d", accounting="zcdp", epsilon=10.0, delta=1e-6)
    ledger.retarget("dataset:d", accounting="zcdp", epsilon=4.0, delta=1e-7)
    cap = capacity("zcdp", 4.0, 1e-7)
    b = ledger.balance("dataset:d")
    assert (b.cap_units, b.delta_cap_units, b.conversion_delta) == (cap.privacy_units, cap.delta_units, cap.conversion_delta)


def test_dataset_cap_change_is_refused_in_flight_or_across_accountings_and_changes_nothing(ledger):
    ledger.open_account("dataset:d", accounting="pure", epsilon=10.0, delta=1e-6)
    # nothing spent yet: the accounting may change
    assert ledger.retarget("dataset:d", accounting="zcdp", epsilon=10.0, delta=1e-6, check_only=True) is not None
    assert ledger.balance("dataset:d").accounting == "pure"                  # check_only changed nothing
    res = ledger.reserve(["dataset:d"], pure(1.0), holder="h")
    before = ledger.balance("dataset:d")
    with pytest.raises(PolicyError, match="in flight"):
        ledger.retarget("dataset:d", accounting="pure", epsilon=5.0, delta=1e-6)
    assert ledger.balance("dataset:d") == before
    ledger.commit(res)
    before = ledger.balance("dataset:d")
    with pytest.raises(PolicyError, match="accounting cannot change"):
        ledger.retarget("dataset:d", accounting="zcdp", epsilon=10.0, delta=1e-6)
    assert ledger.balance("dataset:d") == before
    assert ledger.retarget("dataset:nope", accounting="pure", epsilon=1.0, delta=1e-6) is None
