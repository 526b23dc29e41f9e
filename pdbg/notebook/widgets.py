"""ipywidgets for an investigation: budget gauge, query form, history panel.

The one rule these widgets exist to keep: **exploring never spends**. Moving the ε
slider, changing a template or a parameter only calls ``session.preview`` (cost and
expected accuracy, no data touched, nothing charged). Budget is spent only by the
explicit Release button, exactly one ``session.sql`` call per click (the button is
disabled while a release runs, so a double click cannot spend twice). This avoids
jupysql's habit of re-running queries on widget changes, which here would burn ε.

All widgets take the session explicitly (or the one `%pdbg connect` opened), so
they can be tested with a fake session.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Callable

import ipywidgets as W

from pdbg.errors import PdbgError
from pdbg.notebook import display as disp

FREE_SQL = ""


def _session(session):
    if session is not None:
        return session
    from pdbg.notebook.magics import NotConnected, current_session

    s = current_session()
    if s is None:
        raise NotConnected("no pdbg session in this kernel")
    return s


def _error_html(err: BaseException) -> str:
    return disp.ErrorView(err)._repr_html_()


class BudgetGauge(W.VBox):
    """One bar per grant of this case: spent / granted ε, remaining, δ, expiry."""

    def __init__(self, session=None, **kw) -> None:
        super().__init__(**kw)
        self.session = _session(session)
        self.add_class("pdbg-budget")
        self.refresh()

    def refresh(self) -> None:
        try:
            budgets = disp._as_list(self.session.budget())
        except PdbgError as err:
            self.children = [W.HTML(_error_html(err))]
            return
        if not budgets:
            self.children = [W.HTML("<b>Budget</b>: no active grant for this case")]
            return
        rows: list[W.Widget] = [W.HTML("<b>Privacy budget</b> (ε at the grant's δ)")]
        for b in budgets:
            frac = b.spent_epsilon / b.granted_epsilon if b.granted_epsilon else 1.0
            style = "success" if frac < 0.5 else ("warning" if frac < 0.85 else "danger")
            bar = W.FloatProgress(value=b.spent_epsilon, min=0.0, max=max(b.granted_epsilon, 1e-12),
                                  bar_style=style, layout=W.Layout(width="260px"))
            bar.add_class("pdbg-gauge")
            text = W.HTML(
                f"<code>{disp.esc(b.dataset)}</code> spent {disp.fmt_eps(b.spent_epsilon)} of "
                f"{disp.fmt_eps(b.granted_epsilon)} · <b>remaining {disp.fmt_eps(b.remaining_epsilon)}</b> · "
                f"δ {b.delta:.2g} · grant {disp.esc(b.grant_id)} · expires {disp.esc(b.expires)}"
            )
            rows.append(W.HBox([bar, text]))
        self.children = rows


class HistoryPanel(W.VBox):
    """This case's releases (who, when, ε, cached, query)."""

    def __init__(self, session=None, **kw) -> None:
        super().__init__(**kw)
        self.session = _session(session)
        self.html = W.HTML()
        self.children = [W.HTML("<b>Releases in this case</b>"), self.html]
        self.add_class("pdbg-history")
        self.refresh()

    def refresh(self) -> None:
        try:
            self.html.value = disp.HistoryTable(self.session.history())._repr_html_()
        except PdbgError as err:
            self.html.value = _error_html(err)


def _param_widget(p) -> W.Widget:
    desc = p.name
    style = {"description_width": "110px"}
    tip = p.description or p.type
    if p.type == "integer":
        return W.IntText(value=p.default if p.default is not None else 0, description=desc, style=style, tooltip=tip)
    if p.type == "float":
        return W.FloatText(value=p.default if p.default is not None else 0.0, description=desc, style=style, tooltip=tip)
    if p.type == "boolean":
        return W.Checkbox(value=bool(p.default), description=desc, style=style, indent=False)
    if p.type == "choice":
        return W.Dropdown(options=list(p.choices), value=p.default or p.choices[0], description=desc, style=style)
    placeholder = "YYYY-MM-DD HH:MM:SS" if p.type == "timestamp" else ""
    return W.Text(value=p.default_text(), description=desc, placeholder=placeholder, style=style, tooltip=tip)


class QueryForm(W.VBox):
    """Template dropdown, parameter fields, ε slider with live expected accuracy, Release button.

    ``on_release(callback)`` registers ``callback(result)`` (the gauge and history use it).
    ``last_result`` holds the most recent :class:`pdbg.session.Result`.
    """

    def __init__(self, session=None, library: dict | None = None, template: str | None = None,
                 max_epsilon: float = 1.0, chart: bool = True, **kw) -> None:
        super().__init__(**kw)
        from pdbg.templates import load_library

        self.session = _session(session)
        self.library = load_library() if library is None else dict(library)
        self.chart = chart
        self.last_result = None
        self.last_preview = None
        self._callbacks: list[Callable[[Any], None]] = []
        self._previews: dict[tuple, Any] = {}
        self._suspend = False

        options = [("— free SQL —", FREE_SQL)] + [(f"{t.title} ({n})", n) for n, t in self.library.items()]
        first = template if template in self.library else (next(iter(self.library), FREE_SQL))
        self.template = W.Dropdown(options=options, value=first, description="Query",
                                   layout=W.Layout(width="520px"), style={"description_width": "60px"})
        self.description = W.HTML()
        self.sql = W.Textarea(placeholder="SELECT service, COUNT(*) AS errors FROM requests WHERE status >= 500 GROUP BY service",
                              layout=W.Layout(width="640px", height="90px"))
        self.params_box = W.VBox()
        self.param_widgets: dict[str, W.Widget] = {}
        self.epsilon = W.FloatSlider(value=0.1, min=0.01, max=max(max_epsilon, 0.02), step=0.01, description="ε",
                                     continuous_update=False, readout_format=".2f", layout=W.Layout(width="420px"),
                                     style={"description_width": "60px"})
        self.epsilon.add_class("pdbg-epsilon")
        self.accuracy = W.HTML("expected accuracy: –")
        self.accuracy.add_class("pdbg-accuracy")
        self.release_button = W.Button(description="Release (spends ε)", button_style="primary", icon="unlock",
                                       tooltip="Run the query under DP and charge the budget",
                                       layout=W.Layout(width="190px"))
        self.release_button.add_class("pdbg-release")
        self.status = W.HTML()
        self.result_html = W.HTML()
        self.result_html.add_class("pdbg-result")
        self.chart_image = W.Image(format="png", layout=W.Layout(display="none", max_width="720px"))
        self.chart_image.add_class("pdbg-chart")

        self.template.observe(self._on_template, names="value")
        self.epsilon.observe(self._on_change, names="value")
        self.sql.observe(self._on_change, names="value")
        self.release_button.on_click(lambda _b: self.release())
        self.children = [
            W.HTML("<b>Query</b> — moving the slider only previews; nothing is spent until you press Release."),
            self.template, self.description, self.sql, self.params_box,
            W.HBox([self.epsilon, self.accuracy]),
            W.HBox([self.release_button, self.status]),
            self.result_html, self.chart_image,
        ]
        self._on_template({"new": first})

    # -- building -------------------------------------------------------------
    def _current_template(self):
        return self.library.get(self.template.value)

    def _on_template(self, change) -> None:
        t = self._current_template()
        self._suspend = True
        try:
            for w in self.param_widgets.values():
                w.unobserve(self._on_change, names="value")
            self.param_widgets = {}
            if t is None:
                self.description.value = "Free SQL: any aggregate the DP checker accepts."
                self.sql.layout.display = None
                self.params_box.children = []
            else:
                notes = f"<br><i>{disp.esc(t.notes)}</i>" if t.notes else ""
                self.description.value = (
                    f"<div style='max-width:640px'>{disp.esc(t.description)}{notes}<br>"
                    f"<pre style='margin:4px 0;line-height:1.3'>{disp.esc(t.sql)}</pre></div>"
                )
                self.sql.layout.display = "none"
                for p in t.params:
                    w = _param_widget(p)
                    w.observe(self._on_change, names="value")
                    self.param_widgets[p.name] = w
                self.params_box.children = list(self.param_widgets.values())
                self.epsilon.value = min(max(t.epsilon, self.epsilon.min), self.epsilon.max)
        finally:
            self._suspend = False
        self.update_preview()

    def query(self) -> tuple[str, dict | None, str | None]:
        """(sql, bound params, template name) from the current form state. Raises QueryRejected."""
        t = self._current_template()
        if t is None:
            return self.sql.value, None, None
        values = {}
        for name, w in self.param_widgets.items():
            v = w.value
            values[name] = v.isoformat(sep=" ") if isinstance(v, datetime) else v
        return t.sql, t.bind(values), t.name

    # -- preview (never spends) ----------------------------------------------
    def _on_change(self, change) -> None:
        if not self._suspend:
            self.update_preview()

    def update_preview(self) -> None:
        """Ask the session what the current query would cost and how accurate it would be."""
        try:
            sql, params, _ = self.query()
            if not sql.strip():
                self.accuracy.value = "expected accuracy: write a query"
                return
            key = (sql, tuple(sorted((params or {}).items())), round(self.epsilon.value, 6))
            pv = self._previews.get(key)
            if pv is None:
                pv = self.session.preview(sql, epsilon=self.epsilon.value, params=params)
                self._previews[key] = pv
            self.last_preview = pv
            view = disp.PreviewView(pv)
            self.accuracy.value = (
                f"expected 95% CI: <b>{disp.esc(view.accuracy_text())}</b> · cost ε {disp.fmt_eps(pv.cost.epsilon)}"
            )
        except PdbgError as err:
            self.last_preview = None
            self.accuracy.value = f"<span style='color:#a40000'>{disp.esc(disp.ErrorView(err).line())}</span>"

    # -- release (spends) -------------------------------------------------------
    def on_release(self, callback: Callable[[Any], None]) -> None:
        self._callbacks.append(callback)

    def release(self):
        """Spend: exactly one ``session.sql`` call. Returns the Result, or None if refused."""
        if self.release_button.disabled:
            return None
        self.release_button.disabled = True
        self.status.value = "releasing…"
        try:
            sql, params, tname = self.query()
            result = self.session.sql(sql, epsilon=self.epsilon.value, params=params)
        except PdbgError as err:
            self.status.value = _error_html(err)
            return None
        finally:
            self.release_button.disabled = False
        self.last_result = result
        self.status.value = disp.esc(disp.cost_line(result))
        self.result_html.value = disp.ResultView(result, tname)._repr_html_()
        self._draw(result, tname)
        for cb in self._callbacks:
            cb(result)
        return result

    def _draw(self, result, tname) -> None:
        if not self.chart:
            return
        try:
            from pdbg.notebook import charts

            t = self.library.get(tname) if tname else None
            fig = charts.plot(result, title=(t.title if t else None))
            self.chart_image.value = charts.png_bytes(fig)
            self.chart_image.layout.display = None
        except ValueError:
            self.chart_image.layout.display = "none"


class Investigation(W.VBox):
    """Gauge + form + history, wired so a release refreshes the gauge and the history."""

    def __init__(self, session=None, library: dict | None = None, template: str | None = None, **kw) -> None:
        super().__init__(**kw)
        self.session = _session(session)
        self.gauge = BudgetGauge(self.session)
        remaining = [b.remaining_epsilon for b in disp._as_list(self._safe_budget())]
        max_eps = min(1.0, max(remaining)) if remaining else 1.0
        self.form = QueryForm(self.session, library=library, template=template, max_epsilon=max(max_eps, 0.02))
        self.history = HistoryPanel(self.session)
        self.form.on_release(lambda _r: (self.gauge.refresh(), self.history.refresh()))
        self.children = [self.gauge, self.form, self.history]
        self.add_class("pdbg-investigation")

    def _safe_budget(self):
        try:
            return self.session.budget()
        except PdbgError:
            return None


def investigate(session=None, template: str | None = None) -> Investigation:
    """The whole investigation panel for the current (or given) session."""
    return Investigation(session, template=template)
