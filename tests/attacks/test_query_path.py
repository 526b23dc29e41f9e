"""The query-path breaches of the outside review (issue 12), each with its "defence off" twin.

An investigator with an ordinary grant compares two neighbouring datasets that differ by
one user (the canary). A defence holds when every outcome the investigator can see —
answer, refusal, error text, charge — is the same function of the query on both. With the
defences switched off in the test (never reachable from production code) the same attack
tells the datasets apart, which shows each test can fail.

Finding classes:

* subqueries the checks did not see: ``HAVING``/``ORDER BY`` holding ``ARRAY(SELECT …)``
  with positional references re-rendered into post-processing that ran on the data
  connection; a scalar subquery in a CTE column used in a key; a subquery in ``JOIN … ON``;
* query-chosen constants that overflow only when enough rows match (a binary search gives
  exact counts);
* unhashable or unserializable group keys (``[service]``, ``ts - TIMESTAMP …``) that failed
  only after rows were read, for free.
"""

from __future__ import annotations

import pytest

import attack_support as S
from pdbg.errors import PdbgError

CANARY = "canary-7f3a-msg"


TEAMS = S.policy_dict(public_tables={"teams": {
    "columns": {"service": "string", "team": "string"}, "key": "service",
    "rows": [{"service": s, "team": f"team-{s}"} for s in "abcdefgh"]}})


def _pair(make_ws, extra_rows=1):
    base = [S.row(f"u{i}", service="abcdefgh"[i % 8], message="ok", bytes_out=i) for i in range(40)]
    ws0, policy = make_ws(base, policy=TEAMS)
    ws1, _ = make_ws(base + [S.row("victim", service="a", status=503, message=CANARY)] * extra_rows, policy=TEAMS)
    return ws0, ws1, policy


def _outcome(ws, sql, epsilon=0.05):
    """What the investigator sees, reduced to what must not differ between neighbours."""
    from pdbg.session import Session

    user, case = S.add_investigator(ws)
    s = Session(ws, user=user, case=case)
    echo = CANARY in sql     # the investigator typed it: its echo in a refusal is no leak
    try:
        r = s.sql(sql, epsilon=epsilon)
    except PdbgError as err:
        assert echo or CANARY not in str(err)
        return ("refused" if not getattr(err, "charged", False) else "failed", getattr(err, "rule", None))
    assert CANARY not in r.df.to_string()
    return ("answer", len(r.df))


def _defences_off(monkeypatch, ws_for_post=None):
    """Every layer that stops hidden subqueries, off: the resolved allowlist, the WHERE
    subquery check, the function allowlist, the verifier, and the sandbox (post-processing
    then runs on the data file, as it did before the fix)."""
    import pdbg.session as sess
    from pdbg.engine import postprocess
    from pdbg.sql import flatten, rewrite, verify
    from pdbg.sql.rules import function_allowlist, resolved_allowlist

    monkeypatch.setattr(sess, "_PLANS", {})              # plans made with the defences on must not be reused
    monkeypatch.setattr(rewrite, "guard", lambda e, types: e)   # TRY(subquery) would not even bind
    monkeypatch.setattr(resolved_allowlist, "check", lambda ctx: None)
    monkeypatch.setattr(function_allowlist, "check", lambda ctx: None)
    monkeypatch.setattr(flatten._Scope, "check_subqueries", lambda self, where: None)
    monkeypatch.setattr(verify, "verify_executed", lambda sql, policy, kind: None)
    if ws_for_post is not None:
        from pdbg.ingest.readers import POOL

        state = {}

        def on_data(ws=ws_for_post):
            state["cm"] = POOL.cursor(state["ws"].data_path)
            return state["cm"].__enter__()

        monkeypatch.setattr(postprocess, "_sandbox", on_data)
        return state
    return None


# HAVING holding a subquery over the private table with a positional reference: the groups
# survive iff the table has more than 40 rows, i.e. iff the victim's row exists.
HAVING_ATTACK = ("SELECT service, COUNT(*) AS n FROM t GROUP BY service "
                 "HAVING len(ARRAY(SELECT #8 FROM t)) > 40")


@pytest.mark.parametrize("defence", ["on", "off"])
def test_subquery_in_having_reads_raw_rows_only_without_the_defences(make_ws, monkeypatch, defence):
    ws0, ws1, _ = _pair(make_ws)
    outcomes = []
    for ws in (ws0, ws1):
        if defence == "off":
            state = _defences_off(monkeypatch, ws_for_post=ws)
            state["ws"] = ws
        outcomes.append(_outcome(ws, HAVING_ATTACK))
    if defence == "on":
        assert outcomes == [("refused", "subquery")] * 2
    else:
        assert outcomes[0] != outcomes[1]          # no group on ws0, groups on ws1: the canary exists


# A scalar subquery in a CTE column, substituted into a time-bucket argument, and one in a
# public table's join condition: both were copied into the base scan.
HIDDEN_IN_BASE = [
    "WITH c AS (SELECT service, (SELECT status FROM t WHERE message = '" + CANARY + "' LIMIT 1) AS x FROM t) "
    "SELECT CASE WHEN x IS NOT NULL THEN 'yes' ELSE 'no' END AS k, COUNT(*) AS n FROM c GROUP BY k",
    "WITH c AS (SELECT service, (SELECT 5 FROM t WHERE message = '" + CANARY + "' LIMIT 1) AS w FROM t) "
    "SELECT time_bucket(INTERVAL (w) MINUTE, TIMESTAMP '2026-01-01 00:07:00') AS b, COUNT(*) AS n FROM c GROUP BY b",
    "SELECT team, COUNT(*) AS n FROM t JOIN teams ON teams.service = "
    "(SELECT service FROM t WHERE message = '" + CANARY + "' LIMIT 1) GROUP BY team",
    "SELECT COUNT(*) AS n FROM t WHERE (SELECT status FROM t WHERE message = '" + CANARY + "' LIMIT 1) > 0",
]


@pytest.mark.parametrize("sql", HIDDEN_IN_BASE)
def test_subqueries_hidden_in_cte_columns_are_refused_on_both_neighbours(make_ws, sql):
    ws0, ws1, _ = _pair(make_ws)
    o0, o1 = _outcome(ws0, sql), _outcome(ws1, sql)
    assert o0 == o1 and o0[0] == "refused" and o0[1] == "subquery"


def test_defence_off_a_join_condition_subquery_reaches_the_engine(make_ws, monkeypatch):
    """With the planner checks and the verifier off, the subquery copied into the base scan's
    join condition runs (unguarded) and tells the neighbours apart: on ws0 it is NULL and no
    row joins; on ws1 it names the victim's service and that service's rows join."""
    base = [S.row(f"u{i}", service="a") for i in range(400)]
    ws0, _ = make_ws(base, policy=TEAMS)
    ws1, _ = make_ws(base + [S.row("victim", service="a", message=CANARY)], policy=TEAMS)
    _defences_off(monkeypatch)
    sql = ("SELECT COUNT(DISTINCT user_id) AS n FROM t JOIN teams ON teams.service = "
           "(SELECT service FROM t WHERE message = '" + CANARY + "' LIMIT 1)")
    from pdbg.session import Session

    seen = []
    for ws in (ws0, ws1):
        user, case = S.add_investigator(ws)
        seen.append(int(Session(ws, user=user, case=case).sql(sql, epsilon=1.0).df["n"].iloc[0]))
    # ws0: no user joins; ws1: all 401 users of service 'a' (the noise's σ at ε 1 is about 5)
    assert seen[1] - seen[0] > 200


# -- query-chosen constants: overflow only when enough rows match ---------------------------

OVERFLOW = "SELECT SUM(CASE WHEN message = '" + CANARY + "' THEN 1e17 ELSE 0 END) AS s FROM t"


@pytest.mark.parametrize("defence", ["on", "off"])
def test_huge_constants_cannot_turn_overflow_into_an_exact_count(make_ws, monkeypatch, defence):
    ws0, ws1, _ = _pair(make_ws, extra_rows=10)
    if defence == "off":
        import pdbg.session as sess
        from pdbg.sql import measures, verify

        monkeypatch.setattr(sess, "_PLANS", {})
        monkeypatch.setattr(measures, "value_ceiling", lambda policy: float("inf"))
        monkeypatch.setattr(measures, "FIXED_POINT_LIMIT", float("inf"))
        monkeypatch.setattr(verify, "value_ceiling", lambda policy: float("inf"))
    sql = OVERFLOW.replace("1e17", "1e18")       # k = 10 rows of 1e18 overflow BIGINT; none does not
    outcomes = [_outcome(ws, sql) for ws in (ws0, ws1)]
    if defence == "on":
        assert outcomes == [("refused", "unbounded-value")] * 2
    else:
        # charged now (fail closed), but the outcome still differs: the constant must be refused
        assert outcomes[0] != outcomes[1]


# -- keys that cannot be released: refused before reading, identically ----------------------

@pytest.mark.parametrize("sql,rule", [
    ("SELECT [service] AS k, COUNT(*) AS n FROM t GROUP BY k", "unsupported-expression"),
    ("SELECT CAST(service AS VARCHAR[]) AS k, COUNT(*) AS n FROM t GROUP BY k", "unsupported-expression"),
])
def test_nested_type_keys_are_refused_before_reading(make_ws, sql, rule):
    ws0, ws1, _ = _pair(make_ws)
    assert _outcome(ws0, sql) == _outcome(ws1, sql) == ("refused", rule)


def test_list_keys_with_the_allowlist_off_are_still_refused_by_the_binder_check(make_ws, monkeypatch):
    """Defence in depth: without the allowlist, DuckDB's binder (DESCRIBE, no rows read) sees a
    LIST key and the engine refuses before execution: still free, still the same on both."""
    import pdbg.session as sess
    from pdbg.sql import verify
    from pdbg.sql.rules import resolved_allowlist

    monkeypatch.setattr(sess, "_PLANS", {})
    monkeypatch.setattr(resolved_allowlist, "check", lambda ctx: None)
    monkeypatch.setattr(verify, "verify_executed", lambda sql, policy, kind: None)
    ws0, ws1, _ = _pair(make_ws)
    sql = "SELECT [service] AS k, COUNT(*) AS n FROM t GROUP BY k"
    assert _outcome(ws0, sql) == _outcome(ws1, sql) == ("refused", "key-type")


# -- a join condition that fails on one value: copied into the base scan, it must be guarded ----

JOIN_FAIL = ("SELECT COUNT(*) AS n FROM t JOIN teams ON teams.service = "
             "CASE WHEN 1 // (t.bytes_out - 100) >= 0 THEN t.service END")


@pytest.mark.parametrize("defence", ["on", "off"])
def test_a_failing_join_condition_cannot_reveal_a_value(make_ws, monkeypatch, defence):
    ws0, ws1, _ = _pair(make_ws)                 # only the victim has bytes_out = 100
    if defence == "off":
        import pdbg.session as sess
        from pdbg.sql import rewrite, verify

        monkeypatch.setattr(sess, "_PLANS", {})
        monkeypatch.setattr(rewrite, "guard", lambda e, types: e)
        monkeypatch.setattr(verify, "verify_executed", lambda sql, policy, kind: None)
    outcomes = [_outcome(ws, JOIN_FAIL)[0] for ws in (ws0, ws1)]
    if defence == "on":
        assert outcomes == ["answer", "answer"]
    else:
        assert outcomes == ["answer", "failed"]   # charged, but the failure itself tells the victim's value



# -- many units' bounded contributions: the final sum must not overflow only when enough match --

BIG = S.policy_dict(max_rows_per_unit=1000, columns={**S.POLICY["columns"],
                    "latency_ms": {"class": "metric", "type": "float", "bounds": [0, 1e12]}})


@pytest.mark.parametrize("defence", ["on", "off"])
def test_a_sum_of_many_large_contributions_cannot_overflow_into_a_count(make_ws, monkeypatch, defence):
    """Each unit may contribute k·bound·scale = 10^18 here (within the policy limits); ten such units
    passed BIGINT in the final sum, so the query failed only when at least ten matched. The final
    sums are clamped to ±(2^62 - 1) in SQL (1-Lipschitz: no sensitivity grows)."""
    rows = [S.row(f"u{i}", latency_ms=1e12) for i in range(12) for _ in range(1000)]
    ws0, _ = make_ws(rows[:1000 * 4], policy=BIG)
    ws1, _ = make_ws(rows, policy=BIG)
    if defence == "off":
        import pdbg.session as sess
        from pdbg.sql import rewrite

        monkeypatch.setattr(sess, "_PLANS", {})
        monkeypatch.setattr(rewrite, "FIXED_POINT_LIMIT", 2**100)     # the clamp no longer bites
    outcomes = [_outcome(ws, "SELECT SUM(latency_ms) AS s FROM t", epsilon=0.5)[0] for ws in (ws0, ws1)]
    if defence == "on":
        assert outcomes == ["answer", "answer"]
    else:
        assert outcomes == ["answer", "failed"]
