"""Pitfall: data-dependent errors (REFERENCE.md; DuckDB conversion errors quote the value).

Defences:

* The planner wraps every row expression that could fail on some value in ``TRY(…)``
  (``pdbg.sql.guard``), so a bad cast on private text does not error at all: the query
  succeeds on neighbouring datasets alike, and the error channel carries nothing.
* Should the engine still fail, ``DuckDBEngine`` replaces DuckDB's message (which quotes
  the offending value) by the exception class name only.
* ``error()`` and similar raising functions are refused by the planner.

Proof the tests can fail: ``defence="off"`` runs the same plan with the ``TRY`` wrapper
stripped from the bounded SQL: the query then fails on the dataset holding the bad value
and succeeds on its neighbour (existence leaks), and calling DuckDB directly shows the
message that would leak the value — which the engine wrapper hides.

An expensive expression guarded by a predicate on private data could turn the engine
time limit into a data-dependent error; the function allowlist closes that (timing in
general stays out of scope, as DESIGN.md says).
"""

from __future__ import annotations

import dataclasses

import pytest

import attack_support as S
from pdbg.ingest.readers import READER_CONFIG
from pdbg.errors import EngineError, PdbgError, QueryRejected

SECRET = "secret-value-123"
BAD_CASTS = [
    "SELECT COUNT(*) AS n FROM t WHERE CAST(message AS INTEGER) > 5",
    "SELECT COUNT(*) AS n FROM t WHERE message::INTEGER = 5",
    "SELECT COUNT(*) AS n FROM t WHERE CAST(message AS TIMESTAMP) > TIMESTAMP '2020-01-01'",
    "SELECT COUNT(*) AS n FROM t WHERE CAST(bytes_out AS TINYINT) > 5",
    "SELECT COUNT(*) AS n FROM t WHERE 1 // (bytes_out - 999) > 0",
    "SELECT SUM(CASE WHEN CAST(message AS INTEGER) > 3 THEN 1 ELSE 0 END) AS s FROM t",
]


def _neighbours(make_ws):
    base = [S.row(f"u{i}", message=str(i), bytes_out=i) for i in range(20)]
    ws0, policy = make_ws(base)
    ws1, _ = make_ws(base + [S.row("evil", message=SECRET, bytes_out=999)])
    return ws0, ws1, policy


def _outcome(ws, plan):
    from pdbg.engine.duckdb import DuckDBEngine

    try:
        DuckDBEngine(ws).execute(plan, salt="x")
        return "ok"
    except PdbgError as err:
        assert SECRET not in err.message and "secret" not in (err.hint or "")
        return type(err).__name__


@pytest.mark.parametrize("defence", ["on", "off"])
@pytest.mark.parametrize("sql", BAD_CASTS[:2])
def test_bad_cast_on_private_text_does_not_error(make_ws, sql, defence):
    from pdbg.sql import plan_query

    ws0, ws1, policy = _neighbours(make_ws)
    plan = plan_query(sql, policy)
    assert "TRY(" in plan.bounded_sql
    if defence == "off":
        plan = dataclasses.replace(plan, bounded_sql=_strip_try(plan.bounded_sql))
    outcomes = (_outcome(ws0, plan), _outcome(ws1, plan))
    if defence == "on":
        assert outcomes == ("ok", "ok")
    else:
        assert outcomes == ("ok", "EngineError")          # the error alone reveals the extra unit


@pytest.mark.parametrize("sql", BAD_CASTS)
def test_whole_pipeline_answers_on_both_neighbours(make_ws, sql):
    from pdbg.session import Session

    outcomes = []
    ws0, ws1, _ = _neighbours(make_ws)
    for ws in (ws0, ws1):
        user, case = S.add_investigator(ws)
        s = Session(ws, user=user, case=case)
        r = s.sql(sql, epsilon=0.1)
        outcomes.append(list(r.df.columns))
    assert outcomes[0] == outcomes[1]


def test_engine_messages_never_quote_the_value(make_ws):
    """Defence off (raw DuckDB) quotes the value; the engine wrapper does not."""
    import duckdb

    from pdbg.sql import plan_query

    _, ws1, policy = _neighbours(make_ws)
    plan = plan_query(BAD_CASTS[0], policy)
    raw = _strip_try(plan.bounded_sql)
    con = duckdb.connect(str(ws1.data_path), read_only=True, config=dict(READER_CONFIG))  # the config pdbg readers share
    with pytest.raises(duckdb.Error) as leaked:
        con.sql(raw, params={"salt": "x"}).fetchall()
    con.close()
    assert SECRET in str(leaked.value)                     # what an unsanitized engine would show
    with pytest.raises(EngineError) as err:
        from pdbg.engine.duckdb import DuckDBEngine

        DuckDBEngine(ws1).execute(dataclasses.replace(plan, bounded_sql=raw), salt="x")
    assert SECRET not in str(err.value) and SECRET not in err.value.message


def test_raising_functions_are_refused(make_ws):
    from pdbg.sql import plan_query

    _, _, policy = _neighbours(make_ws)
    with pytest.raises(QueryRejected) as err:
        plan_query("SELECT COUNT(*) AS n FROM t WHERE error('x' || message) IS NULL", policy)
    assert err.value.rule == "blocked-function"


@pytest.mark.parametrize("defence", ["on", "off"])
def test_costly_functions_cannot_make_the_time_limit_a_membership_test(make_ws, monkeypatch, defence):
    """An expensive expression run only on rows matching a private predicate would make the
    query time out iff such a row exists — an exact, uncharged membership test (found by
    this suite). Defence: the function allowlist (pdbg/sql/rules/function_allowlist.py)
    refuses repeat()/levenshtein() before any data is touched, identically on both
    neighbours. Defence off (allowlist disabled in all three places that apply it: the statement
    rule, the resolved-query allowlist and the executed-SQL verifier): the outcomes differ, so
    the test can fail. (Since the failure happens after data access it is now charged and
    audited as ``query.failed``, but the outcome still differs between the neighbours.)"""
    from pdbg.session import Session
    from pdbg.sql import verify
    from pdbg.sql.rules import function_allowlist, resolved_allowlist

    if defence == "off":
        monkeypatch.setattr(function_allowlist, "check", lambda ctx: None)
        monkeypatch.setattr(resolved_allowlist, "allowed_function", lambda node: True)
        monkeypatch.setattr(verify, "allowed_function", lambda node: True)
    sql = ("SELECT COUNT(*) AS n FROM t WHERE CASE WHEN message LIKE 'secret%' "
           "THEN levenshtein(repeat(message, 3000), repeat(message, 3000)) ELSE 0 END > 0")
    ws0, ws1, _ = _neighbours(make_ws)
    outcomes = []
    for ws in (ws0, ws1):
        user, case = S.add_investigator(ws)
        s = Session(ws, user=user, case=case, query_timeout_s=2.0)
        try:
            s.sql(sql, epsilon=0.1)
            outcomes.append("ok")
        except PdbgError as err:
            outcomes.append(getattr(err, "rule", type(err).__name__))
    if defence == "on":
        assert outcomes == ["function-not-allowed", "function-not-allowed"]
    else:
        assert outcomes[0] != outcomes[1]


def _strip_try(sql: str) -> str:
    """Remove every ``TRY(`` wrapper (and its closing parenthesis) from SQL text."""
    out, i, depth_stack, depth = [], 0, [], 0
    while i < len(sql):
        if sql.startswith("TRY(", i):
            depth += 1
            depth_stack.append(depth)
            i += 4
            continue
        ch = sql[i]
        if ch == "(":
            depth += 1
        elif ch == ")":
            if depth_stack and depth_stack[-1] == depth:
                depth_stack.pop()
                depth -= 1
                i += 1
                continue
            depth -= 1
        out.append(ch)
        i += 1
    return "".join(out)
