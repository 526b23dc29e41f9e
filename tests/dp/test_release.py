"""Budget split, preview, accuracy ↔ ε, and full releases over hand-built plans."""

from __future__ import annotations

import math
import random
from fractions import Fraction

import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pdbg.dp import release as R
from pdbg.dp.accounting import epsilon_to_rho, to_units
from pdbg.sql.plan import KeySpec, Measure, OutputSpec, QuantileSpec

from .helpers import bins_of, count_plan, plan, policy, quantile_plan


def _rich_plan(kind="public"):
    cands = tuple(float(x) for x in range(0, 1001, 50))
    return plan(
        keys=[KeySpec("service", kind, ("api", "db", "web") if kind != "private" else None)],
        measures=[Measure("n", "count", 5), Measure("s", "sum", 5000), Measure("s2", "sum", 5_000_000),
                  Measure("u", "count_units", 1)],
        quantiles=[QuantileSpec("q", "latency_ms", (0.5, 0.99), cands, 5)],
        outputs=[OutputSpec("service", "key"), OutputSpec("n_req", "count", ("n",)),
                 OutputSpec("users", "count_units", ("u",)),
                 OutputSpec("avg_ms", "avg", ("n", "s"), mid=0.0, bounds=(0.0, 1000.0)),
                 OutputSpec("var_ms", "variance", ("n", "s", "s2"), bounds=(0.0, 250_000.0)),
                 OutputSpec("sd_ms", "stddev", ("n", "s", "s2"), bounds=(0.0, 1000.0)),
                 OutputSpec("p50", "quantile", quantile="q", alpha=0.5, bounds=(0.0, 1000.0)),
                 OutputSpec("p99", "quantile", quantile="q", alpha=0.99, bounds=(0.0, 1000.0))],
        g=3, k=5)


@pytest.mark.parametrize("accounting", ["zcdp", "pure"])
@pytest.mark.parametrize("kind", ["public", "private"])
@pytest.mark.parametrize("eps", [0.01, 0.1, 0.7, 1.0])
def test_shares_sum_exactly_to_query_cost(accounting, kind, eps):
    p, pol = _rich_plan(kind), policy(accounting)
    split = R.split_budget(p, eps, pol)
    cost = R.cost_of(p, eps, pol)
    assert sum(split.units) == cost.privacy_units
    assert sum(Fraction(c.weight) for c in split.components) / sum(c.weight for c in split.components) == 1
    if accounting == "zcdp":
        assert cost.privacy_units == to_units(epsilon_to_rho(eps, pol.delta / 2))
    else:
        assert cost.privacy_units == to_units(eps)
    assert cost.delta == (pol.partition_delta if kind == "private" else 0.0)
    names = [c.name for c in split.components]
    assert len(names) == len(set(names)) == 4 + 2 + 1 + (kind == "private")  # one ε for the query, no per-column charge


def test_preview_spends_nothing_and_touches_no_sampler(noise):
    p = _rich_plan()
    acc = R.preview(p, 0.5, policy())
    assert set(acc) == {"n_req", "users", "p50", "p99"}  # avg/var/sd depend on the private group size
    assert all(v > 0 for v in acc.values())
    assert noise.calls == []


@pytest.mark.parametrize("accounting", ["zcdp", "pure"])
@pytest.mark.parametrize("hw", [5, 20, 300])
def test_epsilon_for_accuracy_round_trips(accounting, hw):
    p, pol = count_plan(g=2, c=3), policy(accounting)
    eps = R.epsilon_for_accuracy(p, "errors", hw, pol)
    assert R.preview(p, eps, pol)["errors"] <= hw
    assert R.preview(p, eps * 0.98, pol)["errors"] > hw  # and barely so
    # quantile outputs: the half-width is a rank error in rows
    qp = quantile_plan([float(x) for x in range(100)], alphas=(0.5,))
    eq = R.epsilon_for_accuracy(qp, "p50", 200.0, pol)
    assert R.preview(qp, eq, pol)["p50"] <= 200.0 < R.preview(qp, eq * 0.98, pol)["p50"]


def test_epsilon_for_accuracy_refuses_avg():
    from pdbg.errors import QueryRejected

    with pytest.raises(QueryRejected):
        R.epsilon_for_accuracy(_rich_plan(), "avg_ms", 1.0, policy())


def _exact_rich(rng):
    rows, qrows = [], []
    cands = [float(x) for x in range(0, 1001, 50)]
    for svc, n, mu in [("web", 4000, 300.0), ("api", 900, 80.0)]:
        vals = [min(1000.0, max(0.0, rng.gauss(mu, 40.0))) for _ in range(n)]
        rows.append({"service": svc, "n": n, "s": round(sum(vals)), "s2": round(sum(v * v for v in vals)),
                     "u": n // 3, "__units": n // 3})
        for b, c in enumerate(bins_of(vals, cands)):
            if c:
                qrows.append({"service": svc, "__qid": "q", "__bin": b, "__n": c})
    return pd.DataFrame(rows), pd.DataFrame(qrows)


def test_zero_noise_release_equals_exact_and_fills_public_groups(noise):
    exact, qdf = _exact_rich(random.Random(1))
    out = R.release(_rich_plan(), exact, qdf, 0.5, policy())
    df = out.df
    assert list(df["service"]) == ["api", "db", "web"]  # sorted, and db (no rows) present
    web = df[df.service == "web"].iloc[0]
    assert web.n_req == 4000 and web.users == 4000 // 3
    assert web.avg_ms == pytest.approx(exact.s[0] / 4000)
    assert 20 < web.sd_ms < 60 and web.var_ms == pytest.approx(web.sd_ms**2)
    assert 250 <= web.p50 <= 350
    db = df[df.service == "db"].iloc[0]
    assert db.n_req == 0 and db.n_req_ci_low == 0
    for o in ("n_req", "users", "avg_ms", "var_ms", "sd_ms", "p50", "p99"):
        assert (df[f"{o}_ci_low"] <= df[o]).all() and (df[o] <= df[f"{o}_ci_high"]).all()
    assert df["n_req"].dtype == "int64"
    assert out.cost == R.cost_of(_rich_plan(), 0.5, policy())


def test_private_keys_selection_sorted_and_noise_counted(noise):
    exact = pd.DataFrame({"service": ["zeta", "alpha", "rare"], "n": [900, 800, 1], "__units": [900, 800, 1]})
    p = count_plan(kind="private", g=1)
    out = R.release(p, exact, None, 0.5, policy())
    assert list(out.df["service"]) == ["alpha", "zeta"]
    kinds = [c[0] for c in noise.calls]
    assert kinds == ["gaussian", "gaussian"]  # selection counts, then the measure
    assert any("partition selection" in n for n in out.notes)


def test_public_group_outside_domain_is_dropped(noise):
    exact = pd.DataFrame({"service": ["api", "intruder"], "n": [5, 7], "__units": [5, 7]})
    out = R.release(count_plan(), exact, None, 0.5, policy())
    assert list(out.df["service"]) == ["api", "db", "web"]


def test_no_group_by_single_row(noise):
    p = plan(measures=[Measure("n", "count", 1)], outputs=[OutputSpec("n", "count", ("n",))])
    out = R.release(p, pd.DataFrame({"n": [42], "__units": [42]}), None, 0.3, policy())
    assert out.df["n"].tolist() == [42]
    out = R.release(p, pd.DataFrame({"n": [], "__units": []}), None, 0.3, policy())
    assert out.df["n"].tolist() == [0]


@pytest.mark.parametrize("accounting", ["zcdp", "pure"])
def test_count_ci_coverage_over_2000_groups(accounting):
    """One release over 2,000 public groups = 2,000 independent releases (real sampler)."""
    domain = tuple(f"g{i:04d}" for i in range(2000))
    p = count_plan(domain=domain, c=1)
    exact = pd.DataFrame({"service": list(domain), "n": [5000] * 2000, "__units": [5000] * 2000})
    out = R.release(p, exact, None, 0.05, policy(accounting))
    df = out.df
    covered = ((df.errors_ci_low <= 5000) & (5000 <= df.errors_ci_high)).mean()
    assert 0.93 <= covered <= 0.97


def test_avg_ci_coverage():
    """Derived CIs (Bonferroni over S and N) cover at least nominally."""
    domain = tuple(f"g{i:03d}" for i in range(600))
    p = plan(keys=[KeySpec("k", "public", domain)],
             measures=[Measure("n", "count", 1), Measure("s", "sum", 100)],
             outputs=[OutputSpec("k", "key"), OutputSpec("a", "avg", ("n", "s"), mid=0.0, bounds=(0.0, 100.0))], g=1)
    exact = pd.DataFrame({"k": list(domain), "n": [400] * 600, "s": [400 * 37] * 600, "__units": [400] * 600})
    df = R.release(p, exact, None, 1.0, policy()).df
    assert ((df.a_ci_low <= 37) & (37 <= df.a_ci_high)).mean() >= 0.95


def test_quantile_release_rank_error_note_and_ci(noise):
    cands = [float(x) for x in range(0, 101, 10)]
    p = quantile_plan(cands, alphas=(0.5, 0.99), bounds=(0.0, 100.0))
    vals = [float(v % 100) + 0.5 for v in range(1000)]
    qdf = pd.DataFrame([{"service": "a", "__qid": "q", "__bin": b, "__n": c}
                        for b, c in enumerate(bins_of(vals, cands)) if c])
    out = R.release(p, pd.DataFrame({"service": ["a"], "__units": [300]}), qdf, 1.0, policy())
    row = out.df.iloc[0]
    assert row.p50 == 50.0 and row.p50_ci_low <= 50.0 <= row.p50_ci_high
    assert any(n.startswith("p50: rank within") for n in out.notes)
    assert out.accuracy["p99"].unit == "rows of rank"


def test_noise_step_is_fast():
    """Measured: the whole noise + derivation step for a typical query, after warm-up."""
    import time

    exact, qdf = _exact_rich(random.Random(2))
    p = _rich_plan()
    R.release(p, exact, qdf, 0.5, policy())
    t0 = time.perf_counter()
    for _ in range(10):
        R.release(p, exact, qdf, 0.5, policy())
    assert (time.perf_counter() - t0) / 10 < 0.1
    cp = count_plan()
    ce = pd.DataFrame({"service": ["api", "web"], "n": [3, 4], "__units": [3, 4]})
    R.release(cp, ce, None, 0.5, policy())
    t0 = time.perf_counter()
    for _ in range(20):
        R.release(cp, ce, None, 0.5, policy())
    assert (time.perf_counter() - t0) / 20 < 0.03


def test_time_keys_match_engine_timestamps(noise):
    from datetime import datetime, timedelta

    buckets = tuple(datetime(2026, 11, 1, 10, 0) + timedelta(minutes=5 * i) for i in range(12))
    p = plan(keys=[KeySpec("m", "time", buckets)], measures=[Measure("n", "count", 1)],
             outputs=[OutputSpec("m", "key"), OutputSpec("n", "count", ("n",))], g=4)
    exact = pd.DataFrame({"m": pd.to_datetime([buckets[3], buckets[1]]), "n": [7, 9], "__units": [7, 9]})
    df = R.release(p, exact, None, 0.5, policy()).df
    assert len(df) == 12 and list(df["m"]) == sorted(df["m"])
    assert df["n"].tolist() == [0, 9, 0, 7] + [0] * 8


_KEY = st.one_of(st.none(), st.integers(-3, 3))
_NAME = st.one_of(st.none(), st.sampled_from(["", "a", "B", "b", "é", "zz"]))


@settings(max_examples=150, deadline=None)
@given(st.lists(st.tuples(_KEY, _NAME), min_size=1, max_size=12))
def test_group_order_is_duckdbs_order_by_keys(keys):
    # Answers without ORDER BY skip post-processing, so this sort *is* their order.
    import duckdb

    class P:
        keys = ("k", "name")

    got = R._sort_keys(P, list(keys))
    con = duckdb.connect()
    con.execute("CREATE TABLE t (i INTEGER, k INTEGER, name VARCHAR)")
    con.executemany("INSERT INTO t VALUES (?, ?, ?)", [(i, *key) for i, key in enumerate(keys)])
    want = con.execute("SELECT k, name FROM t ORDER BY k, name, i").fetchall()
    assert got == want
