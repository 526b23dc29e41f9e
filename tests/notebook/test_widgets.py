"""Widget behaviour: exploring previews (never spends); Release spends exactly once."""

import pytest

from pdbg.notebook import widgets as W


def kinds(fake):
    return [c[0] for c in fake.calls]


def test_slider_moves_only_preview(fake):
    form = W.QueryForm(fake, template="errors_by_service")
    fake.calls.clear()
    for i in range(50):
        form.epsilon.value = 0.05 + 0.01 * (i % 40)
    assert "sql" not in kinds(fake)
    assert kinds(fake).count("preview") >= 1
    assert fake.spent == 0.0
    assert "expected 95% CI" in form.accuracy.value and "errors ±" in form.accuracy.value


def test_accuracy_label_tracks_slider(fake):
    form = W.QueryForm(fake, template="errors_by_service")
    form.epsilon.value = 0.5
    assert "errors ±6" in form.accuracy.value
    form.epsilon.value = 0.1
    assert "errors ±30" in form.accuracy.value
    last = [c for c in fake.calls if c[0] == "preview"][-1]
    assert last[2]["epsilon"] == pytest.approx(0.1)


def test_param_change_previews_not_spends(fake):
    form = W.QueryForm(fake, template="slow_endpoints")
    fake.calls.clear()
    form.param_widgets["threshold_ms"].value = 900
    assert kinds(fake) == ["preview"]
    assert fake.calls[0][2]["params"]["threshold_ms"] == 900


def test_release_calls_sql_once_and_renders(fake):
    form = W.QueryForm(fake, template="errors_by_service")
    fake.calls.clear()
    form.release_button.click()
    assert kinds(fake).count("sql") == 1
    kind, sql, kw = [c for c in fake.calls if c[0] == "sql"][0]
    assert "$start" in sql and kw["params"]["start"].year == 2026 and kw["epsilon"] == pytest.approx(0.2)
    assert "95% CI" in form.result_html.value and "cost ε 0.2" in form.status.value
    assert bytes(form.chart_image.value).startswith(b"\x89PNG")
    assert form.last_result.release_id == "r-0001"


def test_release_refusal_shown_inline(fake):
    form = W.QueryForm(fake, template=None)
    form.template.value = W.FREE_SQL
    form.sql.value = "SELECT user_id FROM requests"
    assert "QueryRejected" in form.accuracy.value
    assert form.release() is None
    assert "QueryRejected" in form.status.value and "hint" in form.status.value
    assert fake.spent == 0.0 and not form.release_button.disabled


def test_bad_param_value_never_reaches_session(fake):
    form = W.QueryForm(fake, template="errors_by_service")
    fake.calls.clear()
    form.param_widgets["start"].value = "yesterday-ish"
    assert "template_parameter" in form.accuracy.value
    form.release()
    assert "sql" not in kinds(fake)


def test_investigation_refreshes_gauge_and_history(fake):
    panel = W.investigate(fake, template="users_affected")
    bar = panel.gauge.children[1].children[0]
    assert bar.value == 0.0
    panel.form.release_button.click()
    bar = panel.gauge.children[1].children[0]
    assert bar.value == pytest.approx(0.2)
    assert "remaining 0.8" in panel.gauge.children[1].children[1].value
    assert "released" in panel.history.html.value
    panel.form.release_button.click()                 # same query: cache, no spend
    assert fake.spent == pytest.approx(0.2)
    assert "cache" in panel.history.html.value


def test_free_sql_release(fake):
    form = W.QueryForm(fake, library={})
    form.sql.value = "SELECT region, COUNT(*) AS n FROM requests GROUP BY region"
    r = form.release()
    assert r is not None and list(r.df["region"])[:2] == ["ap-south", "eu-west"]


def test_time_series_chart(fake):
    form = W.QueryForm(fake, template="errors_over_time")
    form.release()
    assert bytes(form.chart_image.value).startswith(b"\x89PNG")


def test_widgets_use_current_session(fake):
    assert W.BudgetGauge().session is fake
