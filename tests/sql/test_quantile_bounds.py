"""The contribution bounds of quantile_sql, executed on DuckDB.

quantile_sql keeps, per (unit, group), all rows when there are at most k and otherwise exactly k
of them (systematic sampling of the unit's sorted values from a keyed offset), and at most g groups
per unit (the cap itself is tested in test_bounded_exec). Checked here against references computed
independently: exact histograms when no unit exceeds a cap, the difference one extra heavy unit
makes (≤ g groups, exactly k rows each), and that the choice depends on the unit's own rows and the
salt only — not on row order."""

from __future__ import annotations

import random

import pytest

from pdbg.sql import plan_query

from .conftest import SERVICES, make_db, run
from .test_bounded_exec import _row

SQL = "SELECT service, quantile_cont(latency_ms, [0.5, 0.9]) AS lat, median(bytes_out) AS b FROM requests GROUP BY service"
SALTS = [f"salt-{i}" for i in range(25)]


def _light_rows(seed: int = 3) -> list[dict]:
    """40 units, each with 1..k = 3 rows in 1..g = 2 services: no unit exceeds a cap."""
    rnd = random.Random(seed)
    rows = []
    for u in range(40):
        for service in rnd.sample(SERVICES, rnd.randint(1, 2)):
            for _ in range(rnd.randint(1, 3)):
                lat = None if rnd.random() < 0.1 else rnd.choice([3.0, 47.5, 120.0, 999.0, 2500.0, 31000.0])
                rows.append(_row(f"u{u}", service, "eu-west", 200, lat, rnd.randrange(0, 1200, 7)))
    return rows


def _histograms(con, plan) -> dict[tuple, int]:
    """Exact (unbounded) per-(service, qid, bin) row counts, with the plan's own bin expressions."""
    qsql = plan.quantile_sql
    out: dict[tuple, int] = {}
    for qid, col, bin_sql in (("__q0", "latency_ms", _bin_expr(qsql, 0)), ("__q1", "bytes_out", _bin_expr(qsql, 1))):
        value = "LEAST(GREATEST({c}, 0), {hi})".format(c=col, hi=30000 if col == "latency_ms" else 1000)
        rows = con.execute(f"SELECT service, {bin_sql.replace('__v', value)} AS b, COUNT(*) FROM requests "
                           f"WHERE {col} IS NOT NULL AND service IN ({', '.join(repr(s) for s in SERVICES)}) "
                           "GROUP BY ALL").fetchall()
        out.update({(s, qid, b): n for s, b, n in rows})
    return out


def _bin_expr(qsql: str, i: int) -> str:
    start = qsql.index("list(CAST(", qsql.index("list(CAST(") + 1 if i else 0) + len("list(CAST(")
    end = qsql.index(" AS UTINYINT))", start)
    return qsql[start:end].replace(f"__v{i}", "__v")


def _counts(rows) -> dict[tuple, int]:
    return {(s, q, b): n for s, q, b, n in rows}


def test_exact_histograms_when_no_unit_exceeds_the_caps(policy):
    con = make_db(_light_rows())
    plan = plan_query(SQL, policy)
    want = _histograms(con, plan)
    assert sum(want.values()) > 100
    for salt in SALTS[:5]:
        assert _counts(run(con, plan.quantile_sql, salt)) == want


@pytest.mark.parametrize("spread", [False, True])
def test_one_heavy_unit_adds_exactly_k_rows_to_at_most_g_groups(policy, spread):
    """The neighbouring-dataset view of the sensitivity: the difference is the heavy unit's own
    contribution only (no other unit's choice moves), k = 3 rows in each of g = 2 groups, per column."""
    base = _light_rows()
    rnd = random.Random(11)
    heavy = [_row("heavy", s, "us-east", 200, rnd.choice([10.0, 900.0]) if spread else 10.0, rnd.randrange(1000))
             for s in SERVICES for _ in range(30)]
    c0, c1 = make_db(base), make_db(base + heavy)
    plan = plan_query(SQL, policy)
    k, g = policy.max_rows_per_unit, policy.max_groups_per_unit
    groups_seen = set()
    for salt in SALTS:
        a, b = _counts(run(c0, plan.quantile_sql, salt)), _counts(run(c1, plan.quantile_sql, salt))
        diff = {key: b.get(key, 0) - a.get(key, 0) for key in set(a) | set(b)}
        assert all(d >= 0 for d in diff.values())
        for qid in ("__q0", "__q1"):
            per_group: dict[str, int] = {}
            for (service, q, _), d in diff.items():
                if q == qid and d:
                    per_group[service] = per_group.get(service, 0) + d
            assert len(per_group) == g and all(v == k for v in per_group.values()), (salt, qid, per_group)
            groups_seen.add(tuple(sorted(per_group)))
    assert len(groups_seen) > 1                          # which g groups: keyed by the salt


def test_choice_ignores_row_order(policy):
    """A heavy unit's k rows are a function of its values and the salt: inserting the same rows in
    another order (another physical layout, another list order in the aggregation) changes nothing."""
    rnd = random.Random(5)
    rows = _light_rows() + [_row("heavy", s, "us-east", 200, float(rnd.randrange(1, 30000)), rnd.randrange(1000),
                                 minute=rnd.randrange(60)) for s in SERVICES for _ in range(25)]
    shuffled = rows[:]
    rnd.shuffle(shuffled)
    plan = plan_query(SQL, policy)
    c0, c1 = make_db(rows), make_db(shuffled[::-1])
    for salt in SALTS[:8]:
        assert run(c0, plan.quantile_sql, salt) == run(c1, plan.quantile_sql, salt)


def test_no_key_and_private_key_quantile_plans(policy):
    """Without GROUP BY a unit keeps min(rows, k) rows overall; with a private key the bounded SQL
    still counts units per group (partition selection needs them)."""
    con = make_db(_light_rows() + [_row("heavy", "api", "us-east", 200, 50.0, 5, minute=m) for m in range(20)])
    plan = plan_query("SELECT median(latency_ms) AS m FROM requests", policy)
    total = sum(n for *_, n in run(con, plan.quantile_sql))
    want = con.execute("SELECT SUM(LEAST(c, 3)) FROM (SELECT user_id, COUNT(latency_ms) AS c FROM requests GROUP BY user_id)").fetchall()
    assert total == want[0][0] and policy.max_rows_per_unit == 3
    p2 = plan_query("SELECT error_code, median(bytes_out) AS m FROM requests GROUP BY error_code", policy)
    assert "__units" in p2.bounded_sql and "FALSE" not in p2.bounded_sql
    assert run(con, p2.bounded_sql) == [(None, 41)]                          # error_code NULL: 40 + heavy
