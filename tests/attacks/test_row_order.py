"""Pitfall: leaking row order (REFERENCE.md: shuffle or sort released groups).

Defence: released groups are sorted by key (``pdbg.dp.release._sort_keys``, plus ORDER BY
in the bounded SQL), never left in data or hash order — so the order of an answer's rows
cannot tell which group was seen first, i.e. which unit's rows were inserted first.

Proof the test can fail: ``defence="off"`` replaces the sort by the identity and feeds the
release step the engine's groups in first-seen data order (what an engine without ORDER BY
may return); the two insertion orders then give two different released orders.
"""

from __future__ import annotations

import pytest

import attack_support as S

SQL = "SELECT endpoint, COUNT(*) AS n FROM t GROUP BY endpoint"
ENDPOINTS = ["/zeta", "/alpha", "/mid", "/beta"]


def _rows(order):
    return [S.row(f"{e}-{i}", endpoint=e) for e in order for i in range(400)]


@pytest.mark.parametrize("defence", ["on", "off"])
def test_released_group_order_does_not_depend_on_insertion_order(make_ws, monkeypatch, defence):
    import pdbg.dp.release as rel
    from pdbg.engine.duckdb import DuckDBEngine
    from pdbg.sql import plan_query

    if defence == "off":
        monkeypatch.setattr(rel, "_sort_keys", lambda plan, keys: keys)
    released = []
    for order in (ENDPOINTS, ENDPOINTS[::-1]):
        ws, policy = make_ws(_rows(order))
        plan = plan_query(SQL, policy)
        groups = DuckDBEngine(ws).execute(plan, salt="x").groups
        # present the groups in first-seen data order, as an unsorted engine might
        groups = groups.set_index("endpoint").loc[order].reset_index()
        df = rel.release(plan, groups, None, 1.0, policy).df
        assert set(df["endpoint"]) == set(ENDPOINTS)       # 400 units each: always selected
        released.append(list(df["endpoint"]))
    if defence == "on":
        assert released[0] == released[1] == sorted(ENDPOINTS)
    else:
        assert released[0] != released[1]


def test_session_answers_are_sorted_by_key(session_on):
    s = session_on(_rows(ENDPOINTS[::-1]))
    r = s.sql(SQL, epsilon=0.5)
    assert list(r.df["endpoint"]) == sorted(ENDPOINTS)
