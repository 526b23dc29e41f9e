"""The remote client and the embedded session are the same thing to their callers.

Both sides share one workspace here, so parity is exact: a release made through the
broker is a cache hit for the embedded session (identical DataFrame, zero cost) and
the other way round; costs, budgets, previews, history, templates and refusals agree.
"""

from __future__ import annotations

import pytest

from pdbg.demo.build import INVESTIGATOR
from pdbg.errors import QueryRejected
from pdbg.session import BudgetView, CostView, Preview, Result

COUNT = "SELECT service, COUNT(*) AS errors FROM requests WHERE status >= 500 GROUP BY service"
AVG = "SELECT region, AVG(latency_ms) AS lat FROM requests GROUP BY region"


def embedded(demo, case):
    from pdbg.session import Session

    return Session(demo.ws, user=INVESTIGATOR, case=case)


def test_remote_release_replays_identically_in_the_embedded_session(demo, remote, fresh_case):
    case = fresh_case()
    r = remote(case).sql(COUNT, epsilon=0.2)
    assert isinstance(r, Result) and not r.cached and r.cost.epsilon == pytest.approx(0.2)
    e = embedded(demo, case).sql(COUNT, epsilon=0.2)
    assert e.cached and e.release_id == r.release_id
    assert e.df.equals(r.df) and list(e.df.dtypes) == list(r.df.dtypes)
    assert e.cost == CostView(0.0, 0.0, 0.0 if r.cost.rho is not None else None)


def test_embedded_release_replays_identically_through_the_broker(demo, remote, fresh_case):
    case = fresh_case()
    e = embedded(demo, case).sql(AVG, epsilon=0.3)
    s = remote(case)
    for _ in range(5):
        r = s.sql(AVG, epsilon=0.3)
        assert r.cached and r.cost.epsilon == 0 and r.release_id == e.release_id
        assert r.df.equals(e.df) and list(r.df.columns) == list(e.df.columns)
    assert s.budget() == embedded(demo, case).budget()
    assert s.replay(e.release_id).df.equals(e.df)


def test_costs_budget_preview_and_history_agree(demo, remote, fresh_case):
    case = fresh_case()
    s, e = remote(case), embedded(demo, case)
    p_remote, p_local = s.preview(COUNT, epsilon=0.15), e.preview(COUNT, epsilon=0.15)
    assert isinstance(p_remote, Preview) and p_remote == p_local
    assert s.preview(COUNT, accuracy=400) == e.preview(COUNT, accuracy=400)
    r = s.sql(COUNT, epsilon=0.15)
    assert r.cost == p_local.cost                           # what preview promised is what was charged
    assert isinstance(r.budget, BudgetView) and r.budget == e.budget() == s.budget()
    assert s.history() == e.history()
    assert [h["action"] for h in s.history()] == ["query"]


def test_templates_and_typed_parameters_hit_the_same_cache_entry(demo, remote, fresh_case):
    """A template's TIMESTAMP parameters cross the wire as times: same plan, same cache key."""
    case = fresh_case()
    s, e = remote(case), embedded(demo, case)
    lib_remote, lib_local = s.templates(), e.templates()
    assert list(lib_remote) == list(lib_local)
    t = lib_remote["errors_by_service"]
    assert t == lib_local["errors_by_service"]
    params = t.bind({})
    assert any(hasattr(v, "isoformat") for v in params.values())
    r = s.sql(t.sql, epsilon=t.epsilon, params=params)
    again = e.sql(t.sql, epsilon=t.epsilon, params=t.bind({}))
    assert again.cached and again.df.equals(r.df)


def test_refusals_match_class_rule_message_and_hint(demo, remote, fresh_case):
    case = fresh_case()
    s, e = remote(case), embedded(demo, case)
    for bad in ["SELECT * FROM requests", "SELECT MAX(latency_ms) AS m FROM requests",
                "SELECT COUNT(*) FROM read_csv('/etc/passwd')", "DROP TABLE requests", "SELECT user_id FROM requests"]:
        with pytest.raises(QueryRejected) as remote_err:
            s.sql(bad, epsilon=0.1)
        with pytest.raises(QueryRejected) as local_err:
            e.sql(bad, epsilon=0.1)
        assert (remote_err.value.rule, remote_err.value.message, remote_err.value.hint) == \
               (local_err.value.rule, local_err.value.message, local_err.value.hint)
    assert s.budget().spent_epsilon == 0


def test_client_has_the_sessions_public_interface():
    from pdbg.server.client import RemoteSession
    from pdbg.session import Session

    public = {n for n in dir(Session) if not n.startswith("_")}
    assert public <= {n for n in dir(RemoteSession) if not n.startswith("_")} | {"ws", "query_timeout_s"}
    import inspect

    for name in ("sql", "preview"):
        assert list(inspect.signature(getattr(Session, name)).parameters) == \
               list(inspect.signature(getattr(RemoteSession, name)).parameters)
