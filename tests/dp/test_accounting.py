"""Budget algebra: exact units, zCDP <-> (ε, δ) conversions, and the accounting convention."""

from __future__ import annotations

import math
import subprocess
import sys
from decimal import Decimal
from fractions import Fraction

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pdbg.dp import accounting as acc
from pdbg.dp.accounting import (
    Cost,
    capacity,
    classic_epsilon_to_rho,
    classic_rho_to_epsilon,
    epsilon_to_rho,
    epsilon_to_rho_units,
    from_units,
    query_cost,
    rho_to_epsilon,
    to_units,
    units_to_epsilon,
)
from pdbg.errors import PolicyError

# -- units -----------------------------------------------------------------------


def test_typed_decimals_are_exact_units():
    assert to_units(0.1) == 10**14
    assert to_units(0.1, "down") == 10**14
    assert to_units(1.0) == 10**15
    assert to_units(0.0) == 0
    assert from_units(10**14) == 0.1


def test_rounding_direction_costs_up_capacities_down():
    assert to_units(1e-16, "up") == 1
    assert to_units(1e-16, "down") == 0
    assert to_units(2.5e-15, "up") == 3
    assert to_units(2.5e-15, "down") == 2


@pytest.mark.parametrize("bad", [-0.1, math.inf, math.nan, 1e4])
def test_invalid_amounts_are_refused_with_a_hint(bad):
    with pytest.raises(PolicyError) as ei:
        to_units(bad)
    assert ei.value.hint


def test_round_mode_is_checked():
    with pytest.raises(ValueError):
        to_units(0.1, "nearest")  # type: ignore[arg-type]


@given(st.floats(min_value=0, max_value=4000, allow_nan=False))
def test_up_and_down_bracket_the_value_within_one_unit(x):
    up, down = to_units(x, "up"), to_units(x, "down")
    assert 0 <= up - down <= 1
    exact = Fraction(Decimal(repr(x))) * 10**15
    assert down <= exact <= up


@given(st.integers(min_value=0, max_value=10**15 - 1))
def test_units_round_trip_below_one(n):
    assert to_units(from_units(n), "up") == n
    assert to_units(from_units(n), "down") == n


def test_ten_thousand_releases_do_not_drift():
    costs = [to_units(1e-4)] * 10_000
    assert sum(costs) == to_units(1.0)  # exactly the grant: the 10,000th fits, the 10,001st does not
    assert sum([1e-4] * 10_000) != 1.0  # what float accounting would have believed


@settings(max_examples=200)
@given(st.lists(st.integers(min_value=1, max_value=10**6), min_size=1, max_size=10_000))
def test_sums_of_unit_costs_are_exact(micros):
    # each cost is a typed decimal with six places (e.g. 0.000123): its unit form is exact,
    # so any number of them sums to exactly the decimal total
    units = sum(to_units(m / 10**6) for m in micros)
    assert units == sum(micros) * 10**9


# -- conversions -----------------------------------------------------------------


def test_rho_to_epsilon_matches_opendp_reference():
    assert rho_to_epsilon(0.125, 1e-6) == pytest.approx(2.419, abs=1e-3)


def test_opendp_conversion_is_tighter_than_the_classic_bound():
    for rho in (1e-4, 0.01, 0.125, 1.0):
        assert rho_to_epsilon(rho, 1e-6) <= classic_rho_to_epsilon(rho, 1e-6)


def test_zero_and_invalid_inputs():
    assert rho_to_epsilon(0.0, 1e-6) == 0.0
    assert epsilon_to_rho(0.0, 1e-6) == 0.0
    with pytest.raises(PolicyError):
        rho_to_epsilon(0.1, 0.0)
    with pytest.raises(PolicyError):
        rho_to_epsilon(-0.1, 1e-6)
    with pytest.raises(PolicyError):
        epsilon_to_rho(1.0, 1.0)


@settings(max_examples=15, deadline=None)
@given(
    st.floats(min_value=1e-3, max_value=20.0),
    st.sampled_from([1e-5, 5e-7, 1e-9]),
)
def test_epsilon_to_rho_round_trips_and_is_nearly_maximal(eps, delta):
    k = epsilon_to_rho_units(eps, delta)
    assert rho_to_epsilon(epsilon_to_rho(eps, delta), delta) <= eps
    # the largest such ρ up to 1e-10 relative (one conversion instead of a bisection)
    assert rho_to_epsilon(from_units(k + (k >> 33) + 2), delta) > eps
    assert k >= to_units(classic_epsilon_to_rho(eps, delta), "down")  # never worse than the classic bound


def test_classic_forms_are_inverse():
    for eps in (0.05, 1.0, 7.0):
        assert classic_rho_to_epsilon(classic_epsilon_to_rho(eps, 1e-6), 1e-6) == pytest.approx(eps, rel=1e-12)


def test_fallback_without_opendp_is_conservative(monkeypatch):
    def broken(rho, delta):
        raise RuntimeError("no OpenDP")

    acc.rho_to_epsilon.cache_clear()
    acc.epsilon_to_rho_units.cache_clear()
    monkeypatch.setattr(acc, "_opendp_rho_to_epsilon", broken)
    try:
        eps = rho_to_epsilon(0.125, 1e-6)
        assert eps == classic_rho_to_epsilon(0.125, 1e-6)
        assert eps > 2.419  # looser: a larger ε for the same ρ
        k = epsilon_to_rho_units(1.0, 1e-6)
        assert rho_to_epsilon(from_units(k), 1e-6) <= 1.0
    finally:
        monkeypatch.undo()
        acc.rho_to_epsilon.cache_clear()
        acc.epsilon_to_rho_units.cache_clear()
    assert rho_to_epsilon(0.125, 1e-6) == pytest.approx(2.419, abs=1e-3)


# -- costs and capacities --------------------------------------------------------


def test_zcdp_query_at_the_full_grant_uses_exactly_the_capacity():
    cap = capacity("zcdp", 1.0, 1e-6)
    cost = query_cost("zcdp", 1.0, grant_delta=1e-6)
    assert cost.privacy_units == cap.privacy_units
    assert cap.conversion_delta == 5e-7
    assert cap.delta_units == to_units(5e-7)
    assert units_to_epsilon("zcdp", cap.privacy_units, cap.conversion_delta) <= 1.0


def test_zcdp_discount_many_small_queries_fit():
    cap = capacity("zcdp", 1.0, 1e-6)
    small = query_cost("zcdp", 0.1, grant_delta=1e-6)
    assert cap.privacy_units // small.privacy_units > 10  # composition of ρ beats ten at ε/10


def test_pure_accounting_is_basic_composition():
    cap = capacity("pure", 1.0, 1e-6)
    cost = query_cost("pure", 0.1, grant_delta=1e-6, selection_delta=1e-7)
    assert cost.rho is None and cost.accounting == "pure"
    assert 10 * cost.privacy_units == cap.privacy_units
    assert 10 * cost.delta_units == cap.delta_units
    assert cap.conversion_delta == 0.0


def test_cost_forms():
    c = Cost(rho=0.01, epsilon=0.5, delta=1e-8)
    assert c.accounting == "zcdp"
    assert c.units() == {"privacy": to_units(0.01), "delta": to_units(1e-8)}
    assert c.to_dict()["units"] == c.units()
    assert Cost.zero().is_zero and Cost.zero("pure").accounting == "pure"
    with pytest.raises(PolicyError):
        Cost(rho=None, epsilon=-1.0)
    with pytest.raises(PolicyError):
        Cost(rho=None, epsilon=0.1, delta=1.0)
    with pytest.raises(PolicyError):
        capacity("renyi", 1.0, 1e-6)  # type: ignore[arg-type]
    with pytest.raises(PolicyError):
        capacity("zcdp", 1.0, 0.0)  # zCDP needs a δ to be shown as (ε, δ)


def test_importing_accounting_is_cheap_and_never_loads_the_prelude():
    code = (
        "import sys\n"
        "import pdbg.dp.accounting as a\n"
        "assert 'opendp' not in sys.modules, 'opendp imported eagerly'\n"
        "a.rho_to_epsilon(0.125, 1e-6)\n"
        "assert 'opendp.prelude' not in sys.modules\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


def test_epsilon_to_rho_costs_one_opendp_conversion(monkeypatch):
    """A fresh ε on the query path must not run a bisection of OpenDP calls (~2 ms each)."""
    import pdbg.dp.accounting as acc

    calls = []
    real = acc._opendp_rho_to_epsilon
    monkeypatch.setattr(acc, "_opendp_rho_to_epsilon", lambda r, d: calls.append(r) or real(r, d))
    acc.rho_to_epsilon.cache_clear()
    acc.epsilon_to_rho_units.cache_clear()
    try:
        for eps in (0.0123, 0.1, 0.87, 3.3):
            calls.clear()
            k = epsilon_to_rho_units(eps, 5e-7)
            assert len(calls) == 1 and rho_to_epsilon(from_units(k), 5e-7) <= eps
    finally:
        acc.rho_to_epsilon.cache_clear()
        acc.epsilon_to_rho_units.cache_clear()


@pytest.mark.parametrize("delta", [1e-9, 5e-7, 1e-5])
@pytest.mark.parametrize("rho", [1e-6, 1e-4, 0.0213, 0.125, 0.5, 3.0, 40.0])
def test_rho_to_epsilon_is_opendps_conversion_certified_never_below(rho, delta):
    """The shown ε is a closed-form proposal certified by OpenDP's own δ(ε): never below the ε
    OpenDP's search returns (so never understates what was spent), and within 1e-11 of it."""
    import math

    import pdbg.dp.accounting as acc

    _, to_approx = acc._opendp_converter()
    reference = float(to_approx.map(math.sqrt(2 * rho)).epsilon(delta))
    ours = acc._opendp_rho_to_epsilon(rho, delta)
    assert reference <= ours <= reference * (1 + 1e-11)
    assert float(to_approx.map(math.sqrt(2 * rho)).delta(ours)) <= delta
