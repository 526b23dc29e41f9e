"""Pitfalls: missing per-unit group cap, and join contribution blow-up (REFERENCE.md;
BigQuery without ``max_groups_contributed`` is not DP).

Defence: the bounded SQL (``pdbg.sql.rewrite``) pre-aggregates per (unit, group), caps
rows at k per group (``LEAST(count, k)``) and keeps at most g groups per unit, chosen by
a hash keyed with a secret per-query salt (not data order). The noise assumes exactly
that: L1 = g·c, L2 = √g·c. We compare the real engine's exact bounded aggregates on
neighbouring datasets that differ by one unit with 50 rows in each of 8 services (or 20
private endpoints): the difference must touch ≤ g groups by ≤ k each.

Proof the test can fail: ``defence="off"`` runs the same plan with bounding disabled by
the test-only hook (``attack_support.unbounded_plan``): the unit then moves 8 groups by
50 rows each, and the assertions of the "on" case would fail.
"""

from __future__ import annotations

import pytest

import attack_support as S

SERVICES = "abcdefgh"


def _diff(plan, e0, e1, measure: str) -> dict:
    names = [k.name for k in plan.keys]
    a = {tuple(r[n] for n in names): int(r[measure]) for r in e0.to_dict("records")}
    b = {tuple(r[n] for n in names): int(r[measure]) for r in e1.to_dict("records")}
    return {k: b.get(k, 0) - a.get(k, 0) for k in set(a) | set(b) if b.get(k, 0) != a.get(k, 0)}


@pytest.mark.parametrize("defence", ["on", "off"])
@pytest.mark.parametrize("key", ["public", "private"])
def test_one_unit_touches_at_most_g_groups_by_at_most_k(make_ws, defence, key):
    from pdbg.engine.duckdb import DuckDBEngine
    from pdbg.sql import plan_query

    col = "service" if key == "public" else "endpoint"
    values = list(SERVICES) if key == "public" else [f"/e{i}" for i in range(20)]
    base = [S.row(f"u{i}", **{col: values[i % len(values)]}) for i in range(60)]
    heavy = [S.row("heavy", **{col: v}) for v in values for _ in range(50)]
    ws0, policy = make_ws(base)
    ws1, _ = make_ws(base + heavy)
    plan = plan_query(f"SELECT {col}, COUNT(*) AS n, COUNT(DISTINCT user_id) AS u FROM t GROUP BY {col}", policy)
    g, k = policy.max_groups_per_unit, policy.max_rows_per_unit
    assert plan.g == g and plan.k == k
    run = plan if defence == "on" else S.unbounded_plan(plan, policy)
    e0 = DuckDBEngine(ws0).execute(run, salt="salt-1").groups
    e1 = DuckDBEngine(ws1).execute(run, salt="salt-1").groups
    n_m = next(o.measures[0] for o in plan.outputs if o.name == "n")
    u_m = next(o.measures[0] for o in plan.outputs if o.name == "u")
    rows, units = _diff(plan, e0, e1, n_m), _diff(plan, e0, e1, u_m)
    sel = _diff(plan, e0, e1, "__units")
    if defence == "on":
        assert len(rows) == g and all(0 < d <= k for d in rows.values())
        assert len(units) == g and all(d == 1 for d in units.values())
        assert len(sel) == g and all(d == 1 for d in sel.values())   # partition selection's count too
    else:
        assert len(rows) == len(values) and all(d == 50 for d in rows.values())


def test_which_groups_are_kept_depends_on_the_salt_not_on_data_order(make_ws):
    """The g kept groups are a keyed pseudo-random choice: different salts keep different sets."""
    from pdbg.engine.duckdb import DuckDBEngine
    from pdbg.sql import plan_query

    ws, policy = make_ws([S.row("heavy", service=v) for v in SERVICES for _ in range(3)])
    plan = plan_query("SELECT service, COUNT(*) AS n FROM t GROUP BY service", policy)
    m = plan.measures[0].id
    kept = set()
    for i in range(12):
        g = DuckDBEngine(ws).execute(plan, salt=f"salt-{i}").groups
        kept.add(tuple(sorted(g.loc[g[m] > 0, "service"])))
    assert all(len(s) == policy.max_groups_per_unit for s in kept)
    assert len(kept) > 1


def test_join_with_duplicate_public_keys_cannot_blow_up_a_contribution(make_ws):
    """A public table that maps one service to 3 teams multiplies rows; the caps still hold."""
    from pdbg.engine.duckdb import DuckDBEngine
    from pdbg.sql import plan_query

    pol = S.policy_dict(public_tables={"teams": {
        "columns": {"service": "string", "team": "string"}, "key": "service",
        "rows": [{"service": "a", "team": t} for t in ("x", "y", "z")] + [{"service": "b", "team": "w"}]}})
    base = [S.row(f"u{i}", service="b") for i in range(10)]
    heavy = [S.row("heavy", service="a") for _ in range(50)]
    ws0, policy = make_ws(base, policy=pol)
    ws1, _ = make_ws(base + heavy, policy=pol)
    for sql in ("SELECT COUNT(*) AS n FROM t JOIN teams ON t.service = teams.service",
                "SELECT teams.team, COUNT(*) AS n FROM t JOIN teams ON t.service = teams.service GROUP BY teams.team"):
        plan = plan_query(sql, policy)
        m = plan.measures[0].id
        e0 = DuckDBEngine(ws0).execute(plan, salt="s").groups
        e1 = DuckDBEngine(ws1).execute(plan, salt="s").groups
        d = _diff(plan, e0, e1, m) if plan.keys else {(): int(e1[m].iloc[0]) - int(e0[m].iloc[0])}
        assert len(d) <= plan.g and all(0 < v <= plan.k for v in d.values()), (sql, d)
