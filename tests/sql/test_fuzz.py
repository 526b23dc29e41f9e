"""Hypothesis: generated SQL never crashes the checker (only Plan or QueryRejected), and an accepted
query's bounded SQL reads the private table exactly once, inside the bounding CTE ``__base``."""

from __future__ import annotations

import sqlglot
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlglot import exp

from pdbg.errors import QueryRejected
from pdbg.sql import plan_query

from .conftest import POLICY
from pdbg.policy.model import parse_policy

_POLICY = parse_policy(POLICY)
COLS = ["service", "region", "status", "latency_ms", "bytes_out", "user_id", "message", "ts", "error_code",
        "endpoint", "session_id", "client_ip", "nope", "team"]
AGGS = ["COUNT(*)", "COUNT({c})", "COUNT(DISTINCT {c})", "SUM({c})", "AVG({c})", "STDDEV({c})", "MIN({c})",
        "quantile_cont({c}, 0.9)", "quantile_cont({c}, [0.5, 0.99])", "median({c})", "list({c})",
        "SUM(CASE WHEN {c} > 1 THEN 1 ELSE 0 END)", "COUNT(*) FILTER (WHERE {c} IS NOT NULL)",
        "percentile_cont(0.5) WITHIN GROUP (ORDER BY {c})", "row_number() OVER ()", "{c}"]
WHERES = ["", "WHERE {c} > 5", "WHERE {c} LIKE '%x%'", "WHERE {c} IN (1, 'a')", "WHERE CAST({c} AS INT) = 3",
          "WHERE ts >= TIMESTAMP '2026-11-20 13:00:00' AND ts < TIMESTAMP '2026-11-20 14:00:00'",
          "WHERE {c} IN (SELECT service FROM services)", "WHERE {c} IN (SELECT user_id FROM requests)",
          "WHERE random() < 0.5"]
FROMS = ["requests", "requests r", "requests JOIN services USING (service)", "read_csv('x')", "services",
         "(SELECT * FROM requests WHERE status = 500) t", "requests a JOIN requests b USING (user_id)"]
KEYS = ["{c}", "time_bucket(INTERVAL '10 minutes', ts)", "date_trunc('hour', ts)",
        "CASE WHEN {c} > 100 THEN 'hi' ELSE 'lo' END", "{c} > 3", "lower({c})"]
TAILS = ["", " ORDER BY 1", " ORDER BY 2 DESC LIMIT 3", " HAVING COUNT(*) > 2", " LIMIT 5", "; SELECT 1"]

col = st.sampled_from(COLS)


@st.composite
def queries(draw):
    n = draw(st.integers(0, 2))
    keys = [draw(st.sampled_from(KEYS)).format(c=draw(col)) for _ in range(n)]
    aggs = [draw(st.sampled_from(AGGS)).format(c=draw(col)) for _ in range(draw(st.integers(1, 3)))]
    items = [f"{k} AS k{i}" for i, k in enumerate(keys)] + [f"{a} AS a{i}" for i, a in enumerate(aggs)]
    sql = f"SELECT {', '.join(items)} FROM {draw(st.sampled_from(FROMS))} "
    sql += draw(st.sampled_from(WHERES)).format(c=draw(col))
    if keys:
        sql += " GROUP BY " + ", ".join(f"k{i}" for i in range(len(keys)))
    return sql + draw(st.sampled_from(TAILS))


def _check(sql: str) -> None:
    try:
        plan = plan_query(sql, _POLICY)
    except QueryRejected as err:
        assert err.rule and err.hint
        return
    for text in filter(None, (plan.bounded_sql, plan.quantile_sql)):
        tree = sqlglot.parse_one(text, read="duckdb")
        reads = [t for t in tree.find_all(exp.Table) if t.name == _POLICY.table]
        assert len(reads) == 1
        cte = reads[0].find_ancestor(exp.CTE)
        assert cte is not None and cte.alias == "__base"
        assert not any(isinstance(f, exp.Anonymous) and f.name.lower().startswith("read_") for f in tree.walk())


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(queries())
def test_generated_queries_plan_or_reject(sql):
    _check(sql)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from(list("SELCTOUNFRMWHGBYAD*(),;'$:0159 _.-=<>") + [
    "SELECT ", " FROM requests", "COUNT(", " GROUP BY ", "service", " AS x", " WHERE ", "latency_ms"]), max_size=30))
def test_random_text_never_crashes(tokens):
    _check("".join(tokens))
