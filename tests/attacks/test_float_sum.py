"""Pitfall: floating-point Laplace (Mironov 2012) and float-sum rounding (Casacuberta et al. 2022).

Defences:

* Sums are fixed-point integers: each clamped row value is rounded to a multiple of
  1/scale in SQL and summed as BIGINT/HUGEINT (exact, associative), then each unit's
  total is clamped in integer space. So no crafted float values — values that make a
  float sum depend on order or presence by more than the stated bound — can move the
  exact aggregate by more than the measure's ``c``, and row order changes nothing.
* Noise is integer (OpenDP's exact discrete Gaussian/Laplace) added to that integer:
  every released sum lies on the 1/scale grid whatever the input, so the low-order bits
  that betray the input under textbook float Laplace do not exist.

Proof the test can fail: the "float" branch sums the same crafted values as floats in two
orders and gets two different results (the effect the fixed-point path removes).
"""

from __future__ import annotations

import math

import attack_support as S

# values crafted to break float associativity; some beyond the bounds, NaN and ±inf included
CRAFTED = [0.1, 0.2, 0.3, 999.9995, 1000.0004999, 1e-300, 5e-324, 0.0005, 0.0015, 333.3333333333333,
           1e300, float("nan"), float("inf"), float("-inf"), 0.30000000000000004]


def test_float_sums_are_order_dependent_without_fixed_point():
    a = [0.1, 0.2, 0.3] * 1000 + [1e16, -1e16]
    assert sum(a) != sum(reversed(a)) or math.fsum(a) != sum(a)


def test_crafted_values_move_the_exact_sum_by_at_most_c_in_any_order(make_ws):
    from pdbg.engine.duckdb import DuckDBEngine
    from pdbg.sql import plan_query

    base = [S.row(f"u{i}", latency_ms=v) for i, v in enumerate(CRAFTED * 3)]
    target = [S.row("crafted", latency_ms=v) for v in CRAFTED]
    results = {}
    for name, rows in {"d0": base, "d1": base + target, "d1-reversed": (base + target)[::-1],
                       "d1-shuffled": (base + target)[1::2] + (base + target)[::2]}.items():
        ws, policy = make_ws(rows)
        for sql in ("SELECT SUM(latency_ms) AS s FROM t", "SELECT AVG(latency_ms) AS a FROM t"):
            plan = plan_query(sql, policy)
            g = DuckDBEngine(ws).execute(plan, salt="x").groups
            results[(name, sql)] = {m.id: int(g[m.id].iloc[0]) for m in plan.measures}
            for m in plan.measures:
                assert isinstance(results[(name, sql)][m.id], int)
            results[("plan", sql)] = plan
    for sql in ("SELECT SUM(latency_ms) AS s FROM t", "SELECT AVG(latency_ms) AS a FROM t"):
        plan = results[("plan", sql)]
        assert results[("d1", sql)] == results[("d1-reversed", sql)] == results[("d1-shuffled", sql)]
        for m in plan.measures:
            assert abs(results[("d1", sql)][m.id] - results[("d0", sql)][m.id]) <= m.c


def test_released_sums_lie_on_the_fixed_point_grid(make_ws):
    from pdbg.dp.release import release
    from pdbg.engine.duckdb import DuckDBEngine
    from pdbg.sql import plan_query

    ws, policy = make_ws([S.row(f"u{i}", latency_ms=v) for i, v in enumerate(CRAFTED * 3)])
    plan = plan_query("SELECT SUM(latency_ms) AS s FROM t", policy)
    (m,) = plan.measures
    assert m.kind == "sum" and m.scale > 1
    exact = DuckDBEngine(ws).execute(plan, salt="x")
    for _ in range(300):
        s = float(release(plan, exact.groups, None, 1.0, policy).df["s"].iloc[0])
        lo, hi = 0.0, policy.max_rows_per_unit * 1000.0 * 100
        if lo < s < hi:                                       # not clipped to the output range
            assert round(s * m.scale) == s * m.scale or abs(s * m.scale - round(s * m.scale)) < 1e-6
