"""The independent verifier of executed SQL (pdbg/sql/verify.py), DESIGN.md invariant 9.

Three things are shown: every plan the planner writes for the corpus passes it; each way a
planner bug could smuggle something into the executed text (a subquery, a second read of the
dataset table, an unguarded cast, a clamp constant beyond the policy, a function outside the
allowlist, a positional reference, a foreign parameter) is caught; and with the planner's
own checks switched off, the attacks they stop are caught here instead (defence in depth).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from pdbg.errors import QueryRejected
from pdbg.sql import plan_query
from pdbg.sql.verify import verify_executed

CORPUS = [q.strip() for q in (Path(__file__).parents[1] / "fixtures" / "incident_queries.sql").read_text().splitlines()
          if q.strip() and not q.startswith("--")]
EXTRA = [
    "SELECT team, COUNT(*) AS n FROM requests JOIN services USING (service) GROUP BY team",
    "SELECT team, quantile_cont(latency_ms, [0.5, 0.9]) AS q, STDDEV(bytes_out) AS s FROM requests "
    "LEFT JOIN services USING (service) WHERE CAST(message AS INT) > 3 GROUP BY team",
    "SELECT error_code, quantile_cont(latency_ms, 0.5) AS q, AVG(bytes_out) AS s FROM requests GROUP BY 1",
    "SELECT service, COUNT(*) AS n FROM requests GROUP BY service HAVING COUNT(*) > 3 ORDER BY n DESC LIMIT 2",
    "SELECT service, COUNT(*) AS n FROM requests GROUP BY ALL ORDER BY ALL",
    # the investigator's own clamps inside the planner's may use any constants (the outer clamp bounds them)
    "SELECT SUM(LEAST(latency_ms, 1e9)) AS s, AVG(GREATEST(latency_ms, -1e18)) AS a FROM requests",
    "SELECT COUNT(*) AS n FROM requests WHERE LEAST(GREATEST(latency_ms, bytes_out), 1e20) > 5",
]


def _texts(plan):
    return [(k, t) for k, t in (("bounded", plan.bounded_sql), ("quantile", plan.quantile_sql),
                                ("post", plan.post_sql)) if t]


@pytest.mark.parametrize("sql", CORPUS + EXTRA)
def test_every_planned_text_passes(sql, policy):
    for kind, text in _texts(plan_query(sql, policy)):
        verify_executed(text, policy, kind=kind)


def _rejected(text, policy, kind="bounded"):
    with pytest.raises(QueryRejected) as info:
        verify_executed(text, policy, kind=kind)
    assert info.value.rule == "internal-verifier"
    return info.value.message


BASE = "SELECT service, COUNT(*) AS n FROM requests WHERE status >= 500 GROUP BY service"


@pytest.mark.parametrize("find,replace,why", [
    ("WHERE __r.status >= 500", "WHERE __r.status >= (SELECT MAX(status) FROM requests)", "outside the plan's steps"),
    ("WHERE __r.status >= 500", "WHERE __r.status >= 500 AND len(ARRAY(SELECT user_id FROM requests)) > 0",
     "outside the plan's steps"),
    ("SELECT service, CAST(LEAST(", "SELECT service, (SELECT COUNT(*) FROM requests) AS x, CAST(LEAST(",
     "outside the plan's steps"),
    ("FROM requests AS __r", "FROM requests AS __r, requests AS __x", "read 2 times"),
    ("FROM __capped GROUP BY", "FROM requests GROUP BY", "read 2 times"),
    ("__r.service AS service", "CAST(__r.message AS INTEGER) AS service", "cast in the base step"),
    ("__r.service AS service", "levenshtein(__r.message, 'x') AS service", "levenshtein"),
    ("__r.service AS service", "#2 AS service", "positional"),
    ("$salt", "$other", "parameter"),
    ("__heavy AS", "__evil AS", "unknown or repeated step"),
    ("__r.service AS service", "__r.internal_note AS service", "not a stored column"),
    ("1 AS __m0", "COUNT(*) AS __m0", "aggregate in the base step"),
    ("__r.service AS service", "__r.bytes_out * 9223372036854775807 AS service", "arithmetic in the base step"),
    ("__r.service AS service", "1 // (__r.bytes_out - 999) AS service", "arithmetic in the base step"),
    ("__r.service AS service", "strptime(__r.message, '%Y') AS service", "outside TRY"),
    ("1 AS __m0", "CAST(round(__r.bytes_out * 1000) AS BIGINT) AS __m0", "cast in the base step"),
])
def test_smuggled_constructs_are_caught(find, replace, why, policy):
    text = plan_query(BASE, policy).bounded_sql
    assert find in text
    assert why in _rejected(text.replace(find, replace, 1), policy)


def test_an_unguarded_join_condition_is_caught(policy):
    text = plan_query("SELECT team, COUNT(*) AS n FROM requests JOIN services ON services.service = "
                      "CASE WHEN 1 // (requests.bytes_out - 999) > 0 THEN 'api' END GROUP BY team", policy).bounded_sql
    assert "ON TRY(" in text                                     # the planner guards it …
    bad = text.replace("ON TRY(", "ON (", 1)
    assert "arithmetic in the base step" in _rejected(bad, policy)   # … and the verifier insists


def test_clamp_constants_beyond_the_ceiling_are_caught(policy):
    text = plan_query("SELECT SUM(bytes_out) AS s FROM requests", policy).bounded_sql
    assert "LEAST(GREATEST(" in text
    bad = text.replace(", 1000)", ", 100000000000000000)", 1)
    assert bad != text
    assert "ceiling" in _rejected(bad, policy) or "cast" in _rejected(bad, policy)


def test_post_processing_may_read_only_the_released_answer(policy):
    ok = "SELECT * FROM released WHERE n > 3 ORDER BY n DESC LIMIT 5"
    verify_executed(ok, policy, kind="post")
    for bad in ("SELECT * FROM released ORDER BY ARRAY(SELECT #2 FROM requests)",
                "SELECT * FROM released ORDER BY (SELECT COUNT(*) FROM requests)",
                "SELECT * FROM requests",
                "SELECT * FROM released, requests",
                "SELECT * FROM read_csv('/etc/passwd')",
                "SELECT * FROM released WHERE levenshtein(service, 'x') > 1"):
        _rejected(bad, policy, kind="post")


# -- defence in depth: the planner's own checks off, the verifier still refuses ----------------

ATTACKS = [
    # a scalar subquery in a CTE column, substituted into a time bucket key
    "WITH c AS (SELECT ts, (SELECT ts FROM requests WHERE status = 503 LIMIT 1) AS x FROM requests) "
    "SELECT time_bucket(INTERVAL '5 minutes', x) AS t, COUNT(*) AS n FROM c GROUP BY t",
    # a subquery in a public table's join condition, copied into the base scan
    "SELECT team, COUNT(*) AS n FROM requests JOIN services ON services.service = "
    "(SELECT service FROM requests LIMIT 1) GROUP BY team",
    # ORDER BY / HAVING holding ARRAY(SELECT …) with positional references: re-rendered for post-processing
    "SELECT service, COUNT(*) AS n FROM requests GROUP BY service ORDER BY ARRAY(SELECT #2 FROM requests)",
    "SELECT service, COUNT(*) AS n FROM requests GROUP BY service HAVING len(ARRAY(SELECT user_id FROM requests)) > 0",
    # query-chosen constants that overflow only when enough rows match
    "SELECT SUM(CASE WHEN status = 503 THEN 1e17 ELSE 0 END) AS s FROM requests",
    # a costly function behind a private predicate (the time limit as a side channel)
    "SELECT COUNT(*) AS n FROM requests WHERE CASE WHEN message LIKE 's%' THEN levenshtein(message, 'x') ELSE 0 END > 0",
]

STEP1 = ("resolved_allowlist", "function_allowlist", "ceiling", "fixed_point", "flatten_subqueries")


def _disable(monkeypatch, which):
    from pdbg.sql import flatten, measures
    from pdbg.sql.rules import function_allowlist, resolved_allowlist

    if "resolved_allowlist" in which:
        monkeypatch.setattr(resolved_allowlist, "check", lambda ctx: None)
    if "function_allowlist" in which:
        monkeypatch.setattr(function_allowlist, "check", lambda ctx: None)
    if "ceiling" in which:
        monkeypatch.setattr(measures, "value_ceiling", lambda policy: float("inf"))
    if "fixed_point" in which:
        monkeypatch.setattr(measures, "FIXED_POINT_LIMIT", float("inf"))
    if "flatten_subqueries" in which:
        monkeypatch.setattr(flatten._Scope, "check_subqueries", lambda self, where: None)


@pytest.mark.parametrize("sql", ATTACKS)
def test_with_every_planner_check_off_the_verifier_refuses(sql, policy, monkeypatch):
    _disable(monkeypatch, STEP1)
    try:
        plan = plan_query(sql, policy)
    except QueryRejected as err:
        # the typed-query rules (select items, GROUP BY) still see some of these; the point
        # here is that whatever the planner lets through, the verifier refuses
        assert err.rule in ("subquery", "aggregate-placement", "non-dp-aggregate", "post-processing")
        return
    failures = []
    for kind, text in _texts(plan):
        try:
            verify_executed(text, policy, kind=kind)
        except QueryRejected as err:
            failures.append(err.rule)
    assert failures and set(failures) == {"internal-verifier"}, sql


@pytest.mark.parametrize("off", STEP1)
@pytest.mark.parametrize("sql", ATTACKS)
def test_disabling_any_one_planner_check_is_caught(sql, off, policy, monkeypatch):
    """One check off at a time: the query is refused before execution either by the other
    planner checks or by the verifier, never executed."""
    _disable(monkeypatch, (off,))
    try:
        plan = plan_query(sql, policy)
    except QueryRejected:
        return
    with pytest.raises(QueryRejected) as info:
        for kind, text in _texts(plan):
            verify_executed(text, policy, kind=kind)
    assert info.value.rule == "internal-verifier"


def test_the_attacks_do_pass_the_planner_when_its_checks_are_off(policy, monkeypatch):
    """Guard against a vacuous defence-in-depth test: most attacks must reach the verifier."""
    _disable(monkeypatch, STEP1)
    planned = 0
    for sql in ATTACKS:
        try:
            plan_query(sql, policy)
            planned += 1
        except QueryRejected:
            pass
    assert planned >= 5
