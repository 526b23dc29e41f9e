"""`%%dpsql` and `%pdbg` in a real IPython shell against the fake session."""

import pytest

from pdbg.notebook import display as disp
from pdbg.notebook.magics import DpsqlRefused, current_session, resolve_query
from pdbg.notebook.args import parse_dpsql

Q = "SELECT service, COUNT(*) AS errors FROM requests WHERE status >= 500 GROUP BY service"


def test_dpsql_releases_and_renders(ip, fake):
    view = ip.run_cell_magic("dpsql", "--epsilon 0.2 -o errs", Q)
    assert isinstance(view, disp.ResultView)
    assert [c[0] for c in fake.calls].count("sql") == 1
    df = ip.user_ns["errs"]
    assert {"errors", "errors_ci_low", "errors_ci_high"} <= set(df.columns)
    html = view._repr_html_()
    assert "95% CI" in html and "cost ε 0.2" in html and "remaining ε 0.8" in html
    assert "checkout" in repr(view)


def test_second_run_is_served_from_cache(ip, fake):
    ip.run_cell_magic("dpsql", "--epsilon 0.2", Q)
    view = ip.run_cell_magic("dpsql", "--epsilon 0.2", Q)
    assert view.cached
    assert "served from cache" in view._repr_html_() and "served from cache" in repr(view)
    assert fake.spent == pytest.approx(0.2)


def test_preview_never_calls_sql(ip, fake):
    view = ip.run_cell_magic("dpsql", "--preview --epsilon 0.5", Q)
    assert isinstance(view, disp.PreviewView)
    assert "nothing spent" in repr(view) and "errors ±6" in repr(view)
    assert [c[0] for c in fake.calls] == ["preview"]


def test_template_binds_typed_params_and_uses_template_epsilon(ip, fake):
    ip.run_line_magic("dpsql", "--template slow_endpoints --param threshold_ms=1500")
    kind, sql, kw = [c for c in fake.calls if c[0] == "sql"][0]
    assert "$threshold_ms" in sql                  # bound, never pasted
    assert kw["params"]["threshold_ms"] == 1500 and kw["epsilon"] == 0.3
    assert kw["params"]["start"].isoformat() == "2026-11-20T13:00:00"


def test_refusal_is_one_line_not_a_traceback(ip, fake, capsys):
    out = ip.run_cell_magic("dpsql", "", "SELECT user_id FROM requests")
    assert out is None
    printed = capsys.readouterr().out
    assert "QueryRejected [unit-output]: user_id is the privacy unit" in printed
    assert "hint: Count distinct users" in printed
    assert "Traceback" not in printed


def test_budget_exceeded_one_line(ip, fake, capsys):
    fake.spent = 0.95
    ip.run_cell_magic("dpsql", "--epsilon 0.5", Q)
    printed = capsys.readouterr().out
    assert printed.startswith("BudgetExceeded: this query needs") and "hint:" in printed


def test_raise_errors_config_fails_cell_with_one_line(ip, fake):
    ip.run_line_magic("config", "PdbgMagics.raise_errors = True")
    try:
        with pytest.raises(DpsqlRefused) as exc:
            ip.run_cell_magic("dpsql", "", "SELECT * FROM requests")
        assert exc.value._render_traceback_()[0].startswith("QueryRejected")
        r = ip.run_cell("%%dpsql\nSELECT * FROM requests\n")
        assert not r.success
    finally:
        ip.run_line_magic("config", "PdbgMagics.raise_errors = False")


def test_usage_error_does_not_reach_session(ip, fake, capsys):
    ip.run_cell_magic("dpsql", "--epsilon 0.1 --accuracy 3", Q)
    assert "MagicUsageError" in capsys.readouterr().out
    assert fake.calls == []


def test_template_and_cell_sql_conflict(ip, fake, capsys):
    ip.run_cell_magic("dpsql", "--template users_affected", Q)
    assert "either --template or SQL" in capsys.readouterr().out
    assert fake.calls == []


def test_unknown_template_suggests(ip, fake, capsys):
    ip.run_line_magic("dpsql", "--template errors_by_servce")
    out = capsys.readouterr().out
    assert "no query template named" in out and "errors_by_service" in out


def test_not_connected(ip, capsys):
    from pdbg.notebook.magics import set_current_session

    set_current_session(None)
    ip.run_cell_magic("dpsql", "", Q)
    assert "NotConnected" in capsys.readouterr().out


def test_pdbg_connect_uses_pdbg_connect(ip, monkeypatch, capsys, fake):
    import pdbg

    seen = {}

    def connect(target, *, user, case, token=None):
        seen.update(target=target, user=user, case=case, token=token)
        return fake

    monkeypatch.setattr(pdbg, "connect", connect)
    monkeypatch.setenv("PDBG_TOKEN", "s3cret")
    ip.run_line_magic("pdbg", "connect /tmp/ws --user alice --case INC-7")
    out = capsys.readouterr().out
    assert seen == {"target": "/tmp/ws", "user": "alice", "case": "INC-7", "token": "s3cret"}
    assert "connected as alice on case INC-7" in out and "s3cret" not in out
    assert current_session() is fake


def test_pdbg_budget_history_templates(ip, fake):
    ip.run_cell_magic("dpsql", "--epsilon 0.2", Q)
    assert "remaining 0.8" in repr(ip.run_line_magic("pdbg", "budget"))
    assert "released" in repr(ip.run_line_magic("pdbg", "history"))
    assert "errors_by_service" in repr(ip.run_line_magic("pdbg", "templates"))


def test_pdbg_use(ip, fake):
    from pdbg.notebook.magics import set_current_session

    set_current_session(None)
    ip.user_ns["my_s"] = fake
    ip.run_line_magic("pdbg", "use my_s")
    assert current_session() is fake


def test_line_form_needs_template(ip, fake, capsys):
    ip.run_line_magic("dpsql", "--epsilon 0.1")
    assert "runs a template" in capsys.readouterr().out and fake.calls == []


def test_resolve_query_free_sql_params():
    sql, params, eps, name = resolve_query(parse_dpsql("--param svc=checkout --param n=5"), "SELECT 1 FROM requests")
    assert params == {"svc": "checkout", "n": 5} and eps is None and name is None


def test_chart_option_displays_png(ip, fake, monkeypatch):
    from pdbg.notebook import charts

    shown = []
    monkeypatch.setattr(charts, "show", shown.append)
    out = ip.run_cell_magic("dpsql", "--epsilon 0.2 --chart", Q)
    assert out is None and len(shown) == 1
    assert charts.png_bytes(shown[0]).startswith(b"\x89PNG")
