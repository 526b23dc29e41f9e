"""The release pipeline end to end on a real (small) demo workspace.

Invariant 2: no release without a committed charge and an audit record; no charge
for a refused query. Plus the release cache, policy limits, revocation, fail-closed audit.
"""

from __future__ import annotations

from pathlib import Path

import pytest

import pdbg
from pdbg.demo.build import APPROVER, INVESTIGATOR
from pdbg.errors import AccessDenied, AuditError, BudgetExceeded, QueryRejected
from pdbg.ledger.audit import AuditLog
from pdbg.ledger.budget import Ledger

# A copy of ../shared/corpus/incident_queries.sql, so the suite never depends on what sits beside the clone.
CORPUS = Path(__file__).resolve().parents[1] / "fixtures" / "incident_queries.sql"
COUNT_BY_SERVICE = "SELECT service, COUNT(*) AS errors FROM requests WHERE status >= 500 GROUP BY service"


def corpus_queries() -> list[str]:
    return [l for l in CORPUS.read_text().splitlines() if l.strip() and not l.startswith("--")]


def spent(ws, case_grant_account: str) -> int:
    con = Ledger(ws)
    return con.balance(case_grant_account).spent_epsilon


def grant_account(session) -> str:
    return f"grant:{session.budget().grant_id}"


def test_release_has_values_cis_cost_and_audit(demo_ws, fresh_case):
    s = pdbg.connect(str(demo_ws.ws.root), user=INVESTIGATOR, case=fresh_case())
    before = len(AuditLog(demo_ws.ws).records())
    r = s.sql(COUNT_BY_SERVICE, epsilon=0.2)
    assert list(r.df.columns) == ["service", "errors", "errors_ci_low", "errors_ci_high"]
    assert (r.df["errors_ci_low"] <= r.df["errors"]).all() and (r.df["errors"] <= r.df["errors_ci_high"]).all()
    assert r.df["service"].tolist() == sorted(r.df["service"].tolist())      # never data order
    assert not r.cached and r.cost.epsilon == pytest.approx(0.2, rel=1e-6)
    assert s.budget().spent_epsilon > 0
    recs = AuditLog(demo_ws.ws).records()[before:]
    assert [x["action"] for x in recs] == ["query"]
    assert recs[0]["charged"] is True and recs[0]["sql"] == COUNT_BY_SERVICE


def test_unordered_answer_comes_in_duckdb_key_order_nulls_last(demo_ws, fresh_case):
    # No HAVING/ORDER BY/LIMIT: no post-processing pass runs, so release's own sort must give
    # what ORDER BY <keys> gives in DuckDB, including where the NULL group goes.
    s = pdbg.connect(str(demo_ws.ws.root), user=INVESTIGATOR, case=fresh_case())
    q = ("SELECT CASE WHEN latency_ms < 100 THEN 'fast' WHEN latency_ms < 1000 THEN 'ok' END AS band, "
         "COUNT(*) AS n FROM requests GROUP BY band")
    plain = s.sql(q, epsilon=0.1)
    ordered = s.sql(q + " ORDER BY band", epsilon=0.1)
    bands = plain.df["band"]
    assert list(bands[:2]) == ["fast", "ok"] and bands.isna().tolist() == [False, False, True]
    assert ordered.df["band"].equals(bands)


def test_cache_replays_identically_at_zero_cost(demo_ws, fresh_case):
    s = pdbg.connect(str(demo_ws.ws.root), user=INVESTIGATOR, case=fresh_case())
    first = s.sql(COUNT_BY_SERVICE, epsilon=0.2)
    spent_after_first = s.budget().spent_epsilon
    for _ in range(100):
        again = s.sql(COUNT_BY_SERVICE, epsilon=0.2)
        assert again.cached and again.cost.epsilon == 0
        assert again.df.equals(first.df)
    assert s.budget().spent_epsilon == spent_after_first


def test_refused_queries_charge_nothing_and_are_audited(demo_ws, fresh_case):
    s = pdbg.connect(str(demo_ws.ws.root), user=INVESTIGATOR, case=fresh_case())
    before = s.budget().spent_epsilon
    for bad in ["SELECT * FROM requests", "SELECT user_id, COUNT(*) FROM requests GROUP BY user_id",
                "SELECT MAX(latency_ms) FROM requests", "DROP TABLE requests",
                "SELECT COUNT(*) FROM read_csv('/etc/passwd')", "SELECT COUNT(*) FROM nope"]:
        with pytest.raises(QueryRejected):
            s.sql(bad, epsilon=0.1)
    assert s.budget().spent_epsilon == before
    refused = [r for r in AuditLog(demo_ws.ws).records(case=s.case) if r["action"] == "query.refused"]
    assert len(refused) == 6 and all(r["charged"] is False for r in refused)


def test_epsilon_beyond_policy_is_refused(demo_ws, fresh_case):
    s = pdbg.connect(str(demo_ws.ws.root), user=INVESTIGATOR, case=fresh_case())
    policy_max = __import__("pdbg.ingest.datasets", fromlist=["x"]).get_policy(demo_ws.ws, "requests").epsilon.max_per_query
    with pytest.raises(QueryRejected) as err:
        s.sql(COUNT_BY_SERVICE, epsilon=policy_max * 2)
    assert err.value.rule == "epsilon-above-policy"
    for bad in (0, -1.0, float("nan")):
        with pytest.raises(QueryRejected):
            s.sql(COUNT_BY_SERVICE, epsilon=bad)


def test_budget_exhaustion_refuses_and_session_keeps_working(demo_ws, fresh_case):
    s = pdbg.connect(str(demo_ws.ws.root), user=INVESTIGATOR, case=fresh_case(epsilon=0.3))
    s.sql(COUNT_BY_SERVICE, epsilon=0.25)
    left = s.budget().remaining_epsilon
    with pytest.raises(BudgetExceeded):
        s.sql("SELECT region, COUNT(*) AS n FROM requests GROUP BY region", epsilon=0.25)
    assert s.budget().remaining_epsilon == left
    assert s.sql(COUNT_BY_SERVICE, epsilon=0.25).cached          # still usable


def test_preview_spends_nothing_and_touches_no_audit(demo_ws, fresh_case):
    s = pdbg.connect(str(demo_ws.ws.root), user=INVESTIGATOR, case=fresh_case())
    n = len(AuditLog(demo_ws.ws).records())
    before = s.budget().spent_epsilon
    for eps in (0.05, 0.1, 0.2, 0.4):
        p = s.preview(COUNT_BY_SERVICE, epsilon=eps)
        assert p.accuracy["errors"] > 0
    assert s.budget().spent_epsilon == before and len(AuditLog(demo_ws.ws).records()) == n
    assert s.preview(COUNT_BY_SERVICE, epsilon=0.4).accuracy["errors"] < s.preview(COUNT_BY_SERVICE, epsilon=0.1).accuracy["errors"]


def test_accuracy_target_solves_for_epsilon(demo_ws, fresh_case):
    s = pdbg.connect(str(demo_ws.ws.root), user=INVESTIGATOR, case=fresh_case())
    loose = s.preview(COUNT_BY_SERVICE, epsilon=0.1).accuracy["errors"]
    p = s.preview(COUNT_BY_SERVICE, accuracy=loose)
    assert p.epsilon == pytest.approx(0.1, rel=0.05)
    with pytest.raises(QueryRejected) as err:
        s.preview(COUNT_BY_SERVICE, accuracy=1.0)          # needs far more than max_per_query
    assert err.value.rule == "epsilon-above-policy"
    with pytest.raises(QueryRejected) as err:
        s.preview(COUNT_BY_SERVICE, accuracy=0.001)        # finer than integer noise can be
    assert err.value.rule == "accuracy"


def test_revoked_grant_answers_nothing_on_next_query(demo_ws, fresh_case):
    from pdbg.governance import access

    s = pdbg.connect(str(demo_ws.ws.root), user=INVESTIGATOR, case=fresh_case())
    s.sql(COUNT_BY_SERVICE, epsilon=0.1)
    access.revoke(demo_ws.ws, s.budget().grant_id, APPROVER)
    with pytest.raises(AccessDenied):
        s.sql("SELECT region, COUNT(*) AS n FROM requests GROUP BY region", epsilon=0.1)
    with pytest.raises(AccessDenied):            # even a cached answer is not served after revocation
        s.sql(COUNT_BY_SERVICE, epsilon=0.1)


def test_other_case_has_no_grant(demo_ws):
    s = pdbg.connect(str(demo_ws.ws.root), user=INVESTIGATOR, case="NO-SUCH-CASE")
    with pytest.raises(AccessDenied):
        s.sql(COUNT_BY_SERVICE, epsilon=0.1)


def test_audit_failure_releases_nothing_and_charges_nothing(demo_ws, fresh_case, monkeypatch):
    s = pdbg.connect(str(demo_ws.ws.root), user=INVESTIGATOR, case=fresh_case())
    before = s.budget().spent_epsilon

    def broken(self, *a, **k):
        raise AuditError("audit log unavailable (test)")

    monkeypatch.setattr(AuditLog, "append", broken)
    with pytest.raises(AuditError):
        s.sql(COUNT_BY_SERVICE, epsilon=0.1)
    monkeypatch.undo()
    assert s.budget().spent_epsilon == before
    assert Ledger(demo_ws.ws).balance(grant_account(s)).reserved_epsilon == 0


def test_non_investigator_cannot_open_a_session(demo_ws):
    with pytest.raises(AccessDenied):
        pdbg.connect(str(demo_ws.ws.root), user=APPROVER, case=demo_ws.case)


def test_every_corpus_query_is_answered_unmodified(demo_ws, fresh_case):
    s = pdbg.connect(str(demo_ws.ws.root), user=INVESTIGATOR, case=fresh_case(epsilon=2.0))
    for q in corpus_queries():
        p = s.preview(q, epsilon=0.01)
        assert p.cost.epsilon > 0, q
    # release a representative subset within the grant
    for q in corpus_queries()[:6]:
        r = s.sql(q, epsilon=0.05)
        ci = [c for c in r.df.columns if c.endswith("_ci_low")]
        assert ci, q


def test_history_is_only_for_people_who_held_a_grant_on_the_case(demo_ws, fresh_case):
    mine = fresh_case()
    s = pdbg.connect(str(demo_ws.ws.root), user=INVESTIGATOR, case=mine)
    s.sql(COUNT_BY_SERVICE, epsilon=0.1)
    assert [h["action"] for h in s.history()] == ["query"]
    with pytest.raises(AccessDenied):
        pdbg.connect(str(demo_ws.ws.root), user=INVESTIGATOR, case="SOMEONE-ELSES").history()


def test_bounds_group_by_the_stored_unit_id_and_investigators_cannot_name_it(demo_ws, fresh_case):
    """The integer unit id written at ingest is what queries bound by, and it is not a column
    an investigator can select, filter on or group by (it identifies a person like the token)."""
    from pdbg.engine.duckdb import DuckDBEngine
    from pdbg.ingest import datasets
    from pdbg.sql import plan_query

    s = pdbg.connect(str(demo_ws.ws.root), user=INVESTIGATOR, case=fresh_case())
    policy, plan, _ = s._plan(COUNT_BY_SERVICE, None)
    assert f"__r.{datasets.UNIT_COLUMN} AS __unit" in plan.bounded_sql
    # Same exact bounded answer as grouping by (a hash of) the token itself: no cap applies
    # to one ungrouped count, so only the per-unit k limit is in play.
    q = "SELECT COUNT(*) AS n, AVG(latency_ms) AS m FROM requests WHERE status >= 500"
    by_id = plan_query(q, policy, unit_column=datasets.UNIT_COLUMN)
    by_token = plan_query(q, policy)
    eng = DuckDBEngine(demo_ws.ws)
    a = eng.execute(by_id, salt="s").groups
    b = eng.execute(by_token, salt="s").groups
    assert a.to_dict() == b.to_dict() and int(a["__units"].iloc[0]) > 100
    before = s.budget().spent_epsilon
    for bad in [f"SELECT COUNT(*) FROM requests WHERE {datasets.UNIT_COLUMN} > 0",
                f"SELECT {datasets.UNIT_COLUMN}, COUNT(*) FROM requests GROUP BY {datasets.UNIT_COLUMN}",
                f"SELECT COUNT(DISTINCT {datasets.UNIT_COLUMN}) FROM requests"]:
        with pytest.raises(QueryRejected):
            s.sql(bad, epsilon=0.1)
    assert s.budget().spent_epsilon == before


def test_postmortem_replays_after_the_grant_expired_and_not_after_revocation(demo_ws, fresh_case, monkeypatch):
    """`pdbg postmortem` runs when the incident is over: an expired (unrevoked) grant still lists
    and replays the releases made under it, for free; a revoked one shows nothing."""
    from datetime import timedelta

    from pdbg import clock
    from pdbg.governance import access
    from pdbg.notebook.postmortem import replay_case

    case = fresh_case()
    s = pdbg.connect(str(demo_ws.ws.root), user=INVESTIGATOR, case=case)
    r = s.sql(COUNT_BY_SERVICE, epsilon=0.1)
    later = clock.now() + timedelta(hours=5)                     # fresh_case grants last 4 h
    monkeypatch.setattr(clock, "now", lambda: later)
    with pytest.raises(AccessDenied, match="expired"):
        s.budget()
    rep = replay_case(s)
    assert [res.release_id for _, res in rep.results] == [r.release_id] and rep.spent == 0
    assert rep.results[0][1].df.equals(r.df) and not rep.skipped
    (grant,) = access.list_grants(demo_ws.ws, user=INVESTIGATOR, case=case)
    access.revoke(demo_ws.ws, grant.id, APPROVER)
    with pytest.raises(AccessDenied, match="revoked"):
        replay_case(s)
