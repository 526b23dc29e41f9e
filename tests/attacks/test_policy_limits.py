"""Pitfall: analyst-settable privacy parameters (REFERENCE.md: BigQuery suggests ε=1e20
"for exploration"; pdbg never lets an investigator go beyond policy).

Defences (``Session._resolve_epsilon``, the planner, the policy model): ε above the
policy's per-query maximum, an accuracy target that would need more, and non-finite or
non-positive ε are refused before anything is spent; bounds in a query can only tighten
(see test_bounds_and_keys); k and g exist only in the dataset policy — no keyword, SQL
setting or query parameter reaches them. Every refusal charges nothing.

Proof the test can fail: the same ε is accepted under a policy whose maximum really is
higher (``test_the_refusal_is_the_policys``) — the refusals come from the policy limit,
not from some unrelated failure.
"""

from __future__ import annotations

import math

import pytest

import attack_support as S
from pdbg.errors import QueryRejected

SQL = "SELECT COUNT(*) AS n FROM t"


@pytest.fixture
def s(session_on):
    return session_on([S.row(f"u{i}") for i in range(50)], epsilon=2.0)


@pytest.mark.parametrize("eps", [1.0000001, 5.0, 1e20, math.inf, math.nan, 0.0, -1.0, "0.5", None.__class__])
def test_epsilon_beyond_policy_is_refused_and_free(s, eps):
    before = s.budget().spent_epsilon
    with pytest.raises(QueryRejected):
        s.sql(SQL, epsilon=eps)
    assert s.budget().spent_epsilon == before


@pytest.mark.parametrize("acc", [1e-9, 0.0, -5.0, math.nan, math.inf])
def test_accuracy_needing_more_than_policy_is_refused_and_free(s, acc):
    before = s.budget().spent_epsilon
    with pytest.raises(QueryRejected):
        s.sql(SQL, accuracy=acc)
    assert s.budget().spent_epsilon == before


def test_the_refusal_is_the_policys(session_on):
    s = session_on([S.row(f"u{i}") for i in range(50)], epsilon=8.0,
                   policy=S.policy_dict(epsilon={"max_per_query": 5.0, "case_default": 8.0}))
    assert s.sql(SQL, epsilon=5.0).cost.epsilon == pytest.approx(5.0)


def test_k_and_g_are_not_settable(s):
    from pdbg.ingest import datasets
    from pdbg.sql import plan_query

    policy = datasets.get_policy(s.ws, "t")
    for kw in ("max_rows_per_unit", "max_groups_per_unit", "k", "g", "bounds", "delta"):
        with pytest.raises(TypeError):
            s.sql(SQL, epsilon=0.1, **{kw: 1000})
    for bad in ("SET max_rows_per_unit = 1000", "PRAGMA max_groups_per_unit=100",
                "SELECT COUNT(*) AS n FROM t /* max_rows_per_unit=1000 */ ; SET threads=1"):
        with pytest.raises(QueryRejected):
            s.sql(bad, epsilon=0.1)
    with pytest.raises(QueryRejected):                  # parameters bind only to $names in the SQL
        plan_query("SELECT COUNT(*) AS n FROM t WHERE status = $k", policy,
                   params={"k": 1, "max_rows_per_unit": 1000, "max_groups_per_unit": 1000})
    p = plan_query("SELECT service, COUNT(*) AS n FROM t WHERE status = $k GROUP BY service", policy, params={"k": 1000})
    assert (p.k, p.g) == (policy.max_rows_per_unit, policy.max_groups_per_unit)
