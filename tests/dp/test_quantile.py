"""Quantile scores equal OpenDP's, sensitivities and scales match OpenDP's maps, and the
released candidates and value CIs meet their stated guarantees with the real sampler."""

from __future__ import annotations

import bisect
import math
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pdbg.dp import noise, quantile

from .helpers import bins_of


def _opendp():
    import opendp.domains as d
    import opendp.metrics as me
    import opendp.mod as mod
    import opendp.transformations as t

    mod.enable_features("contrib")
    return d, me, t


CANDS = [5.5, 10.5, 20.5, 40.5, 80.5, 160.5]


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(0, 200), max_size=60), st.sampled_from([0.0, 0.1, 0.25, 0.5, 0.9, 0.95, 0.99, 1.0]))
def test_scores_equal_opendp_on_tie_free_data(values, alpha):
    d, me, t = _opendp()
    trans = t.make_quantile_score_candidates(d.vector_domain(d.atom_domain(T=float, nan=False)),
                                             me.symmetric_distance(), CANDS, alpha=alpha)
    ours = quantile.scores(bins_of([float(v) for v in values], CANDS), alpha)
    assert ours == list(trans([float(v) for v in values]))


@pytest.mark.parametrize("alpha", [0.5, 0.9, 0.99, 0.1])
@pytest.mark.parametrize("k", [1, 10])
def test_score_sensitivity_equals_opendp_map(alpha, k):
    d, me, t = _opendp()
    trans = t.make_quantile_score_candidates(d.vector_domain(d.atom_domain(T=float, nan=False)),
                                             me.symmetric_distance(), CANDS, alpha=alpha)
    assert quantile.score_sensitivity(k, alpha) == trans.map(k)


@pytest.mark.parametrize("accounting,amount", [("pure", 0.3), ("zcdp", 0.01)])
@pytest.mark.parametrize("g", [1, 3])
def test_selection_scale_matches_noisy_max_map(accounting, amount, g):
    k, alpha = 10, 0.99
    s = quantile.selection_scale(k, alpha, g, accounting, amount)
    meas = noise.measurement("argmin_pure" if accounting == "pure" else "argmin_zcdp", s)
    per_group = meas.map(quantile.score_sensitivity(k, alpha))
    assert g * per_group == pytest.approx(amount, rel=1e-9)  # ≤ g groups, each its own selection


def _true_rank_ok(values_sorted, cands, idx, alpha, r):
    n = len(values_sorted)
    ranks = [bisect.bisect_left(values_sorted, c) for c in cands]
    best = min(abs(L - alpha * n) for L in ranks)
    return abs(ranks[idx] - alpha * n) <= best + r


@pytest.mark.parametrize("accounting,amount", [("pure", 0.5), ("zcdp", 0.02)])
def test_released_quantile_within_stated_rank_error(accounting, amount):
    """p50 and p99 of a log-normal sample, 400 independent releases each: ≥ 95% within ±r."""
    rng = random.Random(7)
    values = sorted(math.exp(rng.gauss(4.0, 0.8)) for _ in range(3000))
    cands = [float(x) for x in range(1, 1500, 7)]
    b = bins_of(values, cands)
    for alpha in (0.5, 0.99):
        s = quantile.selection_scale(1, alpha, 1, accounting, amount)
        r = quantile.rank_error(s, alpha, len(cands), 0.05)
        hits = sum(_true_rank_ok(values, cands, quantile.select(b, alpha, accounting, s), alpha, r) for _ in range(400))
        assert hits / 400 >= 0.95


@pytest.mark.parametrize("accounting,amount", [("pure", 1.0), ("zcdp", 0.05)])
def test_value_ci_covers_true_quantile(accounting, amount):
    rng = random.Random(3)
    values = sorted(rng.uniform(0, 1000) for _ in range(4000))
    cands = [float(x) for x in range(0, 1001, 25)]
    exact = bins_of(values, cands)
    for alpha in (0.5, 0.95):
        q_true = values[min(len(values) - 1, math.ceil(alpha * len(values)) - 1)]
        spec = quantile.histogram_noise(1, 1, accounting, amount)
        covered, widths = 0, []
        for _ in range(300):
            noisy = noise.add_noise(exact, spec.kind, spec.scale)
            lo, hi = quantile.value_ci(noisy, cands, alpha, spec, 0.05, (0.0, 1000.0))
            covered += lo <= q_true <= hi
            widths.append(hi - lo)
        assert covered / 300 >= 0.95
        assert sorted(widths)[150] < 500  # informative, not just the bounds


def test_ci_margins_cached_and_pure_margins_reasonable():
    t_lap = quantile.ci_margins("laplace", 10.0, 40, 0.5, 0.05)
    assert quantile.ci_margins("laplace", 10.0, 40, 0.5, 0.05) is t_lap
    t_gau = quantile.ci_margins("gaussian", 10.0 * math.sqrt(2), 40, 0.5, 0.05)  # same std per bin
    assert all(0 < a < 3 * b for a, b in zip(t_lap, t_gau))


def test_select_goes_through_hook(noise):
    b = bins_of([1.0, 2.0, 3.0, 50.0, 60.0], [0.5, 2.5, 55.0, 100.0])
    assert quantile.select(b, 0.5, "pure", 1.0) == 1  # exact argmin when the hook returns no noise
    assert noise.calls[0][0] == "argmin_pure"
