"""Pitfall: bounds or keys derived from the private data (REFERENCE.md).

Defences:

* Value bounds come from the policy only (``pdbg.sql.bounds``). A query may tighten
  them (``LEAST(GREATEST(x, lo), hi)`` inside the policy range) but never loosen them;
  an expression pdbg cannot bound is refused. The sensitivity ``c`` of a sum follows
  from the policy bounds, and the engine clamps every row to them, so an outlier unit
  moves the exact sum by at most ``k·upper``.
* Keys of a public key come from the policy domain, not from the data: every domain
  value appears (a value absent from the data still gets a noisy row), and a value
  outside the domain never appears. The released key set is the same for neighbouring
  datasets, so it says nothing about any unit.
* Quantile candidates come from policy bounds (the plan is computed without data).

Proof the tests can fail: ``test_keys_from_data_leak`` shows that taking the domain
from the data (``SELECT DISTINCT``, what the defence replaces) makes the released key
set differ between neighbours; ``test_looser_bounds_are_not_honoured`` compares with a
policy whose bounds really are looser, where ``c`` and the exact sum do grow.
"""

from __future__ import annotations

import pytest

import attack_support as S
from pdbg.ingest.readers import READER_CONFIG
from pdbg.errors import QueryRejected


def _sum_measure(plan):
    (m,) = [m for m in plan.measures if m.kind == "sum"]
    return m


def test_looser_bounds_are_not_honoured(make_ws):
    from pdbg.engine.duckdb import DuckDBEngine
    from pdbg.sql import plan_query

    base = [S.row(f"u{i}", bytes_out=10) for i in range(20)]
    outlier = [S.row("big", bytes_out=10**9) for _ in range(5)]
    ws0, policy = make_ws(base)
    ws1, _ = make_ws(base + outlier)
    k, hi = policy.max_rows_per_unit, policy.columns["bytes_out"].bounds[1]

    strict = plan_query("SELECT SUM(bytes_out) AS s FROM t", policy)
    for loose_sql in ("SELECT SUM(LEAST(GREATEST(bytes_out, -100000), 100000000)) AS s FROM t",
                      "SELECT SUM(GREATEST(bytes_out, -5)) AS s FROM t",
                      "SELECT SUM(CAST(bytes_out AS BIGINT)) AS s FROM t"):
        p = plan_query(loose_sql, policy)
        assert _sum_measure(p).c == _sum_measure(strict).c == k * hi
        e0 = DuckDBEngine(ws0).execute(p, salt="x").groups
        e1 = DuckDBEngine(ws1).execute(p, salt="x").groups
        m = _sum_measure(p).id
        assert int(e1[m].iloc[0]) - int(e0[m].iloc[0]) == 5 * hi        # the outlier is clamped to the policy bound

    tighter = plan_query("SELECT SUM(LEAST(bytes_out, 100)) AS s FROM t", policy)
    assert _sum_measure(tighter).c == k * 100                             # tightening is honoured

    # control: under a policy with really looser bounds, c and the outlier's effect do grow
    looser = policy.model_copy(update={"columns": {**policy.columns, "bytes_out": policy.columns["bytes_out"].model_copy(
        update={"bounds": (0.0, 10.0**6)})}})
    p = plan_query("SELECT SUM(bytes_out) AS s FROM t", looser)
    assert _sum_measure(p).c == k * 10**6 > _sum_measure(strict).c


@pytest.mark.parametrize("sql", [
    "SELECT SUM(bytes_out * 1000) AS s FROM t",            # arithmetic: bounds unknown
    "SELECT SUM(status) AS s FROM t",                     # a column without policy bounds
    "SELECT AVG(LENGTH(message)) AS a FROM t",             # derived from private text
])
def test_unboundable_values_are_refused(make_ws, sql):
    from pdbg.sql import plan_query

    _, policy = make_ws([])
    with pytest.raises(QueryRejected) as err:
        plan_query(sql, policy)
    assert err.value.rule == "unbounded-value"


def test_public_keys_come_from_the_policy_domain(session_on):
    rows = [S.row(f"u{i}", service="a") for i in range(30)] + [S.row("odd", service="zzz-not-in-domain")]
    s = session_on(rows)
    r = s.sql("SELECT service, COUNT(*) AS n FROM t GROUP BY service", epsilon=0.2)
    assert list(r.df["service"]) == list("abcdefgh")                     # absent values still appear
    assert "zzz-not-in-domain" not in set(r.df["service"])


def test_quantile_candidates_come_from_policy_bounds(make_ws):
    from pdbg.sql import plan_query

    _, policy = make_ws([])
    q = plan_query("SELECT quantile_cont(latency_ms, 0.9) AS p FROM t", policy).quantiles[0]
    lo, hi = policy.columns["latency_ms"].bounds
    assert q.candidates[0] == lo and q.candidates[-1] == hi


@pytest.mark.parametrize("defence", ["on", "off"])
def test_keys_from_data_leak(make_ws, defence):
    """Neighbours differ by one unit with a rare service; does the released key set differ?"""
    import dataclasses

    import duckdb

    from pdbg.dp.release import release
    from pdbg.engine.duckdb import DuckDBEngine
    from pdbg.sql import plan_query
    from pdbg.sql.plan import KeySpec

    base = [S.row(f"u{i}", service="abcd"[i % 4]) for i in range(40)]
    ws0, policy = make_ws(base)
    ws1, _ = make_ws(base + [S.row("rare", service="h")])
    plan = plan_query("SELECT service, COUNT(*) AS n FROM t GROUP BY service", policy)
    released = []
    for ws in (ws0, ws1):
        p = plan
        if defence == "off":
            con = duckdb.connect(str(ws.data_path), read_only=True, config=dict(READER_CONFIG))  # the config pdbg readers share
            seen = tuple(sorted(v for (v,) in con.execute("SELECT DISTINCT service FROM t").fetchall()))
            con.close()
            p = dataclasses.replace(plan, keys=(KeySpec("service", "public", seen),))
        exact = DuckDBEngine(ws).execute(p, salt="x")
        released.append(list(release(p, exact.groups, None, 0.5, policy).df["service"]))
    if defence == "on":
        assert released[0] == released[1] == list("abcdefgh")
    else:
        assert released[0] != released[1]                                 # "h" betrays the extra unit
