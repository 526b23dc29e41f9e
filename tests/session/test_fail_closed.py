"""Fail closed after data access (DESIGN.md invariant 10).

Once the engine has started reading private rows, every outcome is a release: an answer,
an engine error, a Python exception of any type, a timeout, an interrupt, a post-processing
or serialization failure. Each must commit the reserved charge, append a ``query.failed``
audit record carrying it, and reach the investigator as a fixed ``QueryFailed`` message
whose exception holds no frames with exact or noisy values. Failures decided before any row
is read stay free refusals. Each test has a "defence off" twin showing the check can fail.
"""

from __future__ import annotations

import pytest

from pdbg.demo.build import INVESTIGATOR
from pdbg.errors import QueryFailed, QueryRejected
from pdbg.ledger.audit import AuditLog
from pdbg.ledger.reconcile import reconcile
from pdbg.session import Session

CANARY = "CANARY-5e1f"
Q = "SELECT service, COUNT(*) AS n FROM requests WHERE status >= 500 GROUP BY service"


def _session(demo_ws, fresh_case):
    return Session(demo_ws.ws, user=INVESTIGATOR, case=fresh_case(1.0))


def _frames_text(exc: BaseException) -> str:
    """Everything an exception lets a caller reach: message, args, context chain, traceback locals."""
    out, seen = [], set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        out += [repr(exc), repr(exc.args)]
        tb = exc.__traceback__
        while tb is not None:
            if not tb.tb_frame.f_code.co_name.startswith("test_"):   # the test's own frame holds the test's objects
                out += [f"{tb.tb_frame.f_code.co_name}.{k}={v!r}"[:20000]
                        for k, v in dict(tb.tb_frame.f_locals).items()]
            tb = tb.tb_next
        exc = exc.__cause__ or exc.__context__
    return "\n".join(out)


def _spent(s) -> float:
    return s.budget().spent_epsilon


def _records(s, n):
    return AuditLog(s.ws).records()[n:]


def _explode_in_release(monkeypatch):
    """Raise, deep in the release step, an exception whose message and frame hold the exact answer."""
    import pdbg.dp.release as rel

    def boom(plan, exact_df, *a, **kw):
        secret_table = exact_df.to_string() + CANARY    # noqa: F841 - a local a traceback would expose
        raise ValueError(f"cannot release {CANARY} {exact_df.to_dict()}")

    monkeypatch.setattr(rel, "release", boom)


def test_any_exception_after_data_access_is_charged_audited_and_clean(demo_ws, fresh_case, monkeypatch):
    s = _session(demo_ws, fresh_case)
    n0, spent0 = len(AuditLog(s.ws).records()), _spent(s)
    _explode_in_release(monkeypatch)
    with pytest.raises(QueryFailed) as info:
        s.sql(Q, epsilon=0.1)
    err = info.value
    assert err.rule == "internal" and err.charged
    assert err.__context__ is None and err.__cause__ is None
    text = _frames_text(err)
    assert CANARY not in text and "DataFrame" not in text
    new = _records(s, n0)
    assert [r["action"] for r in new] == ["query.failed"]
    assert new[0]["charged"] is True and new[0]["rule"] == "internal" and CANARY not in str(new[0])
    assert _spent(s) == pytest.approx(spent0 + 0.1, rel=1e-6)
    assert reconcile(s.ws).ok


def test_defence_off_the_failure_would_be_free_and_unlogged(demo_ws, fresh_case, monkeypatch):
    """The pre-fix behaviour (release the reservation, re-raise): the checks above see it."""
    s = _session(demo_ws, fresh_case)
    n0, spent0 = len(AuditLog(s.ws).records()), _spent(s)
    _explode_in_release(monkeypatch)

    def old(self, audit, ledger, reservation, base, cost, failure):
        ledger.release(reservation)
        raise QueryFailed(failure.message, rule=failure.rule)

    monkeypatch.setattr(Session, "_charge_failure", old)
    with pytest.raises(QueryFailed):
        s.sql(Q, epsilon=0.1)
    assert _spent(s) == spent0                                         # a free bit …
    assert "query.failed" not in [r["action"] for r in _records(s, n0)]  # … and unlogged


def test_an_interrupt_while_reading_is_charged_then_raised_again(demo_ws, fresh_case, monkeypatch):
    import pdbg.engine.duckdb as eng

    s = _session(demo_ws, fresh_case)
    spent0 = _spent(s)
    real = eng._run

    def interrupted(con, sql, salt):
        real(con, sql, salt)
        raise KeyboardInterrupt

    monkeypatch.setattr(eng, "_run", interrupted)
    with pytest.raises(KeyboardInterrupt) as info:
        s.sql(Q, epsilon=0.1)
    assert info.value.__context__ is None
    monkeypatch.setattr(eng, "_run", real)
    assert _spent(s) == pytest.approx(spent0 + 0.1, rel=1e-6)
    assert AuditLog(s.ws).records()[-1]["rule"] == "interrupted"
    assert reconcile(s.ws).ok


def test_a_timeout_is_charged(demo_ws, fresh_case, monkeypatch):
    import duckdb

    import pdbg.engine.duckdb as eng

    s = _session(demo_ws, fresh_case)
    spent0 = _spent(s)

    def slow(con, sql, salt):
        raise duckdb.InterruptException("INTERRUPT Error: Interrupted!")

    monkeypatch.setattr(eng, "_run", slow)
    with pytest.raises(QueryFailed) as info:
        s.sql(Q, epsilon=0.1)
    assert info.value.rule == "timeout"
    assert _spent(s) == pytest.approx(spent0 + 0.1, rel=1e-6)


def test_a_post_processing_failure_is_charged_with_a_fixed_message(demo_ws, fresh_case):
    s = _session(demo_ws, fresh_case)
    spent0 = _spent(s)
    with pytest.raises(QueryFailed) as info:
        s.sql(Q + " HAVING CAST(service AS INTEGER) > 1", epsilon=0.1)
    assert info.value.rule == "post-processing"
    assert "checkout" not in str(info.value) and "Conversion" not in str(info.value)
    assert _spent(s) == pytest.approx(spent0 + 0.1, rel=1e-6)
    assert AuditLog(s.ws).records()[-1]["action"] == "query.failed"


def test_a_serialization_failure_is_charged(demo_ws, fresh_case, monkeypatch):
    import pdbg.session as sess

    s = _session(demo_ws, fresh_case)
    spent0 = _spent(s)

    def cannot(df):
        raise TypeError(f"Object of type timedelta is not JSON serializable: {CANARY} {df.to_dict()}")

    monkeypatch.setattr(sess, "_df_to_payload", cannot)
    with pytest.raises(QueryFailed) as info:
        s.sql(Q, epsilon=0.1)
    assert CANARY not in _frames_text(info.value) and "timedelta" not in _frames_text(info.value)
    assert _spent(s) == pytest.approx(spent0 + 0.1, rel=1e-6)


@pytest.mark.parametrize("sql,rule", [
    ("SELECT ts - TIMESTAMP '2026-11-19 00:00:00' AS k, COUNT(*) AS n FROM requests GROUP BY k", "key-type"),
    ("SELECT service, COUNT(*) AS n FROM requests GROUP BY service ORDER BY ARRAY(SELECT #2 FROM requests)",
     "subquery"),
    ("SELECT SUM(CASE WHEN status = 503 THEN 1e17 ELSE 0 END) AS s FROM requests", "unbounded-value"),
])
def test_failures_decided_before_reading_stay_free(demo_ws, fresh_case, sql, rule):
    s = _session(demo_ws, fresh_case)
    n0, spent0 = len(AuditLog(s.ws).records()), _spent(s)
    with pytest.raises(QueryRejected) as info:
        s.sql(sql, epsilon=0.1)
    assert info.value.rule == rule
    assert _spent(s) == spent0
    new = _records(s, n0)
    assert [r["action"] for r in new] == ["query.refused"] and new[0]["charged"] is False
    assert reconcile(s.ws).ok


def test_an_audit_failure_for_a_failed_query_releases_like_an_answer(demo_ws, fresh_case, monkeypatch):
    """If the failure cannot be audited, the outcome is an AuditError exactly as for an answer
    (which does not depend on the data), and nothing stays charged without a record."""
    from pdbg.errors import AuditError
    from pdbg.ledger.audit import AuditLog as Log

    s = _session(demo_ws, fresh_case)
    spent0 = _spent(s)
    _explode_in_release(monkeypatch)
    real = Log.append

    def failing(self, actor, action, **fields):
        if action == "query.failed":
            raise AuditError("could not append to the audit log (OSError)")
        return real(self, actor, action, **fields)

    monkeypatch.setattr(Log, "append", failing)
    with pytest.raises(AuditError):
        s.sql(Q, epsilon=0.1)
    assert _spent(s) == spent0
    assert reconcile(s.ws).ok


def test_a_charged_failure_shows_in_the_history_table_and_the_privacy_impact(demo_ws, fresh_case):
    from pdbg.governance.impact import privacy_impact
    from pdbg.notebook.display import history_rows

    case = fresh_case(1.0)
    s = Session(demo_ws.ws, user=INVESTIGATOR, case=case)
    with pytest.raises(QueryFailed):
        s.sql(Q + " HAVING CAST(service AS INTEGER) > 1", epsilon=0.1)
    failed = [r for r in AuditLog(s.ws).records(case=case) if r["action"] == "query.failed"]
    rows = history_rows(failed)
    assert rows[0]["status"] == "failed (charged)" and rows[0]["epsilon"] == pytest.approx(0.1)
    impact = privacy_impact(s.ws, case)
    assert impact["releases"] == 1 and [f["rule"] for f in impact["failed"]] == ["post-processing"]


@pytest.mark.parametrize("sql", [
    "SELECT ts::DATE AS d, COUNT(*) AS n FROM requests GROUP BY 1",
    "SELECT CASE WHEN status >= 500 THEN 1.5 ELSE 0.5 END AS k, COUNT(*) AS n FROM requests GROUP BY 1",
    "SELECT service, COUNT(*) AS n FROM requests GROUP BY ALL ORDER BY ALL",
])
def test_key_types_the_binder_admits_are_released_not_failed(demo_ws, fresh_case, sql):
    """Whatever passes the pre-data checks must not fail afterwards for a reason known before
    (that would charge the investigator for nothing they could learn)."""
    s = _session(demo_ws, fresh_case)
    s.sql(sql, epsilon=0.1)


def test_history_lists_charged_failures(demo_ws, fresh_case):
    s = _session(demo_ws, fresh_case)
    with pytest.raises(QueryFailed):
        s.sql(Q + " HAVING CAST(service AS INTEGER) > 2", epsilon=0.1)
    h = s.history()
    assert [r["action"] for r in h][-1] == "query.failed" and h[-1]["charged"] is True


def test_an_answer_that_cannot_be_shown_fails_charged_before_its_success_record(demo_ws, fresh_case, monkeypatch):
    """Found by the query fuzzer: the released table was read back only after the success
    record and the commit, so a table that could not be shown raised a bare error after a
    'query' record. It is read back before, and such a failure is a charged QueryFailed."""
    import pdbg.session as sess

    s = _session(demo_ws, fresh_case)
    n0 = len(AuditLog(s.ws).records())

    def unreadable(payload):
        raise OverflowError("Python int too large to convert to C long")

    monkeypatch.setattr(sess, "_df_from_payload", unreadable)
    with pytest.raises(QueryFailed):
        s.sql(Q, epsilon=0.1)
    assert [r["action"] for r in _records(s, n0)] == ["query.failed"]
    assert reconcile(s.ws).ok


def test_a_key_of_int64_max_is_released_exactly(demo_ws, fresh_case):
    s = _session(demo_ws, fresh_case)
    r = s.sql("SELECT CASE WHEN status >= 500 THEN 9223372036854775807 ELSE 0 END AS hk, COUNT(*) AS n "
              "FROM requests GROUP BY hk", epsilon=0.1)
    assert r.df["hk"].tolist() == [0, 9223372036854775807]
