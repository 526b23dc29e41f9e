"""Rewrite fixtures as SQL pairs (tests/sql/rewrites/*.sql: input → expected bounded SQL), compared
whitespace-insensitively, and each expected SQL also executed on DuckDB over the hand-made table."""

from __future__ import annotations

from pathlib import Path

import pytest
import sqlglot

from pdbg.sql import plan_query

from .conftest import make_db, run
from .test_bounded_exec import ROWS

FIXTURES = sorted((Path(__file__).parent / "rewrites").glob("*.sql"))


def _sections(path: Path) -> dict[str, str]:
    out, cur = {}, None
    for line in path.read_text().splitlines():
        if line.startswith("-- "):
            cur = line[3:].strip()
            out[cur] = ""
        elif cur:
            out[cur] += line + "\n"
    return out


def _canon(sql: str) -> str:
    return sqlglot.parse_one(sql, read="duckdb").sql(dialect="duckdb")


@pytest.mark.parametrize("path", FIXTURES, ids=[p.stem for p in FIXTURES])
def test_rewrite_pair(path, policy):
    sec = _sections(path)
    plan = plan_query(sec["input"], policy)
    assert _canon(plan.bounded_sql) == _canon(sec["bounded_sql"])
    if "quantile_sql" in sec:
        assert _canon(plan.quantile_sql) == _canon(sec["quantile_sql"])
    con = make_db(ROWS)
    run(con, sec["bounded_sql"])


def test_pair_answers(policy):
    con = make_db(ROWS)
    sec = _sections(Path(__file__).parent / "rewrites" / "count_no_group.sql")
    assert run(con, sec["bounded_sql"]) == [(3 + 1 + 1, 3)]          # a capped 5→3, c, d
    sec = _sections(Path(__file__).parent / "rewrites" / "time_series.sql")
    assert run(con, sec["bounded_sql"]) == [(__import__("datetime").datetime(2026, 11, 20, 14, 0), 3, 3),
                                            (__import__("datetime").datetime(2026, 11, 20, 14, 30), 2, 2)]


def test_pair_answers_under_the_group_cap(policy):
    """The capped fixtures, over 20 salts: b (3 services, g = 2) always lands in exactly 2 of its
    groups, everything else is exact (a's 5 rows capped to k = 3, e's NULL latency not counted)."""
    con = make_db(ROWS)
    sec = _sections(Path(__file__).parent / "rewrites" / "count_by_service.sql")
    for salt in (f"s{i}" for i in range(20)):
        rows = {r[0]: r[1:] for r in run(con, sec["bounded_sql"], salt)}
        assert rows["api"][0] == 3 and rows["search"] == (0, 0, 0, 1)          # a: 3 of 5 errors; e: no latency
        assert sum(r[3] for r in rows.values()) == 1 + 2 + 1 + 1              # a, b twice, c, e
        assert sum(r[0] for r in rows.values()) == 3 + 1                      # errors: a 3, c 1
        assert sum(r[1] for r in rows.values()) == 3 + 2 + 1                  # latency rows: a 3, b 2, c 1
        assert sum(r[2] for r in rows.values()) == (100 - 15000) * 1000 * 3 + 2 * (200 - 15000) * 1000 + (30000 - 15000) * 1000
        others = {"api": 1, "auth": 0, "checkout": 1}                          # units besides b: a ; - ; c
        assert sum(rows.get(s, (0, 0, 0, 0))[3] - o for s, o in others.items()) == 2   # b kept in exactly 2
    sec = _sections(Path(__file__).parent / "rewrites" / "quantile_by_service.sql")
    assert run(con, sec["bounded_sql"]) == []           # quantiles with public keys: nothing reads it
    for salt in (f"s{i}" for i in range(20)):
        got = run(con, sec["quantile_sql"], salt)
        n = {}
        for service, qid, b, c in got:
            n[(service, qid, b)] = c
        for qid in ("__q0", "__q1"):
            assert sum(c for (_, q, _), c in n.items() if q == qid) == 3 + 2 + 1   # a 3 of 5, b in 2 groups, c
        assert n[("api", "__q0", 101)] == 3 and n[("api", "__q1", 2)] == 3      # a: latency 100, bytes 10
        assert n[("checkout", "__q0", 200)] == 1                                # c: 50000 clamped to 30000
        assert sum(c for (s, q, b), c in n.items() if q == "__q0" and b == 113) == 2   # b's 200 ms, twice
        assert not any(s == "search" for s, _, _ in n)                         # e has no values
