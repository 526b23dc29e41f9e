"""The resolved-query allowlist (pdbg/sql/rules/resolved_allowlist.py): what is checked is what runs.

Each query below hides something in a place the typed-query rules did not look at (a CTE
column substituted into a key, a join condition copied into the base scan, HAVING/ORDER BY
re-rendered for post-processing). The planner must refuse all of them before any data is
touched, with the stated rule; the ordinary corpus still plans (tests/sql/test_corpus.py).
"""

from __future__ import annotations

import pytest

from pdbg.errors import QueryRejected
from pdbg.sql import plan_query

HIDDEN = [
    # subqueries in every clause the planner re-renders
    ("subquery", "SELECT service, COUNT(*) AS n FROM requests GROUP BY service "
                 "HAVING len(ARRAY(SELECT user_id FROM requests)) > 0"),
    ("subquery", "SELECT service, COUNT(*) AS n FROM requests GROUP BY service ORDER BY ARRAY(SELECT #2 FROM requests)"),
    ("subquery", "SELECT service, COUNT(*) AS n FROM requests GROUP BY service ORDER BY (SELECT 1)"),
    ("subquery", "WITH c AS (SELECT ts, (SELECT ts FROM requests WHERE status = 503 LIMIT 1) AS x FROM requests) "
                 "SELECT time_bucket(INTERVAL '5 minutes', x) AS t, COUNT(*) AS n FROM c GROUP BY t"),
    ("subquery", "WITH c AS (SELECT ts, ARRAY(SELECT user_id FROM requests) AS x FROM requests) "
                 "SELECT COUNT(*) AS n FROM c WHERE len(x) > 3"),
    ("subquery", "SELECT COUNT(*) AS n FROM (SELECT service, (SELECT 1) AS one FROM requests) s WHERE one = 1"),
    ("subquery", "SELECT team, COUNT(*) AS n FROM requests JOIN services "
                 "ON services.service = (SELECT service FROM requests LIMIT 1) GROUP BY team"),
    ("subquery", "SELECT COUNT(*) AS n FROM requests WHERE EXISTS (SELECT 1 FROM requests r2 WHERE r2.status = 503)"),
    ("subquery", "SELECT COUNT(*) AS n FROM requests WHERE status IN (SELECT status FROM requests)"),
    ("subquery", "SELECT SUM(CASE WHEN (SELECT COUNT(*) FROM requests) > 5 THEN 1 ELSE 0 END) AS s FROM requests"),
    ("subquery", "SELECT COUNT(*) FILTER (WHERE status = (SELECT 503)) AS n FROM requests"),
    ("subquery", "SELECT COUNT(*) AS n FROM requests WHERE CAST((SELECT 1) AS INTEGER) = 1"),
    # positional references, stars, nested types
    ("unsupported-expression", "SELECT service, COUNT(*) AS n FROM requests GROUP BY service HAVING #2 > 3"),
    ("unsupported-expression", "SELECT service, COUNT(*) AS n FROM requests GROUP BY service ORDER BY #1"),
    ("no-star", "WITH c AS (SELECT * REPLACE (user_id AS service) FROM requests) "
                "SELECT service, COUNT(*) AS n FROM c GROUP BY service"),
    ("no-star", "WITH c AS (SELECT * RENAME (user_id AS uid) FROM requests) SELECT COUNT(*) AS n FROM c"),
    ("unsupported-expression", "SELECT [service] AS k, COUNT(*) AS n FROM requests GROUP BY k"),
    ("unsupported-expression", "SELECT COUNT(*) AS n FROM requests WHERE len([service, region]) = 2"),
    ("unsupported-expression", "SELECT CAST(service AS VARCHAR[]) AS k, COUNT(*) AS n FROM requests GROUP BY k"),
    ("unsupported-expression", "WITH c AS (SELECT [user_id] AS l FROM requests) SELECT COUNT(*) AS n FROM c"),
    # query-chosen constants above the policy's bounds (overflow only when rows match)
    ("unbounded-value", "SELECT SUM(1e17) AS s FROM requests"),
    ("unbounded-value", "SELECT SUM(9223372036854775807) AS s FROM requests"),
    ("unbounded-value", "SELECT SUM(CASE WHEN status = 503 THEN 1e17 ELSE 0 END) AS s FROM requests"),
    ("unbounded-value", "SELECT AVG(CASE WHEN status = 503 THEN -1e300 ELSE 0 END) AS a FROM requests"),
    ("unbounded-value", "SELECT quantile_cont(CASE WHEN status = 503 THEN 1e17 END, 0.5) AS q FROM requests"),
]


@pytest.mark.parametrize("rule,sql", HIDDEN, ids=[f"{i:02d}-{r}" for i, (r, _) in enumerate(HIDDEN)])
def test_hidden_constructs_are_refused_before_data(rule, sql, policy):
    with pytest.raises(QueryRejected) as info:
        plan_query(sql, policy)
    assert info.value.rule == rule, info.value
    assert info.value.hint
    assert "__r." not in info.value.message       # internal aliases never reach the investigator


@pytest.mark.parametrize("sql", [
    "SELECT SUM(CASE WHEN status >= 500 THEN 1 ELSE 0 END) AS errors FROM requests",
    "SELECT SUM(CASE WHEN status >= 500 THEN 1000 ELSE 0 END) AS s FROM requests",      # within the bytes bound
    "SELECT service, quantile_cont(latency_ms, [0.5, 0.99]) AS q FROM requests GROUP BY service",
    "SELECT COUNT(*) AS n FROM requests WHERE CAST(status AS VARCHAR) LIKE '5%'",
    "WITH c AS (SELECT * EXCLUDE (message) FROM requests WHERE status >= 500) "
    "SELECT service, COUNT(*) AS n FROM c GROUP BY service",
])
def test_ordinary_constructs_still_plan(sql, policy):
    plan_query(sql, policy)


def test_the_ceiling_is_the_widest_policy_bound(policy):
    from pdbg.sql.measures import value_ceiling

    assert value_ceiling(policy) == 30000      # latency_ms [0, 30000] is the widest metric bound
    plan_query("SELECT SUM(CASE WHEN status = 500 THEN 30000 ELSE 0 END) AS s FROM requests", policy)
    with pytest.raises(QueryRejected, match="exceeds 30000"):
        plan_query("SELECT SUM(CASE WHEN status = 500 THEN 30001 ELSE 0 END) AS s FROM requests", policy)


@pytest.mark.parametrize("sql", [
    "SELECT COUNT(*) AS n FROM (SELECT * LIKE 's%' FROM requests) c",
    "SELECT COUNT(*) AS n FROM (SELECT * SIMILAR TO 's.*' FROM requests) c",
    "SELECT COUNT(*) AS n FROM (SELECT COLUMNS('s.*') FROM requests) c",
])
def test_pattern_stars_in_ctes_are_refused(sql, policy):
    with pytest.raises(QueryRejected) as info:
        plan_query(sql, policy)
    assert info.value.rule == "no-star"


def test_aggregates_too_wide_for_fixed_point_are_refused_before_data():
    """VARIANCE squares the half-width: with bounds of ±10^12 one unit's contribution passes BIGINT
    and the cast would fail only on units whose values reach the bounds."""
    import copy

    from pdbg.policy.model import parse_policy

    from .conftest import POLICY

    wide = copy.deepcopy(POLICY)
    wide["columns"]["latency_ms"]["bounds"] = [0, 1e12]
    p = parse_policy(wide)
    plan_query("SELECT AVG(latency_ms) AS a FROM requests", p)
    with pytest.raises(QueryRejected) as info:
        plan_query("SELECT VARIANCE(latency_ms) AS v FROM requests", p)
    assert info.value.rule == "unbounded-value" and "LEAST(GREATEST" in info.value.hint
    plan_query("SELECT VARIANCE(LEAST(GREATEST(latency_ms, 0), 1000)) AS v FROM requests", p)
