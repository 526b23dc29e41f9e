"""Pitfall: group-existence leaks through rare keys (REFERENCE.md).

Defence: DP partition selection for private keys (``pdbg.dp.partition``): a group of a
private key is released only if its noisy distinct-unit count clears a threshold τ set
so that a group held by a single unit appears with probability ≤ partition_delta.

Statistical check at real scale: the real OpenDP sampler and the real release step, a
private ``endpoint`` whose value ``/secret`` belongs to ONE unit, released 2,000 times at
the policy's maximum ε (the least noise an investigator can get). Under the defence the
expected number of appearances is ≤ 2,000 · δ = 2e-5, so any appearance fails the test.
A group held by many units is released every time (the test can see groups at all).

Proof the test can fail: ``defence="off"`` releases the same engine output with the key
treated as public with its domain read from the data (what a system deriving keys from
data does) — ``/secret`` then appears in every release.
"""

from __future__ import annotations

import dataclasses

import pytest

import attack_support as S

SQL = "SELECT endpoint, COUNT(*) AS n FROM t GROUP BY endpoint"
RUNS = 2000


@pytest.mark.parametrize("defence", ["on", "off"])
def test_a_single_units_group_never_appears(make_ws, defence):
    from pdbg.dp.release import release
    from pdbg.engine.duckdb import DuckDBEngine
    from pdbg.sql import plan_query
    from pdbg.sql.plan import KeySpec

    rows = [S.row(f"u{i}", endpoint="/popular") for i in range(2000)] + [S.row("lonely", endpoint="/secret")]
    ws, policy = make_ws(rows)
    plan = plan_query(SQL, policy)
    assert plan.needs_selection
    exact = DuckDBEngine(ws).execute(plan, salt="s")
    assert "/secret" in set(exact.groups["endpoint"])              # the engine does see it
    if defence == "off":
        seen = tuple(sorted(exact.groups["endpoint"]))           # keys taken from the private data
        plan = dataclasses.replace(plan, keys=(KeySpec("endpoint", "public", seen),))
    eps = policy.epsilon.max_per_query
    secret = popular = 0
    for _ in range(RUNS if defence == "on" else 50):
        keys = set(release(plan, exact.groups, exact.quantile_bins, eps, policy).df["endpoint"])
        secret += "/secret" in keys
        popular += "/popular" in keys
    if defence == "on":
        assert secret == 0
        assert popular == RUNS
    else:
        assert secret == 50                                      # the attack succeeds without selection


def test_end_to_end_session_hides_the_rare_group(session_on):
    rows = [S.row(f"u{i}", endpoint="/popular") for i in range(2000)] + [S.row("lonely", endpoint="/secret")]
    s = session_on(rows, epsilon=2.0)
    r = s.sql(SQL, epsilon=1.0)
    assert list(r.df["endpoint"]) == ["/popular"]
    assert any("partition selection" in n for n in r.notes)
