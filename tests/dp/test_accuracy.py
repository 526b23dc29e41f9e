"""Half-widths from noise scales, their inverse, and nominal coverage with the real sampler."""

from __future__ import annotations

import math

import pytest

from pdbg.dp import accuracy, noise


def _opendp_acc():
    import opendp.accuracy as a
    import opendp.mod as m

    m.enable_features("contrib")
    return a


@pytest.mark.parametrize("scale", [0.5, 3.0, 10.0, 400.0])
def test_half_width_follows_opendp(scale):
    a = _opendp_acc()
    assert accuracy.half_width("laplace", scale, 0.05) == math.ceil(a.discrete_laplacian_scale_to_accuracy(scale, 0.05)) - 1
    assert accuracy.half_width("gaussian", scale, 0.05) == math.ceil(a.discrete_gaussian_scale_to_accuracy(scale, 0.05)) - 1


def test_large_gaussian_scale_uses_analytic_bound_close_to_opendp():
    a = _opendp_acc()
    exact = math.ceil(a.discrete_gaussian_scale_to_accuracy(5000.0, 0.05)) - 1
    ours = accuracy.half_width("gaussian", 5000.0, 0.05)
    assert exact <= ours <= exact + 1


def test_laplace_half_width_exact_tail():
    # P(|Z| > h) = 2 q^{h+1} / (1+q) <= alpha, and h-1 would not do
    for b in (2.0, 17.0, 333.0):
        q = math.exp(-1 / b)
        h = accuracy.half_width("laplace", b, 0.05)
        assert 2 * q ** (h + 1) / (1 + q) <= 0.05 + 1e-12
        assert 2 * q**h / (1 + q) > 0.05 - 1e-9


@pytest.mark.parametrize("kind", ["gaussian", "laplace"])
@pytest.mark.parametrize("h", [1, 20, 137, 5000])
def test_accuracy_to_scale_round_trips(kind, h):
    s = accuracy.scale_for_half_width(kind, h, 0.05)
    assert accuracy.half_width(kind, s, 0.05) <= h
    assert accuracy.half_width(kind, s * 1.001, 0.05) >= h  # and it is (nearly) the largest such scale


@pytest.mark.parametrize("kind,scale", [("gaussian", 60.0), ("laplace", 45.0)])
def test_ci_covers_at_nominal_rate(kind, scale):
    """2,000 releases of an exact value with the real sampler: 95% ± 2% coverage."""
    exact = 1234
    h = accuracy.half_width(kind, scale, 0.05)
    draws = noise.add_noise([exact] * 2000, kind, scale)
    covered = sum(v - h <= exact <= v + h for v in draws) / len(draws)
    assert 0.93 <= covered <= 0.97
