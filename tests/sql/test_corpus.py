"""Every incident query in the shared corpus plans, and its bounded SQL runs on a generated table."""

from __future__ import annotations

import datetime as dt
import random
from pathlib import Path

import pytest

from pdbg.policy.model import load_policy
from pdbg.sql import plan_query

from .conftest import REGIONS, SERVICES, make_db, run

# The in-repo copy of ../shared/corpus/incident_queries.sql: the suite must not depend on what sits
# beside the clone (a missing file would silently parametrize to nothing).
CORPUS = Path(__file__).resolve().parents[1] / "fixtures" / "incident_queries.sql"
DEMO_POLICY = Path(__file__).resolve().parents[2] / "pdbg" / "demo" / "requests.policy.yaml"


def _queries():
    return [ln.strip() for ln in CORPUS.read_text().splitlines() if ln.strip() and not ln.startswith("--")]


@pytest.fixture(scope="module")
def con():
    rnd = random.Random(7)
    t0 = dt.datetime(2026, 11, 20, 13, 0)
    rows = []
    for i in range(400):
        u = f"u{rnd.randrange(40)}"
        rows.append(dict(ts=t0 + dt.timedelta(seconds=rnd.randrange(3 * 3600)), user_id=u, session_id=u + "s",
                         service=rnd.choice(SERVICES), region=rnd.choice(REGIONS),
                         endpoint=rnd.choice(["/cart", "/pay", "/search"]), status=rnd.choice([200, 200, 404, 500, 503]),
                         error_code=rnd.choice([None, "E1", "E2"]), user_agent=rnd.choice(["chrome", "curl"]),
                         latency_ms=rnd.expovariate(1 / 300), bytes_out=rnd.randrange(2000), client_ip="x",
                         message=rnd.choice(["ok", "upstream timeout", None])))
    return make_db(rows)


@pytest.mark.parametrize("sql", _queries())
def test_corpus_query_plans_and_runs(sql, policy, con):
    plan = plan_query(sql, policy)
    rows = run(con, plan.bounded_sql)
    if not plan.keys:
        assert len(rows) == 1
    if plan.quantile_sql:
        qrows = run(con, plan.quantile_sql)
        assert all(r[-1] >= 1 for r in qrows)


def test_corpus_present():
    assert len(_queries()) == 25


@pytest.mark.skipif(not DEMO_POLICY.exists(), reason="demo policy not written yet")
@pytest.mark.parametrize("sql", _queries())
def test_corpus_plans_under_demo_policy(sql):
    plan_query(sql, load_policy(DEMO_POLICY))
