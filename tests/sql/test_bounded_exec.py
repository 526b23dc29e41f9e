"""Each bounded rewrite executed on DuckDB over a hand-made table, against hand-computed bounded answers.

Policy (conftest): k = 3 rows per unit and group, g = 2 groups per unit, latency_ms in [0, 30000],
bytes_out in [0, 1000]. Units:
  a: 5 rows api/eu-west, status 500, latency 100, bytes 10        (heavy: exceeds k)
  b: 1 row each in api, auth, checkout (us-east), status 200, latency 200, bytes 2000 (exceeds g; bytes clamp)
  c: 1 row checkout/us-east, status 503, latency 50000 (clamped to 30000), bytes 1000
  d: 1 row service 'legacy' (outside the service domain), region eu-west, status 500
  e: 1 row search/eu-west, latency NULL, bytes NULL, status 404
"""

from __future__ import annotations

import datetime as dt

import pytest

from pdbg.sql import plan_query
from pdbg.sql.rewrite import _cap_ctes

from .conftest import make_db, run

T0 = dt.datetime(2026, 11, 20, 14, 0)


def _row(u, service, region, status, latency, bytes_out, minute=0, message="ok"):
    return dict(ts=T0 + dt.timedelta(minutes=minute), user_id=u, session_id="s-" + u, service=service, region=region,
                endpoint="/pay", status=status, error_code=None, user_agent="ua", latency_ms=latency,
                bytes_out=bytes_out, client_ip="ip", message=message)


ROWS = (
    [_row("a", "api", "eu-west", 500, 100.0, 10, minute=i) for i in range(5)]
    + [_row("b", s, "us-east", 200, 200.0, 2000, minute=7) for s in ("api", "auth", "checkout")]
    + [_row("c", "checkout", "us-east", 503, 50000.0, 1000, minute=12, message="upstream timeout")]
    + [_row("d", "legacy", "eu-west", 500, 10.0, 5, minute=30)]
    + [_row("e", "search", "eu-west", 404, None, None, minute=59)]
)


@pytest.fixture(scope="module")
def con():
    return make_db(ROWS)


def _by_key(rows):
    return {r[0]: r[1:] for r in rows}


def test_count_no_group(con, policy):
    p = plan_query("SELECT COUNT(*) AS n FROM requests", policy)
    # a capped 5→3, b 3 rows in one (empty) group → 3, c 1, d 1, e 1; 5 units
    assert run(con, p.bounded_sql) == [(9, 5)]
    assert p.g == 1 and p.measures[0].c == 3


def test_count_by_region_no_cap_needed(con, policy):
    p = plan_query("SELECT region, COUNT(*) AS n FROM requests WHERE status >= 500 GROUP BY region", policy)
    assert "__capped" not in p.bounded_sql             # |domain| = 2 = g: no unit can exceed g
    assert p.g == 2
    assert run(con, p.bounded_sql) == [("eu-west", 4, 2), ("us-east", 1, 1)]   # a:3 + d:1 ; c:1


def test_group_cap_and_domain_filter(con, policy):
    p = plan_query("SELECT service, COUNT(*) AS n FROM requests GROUP BY service", policy)
    assert "__capped" in p.bounded_sql and "min(__h, 3)" in p.bounded_sql    # the group cap (g = 2)
    rows = run(con, p.bounded_sql)
    keys = [r[0] for r in rows]
    assert "legacy" not in keys and keys == sorted(keys)
    # (unit, group) pairs after the cap: a api, b two of three, c checkout, e search → 5
    assert sum(r[2] for r in rows) == 5
    # counts: a 3, b 2 (one per kept group), c 1, e 1
    assert sum(r[1] for r in rows) == 7
    assert _by_key(rows)["search"] == (1, 1)
    # the choice of b's groups is keyed by the salt, not data order
    picks = {tuple(r[0] for r in run(con, p.bounded_sql, salt=f"s{i}") if r[0] in ("auth",)) for i in range(20)}
    assert picks == {(), ("auth",)}


def test_sum_clamps_rows_and_unit_totals(con, policy):
    p = plan_query("SELECT SUM(bytes_out) AS b FROM requests", policy)
    m = p.measures[0]
    assert (m.kind, m.scale, m.c) == ("sum", 1, 3000)
    # a: 5*10=50 ; b: 3 rows clamped to 1000 each = 3000 (≤ 3000) ; c 1000 ; d 5 ; e NULL→0
    assert run(con, p.bounded_sql) == [(50 + 3000 + 1000 + 5, 5)]


def test_avg_centered_sum(con, policy):
    p = plan_query("SELECT region, AVG(latency_ms) AS l FROM requests GROUP BY region", policy)
    out = next(o for o in p.outputs if o.name == "l")
    n_id, s_id = out.measures
    assert out.mid == 15000.0
    rows = _by_key(run(con, p.bounded_sql))
    # eu-west: a 5 rows of 100 (count capped 3; centered sum = a's mean × min(5, 3) rows, so the
    #          average stays an average of values), d 1 row of 10, e NULL (count 0)
    n_eu = 3 + 1
    s_eu = (100 - 15000) * 1000 * 3 + (10 - 15000) * 1000
    # us-east: b 3 rows of 200 (one per service but one region group), c 30000 (clamped)
    n_us = 3 + 1
    s_us = 3 * (200 - 15000) * 1000 + (30000 - 15000) * 1000
    ids = [m.id for m in p.measures]
    assert rows["eu-west"][ids.index(n_id)] == n_eu and rows["eu-west"][ids.index(s_id)] == s_eu
    assert rows["us-east"][ids.index(n_id)] == n_us and rows["us-east"][ids.index(s_id)] == s_us


def test_count_units_with_filter(con, policy):
    p = plan_query("SELECT region, COUNT(DISTINCT user_id) FILTER (WHERE status >= 500) AS u FROM requests GROUP BY region",
                   policy)
    assert p.measures[0].kind == "count_units" and p.measures[0].c == 1
    rows = _by_key(run(con, p.bounded_sql))
    assert rows["eu-west"] == (2, 3)      # a, d affected ; a, d, e present
    assert rows["us-east"] == (1, 2)      # c affected ; b, c present


def test_variance_measures(con, policy):
    p = plan_query("SELECT STDDEV(bytes_out) AS sd FROM requests WHERE service = 'checkout'", policy)
    n, s1, s2 = run(con, p.bounded_sql)[0][:3]
    # b 2000→1000, c 1000 ; mid 500 ; integral scale 1
    assert (n, s1, s2) == (2, 1000, 2 * 500 * 500)
    assert p.measures[2].c == 3 * 500 * 500


def test_case_sum_bounds_from_literals(con, policy):
    p = plan_query("SELECT service, SUM(CASE WHEN status >= 500 THEN 1 ELSE 0 END) AS errors FROM requests "
                   "GROUP BY service HAVING SUM(CASE WHEN status >= 500 THEN 1 ELSE 0 END) > 0", policy)
    assert p.measures[0].c == 3 and p.measures[0].scale == 1
    assert p.post_sql == 'SELECT * FROM released WHERE "errors" > 0 ORDER BY "service"'
    rows = _by_key(run(con, p.bounded_sql))
    assert rows["api"][0] in (3, 3) and rows["search"][0] == 0


def test_no_post_processing_without_having_order_or_limit(policy):
    # release already sorts groups by key; a pass that only re-sorts would cost ~3 ms per release
    assert plan_query("SELECT service, COUNT(*) AS n FROM requests GROUP BY service", policy).post_sql is None
    assert plan_query("SELECT service, COUNT(*) AS n FROM requests GROUP BY service LIMIT 2", policy).post_sql \
        == 'SELECT * FROM released ORDER BY "service" LIMIT 2'


def test_case_key_and_hidden_having_output(con, policy):
    p = plan_query("SELECT CASE WHEN latency_ms < 150 THEN 'fast' WHEN latency_ms < 1000 THEN 'ok' END AS band, "
                   "COUNT(*) AS n FROM requests GROUP BY band HAVING AVG(latency_ms) > 5", policy)
    assert p.keys[0].kind == "public" and p.keys[0].domain == ("fast", "ok", None)
    hidden = [o for o in p.outputs if o.hidden]
    assert hidden and hidden[0].kind == "avg"
    assert "WHERE \"__h" in p.post_sql
    rows = _by_key(run(con, p.bounded_sql))
    assert rows["fast"][0] == 3 + 1 and rows["ok"][0] == 3 and rows[None][0] == 2   # a(3) d ; b (3 rows, 1 group) ; c e


def test_time_buckets_public(con, policy):
    p = plan_query("SELECT time_bucket(INTERVAL '15 minutes', ts) AS t, COUNT(*) AS n FROM requests "
                   "WHERE ts >= TIMESTAMP '2026-11-20 14:00:00' AND ts < TIMESTAMP '2026-11-20 15:00:00' GROUP BY t",
                   policy)
    k = p.keys[0]
    assert k.kind == "time" and k.domain == tuple(T0 + dt.timedelta(minutes=15 * i) for i in range(4))
    rows = _by_key(run(con, p.bounded_sql))
    assert set(rows) <= set(k.domain)
    assert rows[T0] == (3 + 3 + 1, 3)   # a: 3 of 5 ; b: 3 rows in one bucket ; c: 1
    assert rows[T0 + dt.timedelta(minutes=45)] == (1, 1)   # e at 14:59


def test_date_trunc_matches_duckdb(con, policy):
    p = plan_query("SELECT date_trunc('minute', ts) AS m, COUNT(*) AS n FROM requests "
                   "WHERE ts BETWEEN TIMESTAMP '2026-11-20 14:00:00' AND TIMESTAMP '2026-11-20 14:10:00' GROUP BY m",
                   policy)
    assert len(p.keys[0].domain) == 11
    rows = run(con, p.bounded_sql)
    assert {r[0] for r in rows} <= set(p.keys[0].domain)


def test_public_table_join(con, policy):
    p = plan_query("SELECT s.team, COUNT(*) AS n FROM requests r JOIN services s ON s.service = r.service "
                   "GROUP BY s.team", policy)
    assert p.keys[0].domain == ("core", "discovery", "payments")
    rows = _by_key(run(con, p.bounded_sql))
    assert rows["payments"] == (2, 2)      # b checkout, c checkout
    assert rows["discovery"] == (1, 1)


def test_quantile_rows_capped_per_unit(con, policy):
    p = plan_query("SELECT region, quantile_cont(latency_ms, [0.5, 0.9]) AS q FROM requests GROUP BY region", policy)
    assert [o.name for o in p.outputs] == ["region", "q_p50", "q_p90"]
    q = p.quantiles[0]
    assert len(q.candidates) == 200 and q.candidates[0] == 0.0 and q.candidates[-1] == 30000.0
    rows = run(con, p.quantile_sql)
    per_region = {}
    for region, qid, b, n in rows:
        per_region[region] = per_region.get(region, 0) + n
        assert 0 <= b <= len(q.candidates)
    assert per_region == {"eu-west": 3 + 1, "us-east": 3 + 1}        # a capped 5→3, e NULL skipped
    # bins agree with the candidates: 30000 (clamped c) falls in the last bin, 100 between its candidates
    c = q.candidates
    b100 = next(b for r, _, b, n in rows if r == "eu-west" and n == 3)
    assert c[b100 - 1] <= 100 < c[b100]
    assert any(b == len(c) for _, _, b, _ in rows)


def test_quantile_linear_bins(con, policy):
    p = plan_query("SELECT median(bytes_out) AS m FROM requests", policy)
    c = p.quantiles[0].candidates
    rows = run(con, p.quantile_sql)
    for _, b, n in rows:
        assert 1 <= b <= len(c)
    assert sum(n for *_, n in rows) == 3 + 3 + 1 + 1


def test_like_on_free_text_and_params(con, policy):
    p = plan_query("SELECT COUNT(*) AS n FROM requests WHERE message LIKE $pat AND service = :svc", policy,
                   params={"pat": "%timeout%", "svc": "checkout"})
    assert run(con, p.bounded_sql) == [(1, 1)]
    assert "'%timeout%'" in p.bounded_sql


def test_try_guards_data_dependent_errors(con, policy):
    # CAST(message AS INTEGER) would fail on 'ok' and reveal it; the rewrite makes it NULL instead
    p = plan_query("SELECT COUNT(*) AS n FROM requests WHERE CAST(message AS INTEGER) > 0", policy)
    assert "TRY(" in p.bounded_sql
    assert run(con, p.bounded_sql) == [(0, 0)]


def test_cte_inlined(con, policy):
    p = plan_query("WITH slow AS (SELECT service, latency_ms AS lat FROM requests WHERE latency_ms > 150) "
                   "SELECT service, COUNT(*) AS n FROM slow GROUP BY service", policy)
    rows = _by_key(run(con, p.bounded_sql))
    assert sum(v[0] for v in rows.values()) == 2 + 1       # b: 2 of its 3 groups kept, c 1
    assert p.bounded_sql.count("FROM requests") == 1


def test_group_cap_keeps_the_g_smallest_and_never_more_on_ties():
    """The cap CTEs over hand-made (unit, group, __h): the g smallest hashes are kept; a tie at the
    g-th place (a 64-bit collision in real data) keeps only the groups strictly below it."""
    g = 2
    data = {
        1: [5, 5, 7, 9],      # tie below the boundary: both 5s are the 2 smallest
        2: [3, 6, 6, 8],      # tie at the boundary: only 3 is surely among the 2 smallest
        3: [2, 1],            # no more than g groups: all kept
        4: [4, 4, 4],         # all tied: none strictly below the boundary
        5: [30, 10, 20],
    }
    values = ", ".join(f"({u}::UBIGINT, 'k{i}', {h}::UBIGINT)" for u, hs in data.items() for i, h in enumerate(hs))
    sql = (f"WITH src AS (SELECT * FROM (VALUES {values}) AS v(__unit, key, __h)), {', '.join(_cap_ctes('src', g))} "
           "SELECT __unit, list(__h ORDER BY __h) FROM __capped GROUP BY __unit ORDER BY __unit")
    con = make_db([])
    got = dict(con.execute(sql).fetchall())
    assert got == {1: [5, 5], 2: [3], 3: [1, 2], 5: [10, 20]}
    assert all(len(v) <= g for v in got.values())


def test_quantile_keeps_exactly_k_rows_per_unit_allotted_across_its_bins(policy):
    """A unit with rows over several bins keeps exactly k of them (systematic sampling of its
    sorted rows from a keyed offset): never more than k (the sensitivity), never more than a
    bin holds, and for every salt the same total — the choice moves between bins, the count
    does not. Here T = 6 rows, k = 3: the 900 row is kept for half of the offsets (k/T)."""
    rows = ([_row("h", "api", "eu-west", 200, 100.0, 10, minute=i) for i in range(5)]       # 5 rows, value 10
            + [_row("h", "api", "eu-west", 200, 100.0, 900, minute=10)]                      # 1 row, value 900
            + [_row("l", "api", "eu-west", 200, 100.0, 500, minute=20)])                     # light unit
    con = make_db(rows)
    p = plan_query("SELECT median(bytes_out) AS m FROM requests", policy)
    bin_of = {v: con.execute("SELECT " + _bin_sql(p).replace("{v}", str(v))).fetchall()[0][0]
              for v in (10, 900, 500)}
    assert len(set(bin_of.values())) == 3
    seen = set()
    for salt in (f"s{i}" for i in range(40)):
        got = {b: n for _qid, b, n in run(con, p.quantile_sql, salt=salt)}
        assert got.get(bin_of[500]) == 1                              # the light unit keeps its row
        heavy = got.get(bin_of[10], 0) + got.get(bin_of[900], 0)
        assert heavy == 3                                             # h keeps exactly k = 3 rows
        assert got.get(bin_of[10], 0) <= 5 and got.get(bin_of[900], 0) <= 1
        seen.add((got.get(bin_of[10], 0), got.get(bin_of[900], 0)))
    assert seen == {(3, 0), (2, 1)}          # the keyed order moves the allocation, proportionally


def _bin_sql(plan) -> str:
    """The planner's bin expression for the plan's one quantile column, as a template over {v}."""
    import re

    m = re.search(r"CAST\((LEAST\(GREATEST\(CAST\(floor\(\(__v0 .*?\) AS BIGINT\) \+ 1, 1\), \d+\)) AS UTINYINT\)", plan.quantile_sql)
    assert m, plan.quantile_sql
    return m.group(1).replace("__v0", "{v}")
