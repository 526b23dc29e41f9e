"""Partition selection: threshold maths vs OpenDP, rare groups stay hidden, big groups appear."""

from __future__ import annotations

import math

import pytest

from pdbg.dp import partition


def _opendp():
    import opendp.domains as d
    import opendp.measurements as m
    import opendp.metrics as me
    import opendp.mod as mod

    mod.enable_features("contrib")
    return d, m, me


@pytest.mark.parametrize("g", [1, 4, 16])
@pytest.mark.parametrize("eps", [0.05, 0.5, 2.0])
def test_laplace_threshold_matches_opendp(g, eps):
    d, m, me = _opendp()
    delta = 1e-8
    spec = partition.selection_noise(g, "pure", eps)
    tau = partition.selection_threshold(spec.kind, spec.scale, g, delta)
    meas = m.make_laplace_threshold(d.map_domain(d.atom_domain(T=str), d.atom_domain(T="i64")),
                                    me.l01inf_distance(me.absolute_distance(T="i64")), scale=spec.scale, threshold=tau)
    eps_od, delta_od = meas.map((g, g, 1))
    assert eps_od == pytest.approx(eps, rel=1e-9)
    assert delta_od <= delta * (1 + 1e-9)
    assert partition.selection_delta(spec.kind, spec.scale, g, tau - 1) > delta  # smallest such τ
    # the analytic δ equals OpenDP's (exact discrete Laplace tail)
    assert partition.selection_delta(spec.kind, spec.scale, g, tau) == pytest.approx(delta_od, rel=1e-6)


@pytest.mark.parametrize("g", [1, 4, 16])
@pytest.mark.parametrize("rho", [0.001, 0.05, 1.0])
def test_gaussian_threshold_is_conservative_vs_opendp(g, rho):
    d, m, me = _opendp()
    delta = 1e-8
    spec = partition.selection_noise(g, "zcdp", rho)
    tau = partition.selection_threshold(spec.kind, spec.scale, g, delta)
    meas = m.make_gaussian_threshold(d.map_domain(d.atom_domain(T=str), d.atom_domain(T="i64")),
                                     me.l02inf_distance(me.absolute_distance(T="i64")), scale=spec.scale, threshold=tau)
    rho_od, delta_od = meas.map((g, g, 1))
    assert rho_od == pytest.approx(rho, rel=1e-9)
    assert delta_od <= delta
    # not wastefully conservative: a threshold 3% lower would still be above OpenDP's need
    assert tau <= 1 + math.ceil(1.03 * spec.scale * math.sqrt(2 * math.log(g / delta)))


def test_threshold_is_cached_and_fast():
    import time

    t0 = time.perf_counter()
    for i in range(200):
        partition.selection_threshold("gaussian", 10.0 + i, 4, 1e-8)
    assert time.perf_counter() - t0 < 0.2


@pytest.mark.parametrize("accounting,amount", [("pure", 0.5), ("zcdp", 0.02)])
def test_single_unit_group_released_at_most_delta(accounting, amount):
    """With a large δ the release rate of a one-unit group is measurable: it stays ≤ δ/g."""
    delta, g = 0.02, 1
    sel = partition.select_partitions([1] * 20_000, g=g, accounting=accounting, amount=amount, delta=delta)
    rate = sum(sel.mask) / len(sel.mask)
    per_group = partition.selection_delta(sel.noise.kind, sel.noise.scale, g, sel.threshold)
    assert per_group <= delta
    assert rate <= per_group + 4 * math.sqrt(per_group / 20_000) + 1e-4


def test_many_unit_group_released_and_small_group_not():
    sel = partition.select_partitions([5000, 1, 0, 2], g=4, accounting="zcdp", amount=0.05, delta=1e-8)
    assert sel.mask == (True, False, False, False)
    assert sel.threshold > 2


def test_selection_uses_the_noise_hook(noise):
    noise.offset = 0
    sel = partition.select_partitions([10_000, 3], g=2, accounting="pure", amount=1.0, delta=1e-8)
    assert sel.mask == (True, False)
    assert noise.calls[0][0] == "laplace" and noise.calls[0][2] == 2
