"""Rich notebook rendering of releases, previews, budgets and errors.

Why its own module: the magic, the widgets and the postmortem notebook all show the
same things, and every one must show the uncertainty (CI), the cost and whether the
answer came from the cache, so an investigator never reads a noisy number as exact.
Everything is HTML-escaped: values come from data and must never become markup.
Each view has a plain-text form too (nbval compares it; logs and terminals read it).
"""

from __future__ import annotations

import html
import math
from typing import Any, Iterable

CI_LOW, CI_HIGH = "_ci_low", "_ci_high"

_CSS = (
    "<style>.pdbg{font-family:var(--jp-ui-font-family,sans-serif);font-size:13px}"
    ".pdbg table{border-collapse:collapse;margin:4px 0}"
    ".pdbg th,.pdbg td{padding:2px 8px;border-bottom:1px solid #ddd;text-align:right}"
    ".pdbg th.k,.pdbg td.k{text-align:left}"
    ".pdbg .ci{color:#666;font-size:11px}.pdbg .meta{color:#444;margin:2px 0}"
    ".pdbg .cache{background:#e8f4ff;border-radius:3px;padding:0 4px}"
    ".pdbg-error{color:#a40000;font-family:var(--jp-ui-font-family,sans-serif)}"
    ".pdbg-error .hint{color:#444}</style>"
)


def esc(x: Any) -> str:
    return html.escape(str(x), quote=True)


def fmt_number(x: Any) -> str:
    """Compact, stable formatting: integers without decimals, others to 4 significant digits."""
    if x is None:
        return "–"
    if isinstance(x, bool):
        return str(x)
    if isinstance(x, int):
        return f"{x:,}"
    if isinstance(x, float):
        if math.isnan(x):
            return "–"
        if x.is_integer() and abs(x) < 1e15:
            return f"{int(x):,}"
        if x != 0 and (abs(x) >= 1e6 or abs(x) < 1e-3):
            return f"{x:.3e}"
        return f"{x:,.4g}" if abs(x) >= 1000 else f"{x:.4g}"
    return str(x)


def fmt_eps(x: float | None) -> str:
    if x is None:
        return "–"
    return f"{x:.4g}"


def value_columns(df) -> list[str]:
    """Output columns that carry a CI (the released measures)."""
    cols = list(df.columns)
    return [c for c in cols if f"{c}{CI_LOW}" in cols and f"{c}{CI_HIGH}" in cols]


def key_columns(df) -> list[str]:
    vals = set(value_columns(df))
    return [c for c in df.columns if c not in vals and not c.endswith((CI_LOW, CI_HIGH))]


def _cell(x: Any) -> Any:
    """numpy/pandas scalars → Python scalars, timestamps → ISO text."""
    if hasattr(x, "isoformat") and not isinstance(x, (int, float)):
        try:
            return x.isoformat(sep=" ")
        except TypeError:
            return x.isoformat()
    if hasattr(x, "item"):
        try:
            return x.item()
        except (ValueError, AttributeError):
            return x
    return x


def _rows(df, max_rows: int) -> Iterable[dict]:
    for _, row in df.head(max_rows).iterrows():
        yield {c: _cell(row[c]) for c in df.columns}


def budget_line(budget) -> str:
    """One line: remaining ε of the grant (and the dataset cap when it binds)."""
    if budget is None:
        return ""
    text = (
        f"remaining ε {fmt_eps(budget.remaining_epsilon)} of {fmt_eps(budget.granted_epsilon)} "
        f"(grant {budget.grant_id}, {budget.dataset})"
    )
    cap = getattr(budget, "dataset_cap_remaining_epsilon", None)
    if cap is not None and cap < budget.remaining_epsilon:
        text += f"; dataset cap leaves {fmt_eps(cap)}"
    return text


def cost_line(result) -> str:
    if result.cached:
        return "served from cache · cost ε 0 (nothing spent)"
    c = result.cost
    parts = [f"cost ε {fmt_eps(c.epsilon)}", f"δ {c.delta:.3g}" if c.delta else "δ 0"]
    if c.rho is not None:
        parts.append(f"ρ {c.rho:.4g}")
    return "released · " + ", ".join(parts)


class ResultView:
    """What `%%dpsql` returns: renders values with 95% CIs, cost, budget and cache status.

    ``.df`` is the DataFrame (also stored by ``-o var``); every other attribute is the
    underlying :class:`pdbg.session.Result`'s.
    """

    max_rows = 50

    def __init__(self, result, template: str | None = None) -> None:
        self.result = result
        self.template = template

    def __getattr__(self, name: str) -> Any:
        if name == "result":  # avoid recursion before __init__ ran
            raise AttributeError(name)
        return getattr(self.result, name)

    def _meta(self) -> list[str]:
        r = self.result
        meta = [cost_line(r), f"release {r.release_id}"]
        if self.template:
            meta.append(f"template {self.template}")
        b = budget_line(r.budget)
        if b:
            meta.append(b)
        return meta

    def __repr__(self) -> str:
        df = self.result.df
        keys, vals = key_columns(df), value_columns(df)
        lines = [" · ".join(self._meta())]
        for row in _rows(df, self.max_rows):
            left = ", ".join(f"{k}={row[k]}" for k in keys)
            right = ", ".join(
                f"{v}={fmt_number(row[v])} [{fmt_number(row[v + CI_LOW])}, {fmt_number(row[v + CI_HIGH])}]" for v in vals
            )
            lines.append(f"  {left}{': ' if left else ''}{right}")
        if len(df) > self.max_rows:
            lines.append(f"  … {len(df) - self.max_rows} more rows (use -o var for the DataFrame)")
        lines += [f"  note: {n}" for n in self.result.notes]
        return "\n".join(lines)

    def _repr_html_(self) -> str:
        df = self.result.df
        keys, vals = key_columns(df), value_columns(df)
        head = "".join(f'<th class="k">{esc(k)}</th>' for k in keys)
        head += "".join(f"<th>{esc(v)}</th><th class=ci>95% CI</th>" for v in vals)
        body = []
        for row in _rows(df, self.max_rows):
            tds = "".join(f'<td class="k">{esc(row[k])}</td>' for k in keys)
            tds += "".join(
                f"<td>{esc(fmt_number(row[v]))}</td>"
                f"<td class=ci>[{esc(fmt_number(row[v + CI_LOW]))}, {esc(fmt_number(row[v + CI_HIGH]))}]</td>"
                for v in vals
            )
            body.append(f"<tr>{tds}</tr>")
        more = ""
        if len(df) > self.max_rows:
            more = f"<div class=meta>… {len(df) - self.max_rows} more rows (use <code>-o var</code>)</div>"
        meta = self._meta()
        first = esc(meta[0])
        if self.result.cached:
            first = f'<span class="cache">{first}</span>'
        metas = " · ".join([first] + [esc(m) for m in meta[1:]])
        notes = "".join(f"<div class=meta>note: {esc(n)}</div>" for n in self.result.notes)
        return (
            f"{_CSS}<div class=pdbg><table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"
            f"{more}<div class=meta>{metas}</div>{notes}</div>"
        )


class PreviewView:
    """A preview: what a release would cost and how accurate it would be. Nothing was spent."""

    def __init__(self, preview) -> None:
        self.preview = preview

    def __getattr__(self, name: str) -> Any:
        if name == "preview":
            raise AttributeError(name)
        return getattr(self.preview, name)

    def accuracy_text(self) -> str:
        acc = self.preview.accuracy or {}
        return ", ".join(f"{k} ±{fmt_number(v)}" for k, v in acc.items()) or "no noisy outputs"

    def __repr__(self) -> str:
        p = self.preview
        lines = [
            f"preview (nothing spent) · ε {fmt_eps(p.epsilon)} would cost ε {fmt_eps(p.cost.epsilon)}, δ {p.cost.delta:.3g}",
            f"  expected 95% CI half-width: {self.accuracy_text()}",
        ]
        lines += [f"  note: {n}" for n in p.notes]
        return "\n".join(lines)

    def _repr_html_(self) -> str:
        p = self.preview
        notes = "".join(f"<div class=meta>note: {esc(n)}</div>" for n in p.notes)
        return (
            f"{_CSS}<div class=pdbg><div><b>Preview</b> (nothing spent): ε {esc(fmt_eps(p.epsilon))} "
            f"would cost ε {esc(fmt_eps(p.cost.epsilon))}, δ {esc(f'{p.cost.delta:.3g}')}</div>"
            f"<div class=meta>expected 95% CI half-width: {esc(self.accuracy_text())}</div>{notes}</div>"
        )


class ErrorView:
    """A refused or failed action as one line plus its hint; no traceback wall."""

    def __init__(self, err: BaseException) -> None:
        self.kind = type(err).__name__
        self.message = getattr(err, "message", str(err))
        self.hint = getattr(err, "hint", "")
        self.rule = getattr(err, "rule", None)

    def line(self) -> str:
        rule = f" [{self.rule}]" if self.rule and self.rule != "unsupported" else ""
        return f"{self.kind}{rule}: {self.message}"

    def __repr__(self) -> str:
        return self.line() + (f"\n  hint: {self.hint}" if self.hint else "")

    def _repr_html_(self) -> str:
        hint = f"<div class=hint>hint: {esc(self.hint)}</div>" if self.hint else ""
        return f"{_CSS}<div class=pdbg-error><b>{esc(self.line())}</b>{hint}</div>"


def _as_list(budgets) -> list:
    if budgets is None:
        return []
    if isinstance(budgets, (list, tuple)):
        return list(budgets)
    return [budgets]


class BudgetTable:
    """Static budget rendering (the live gauge is :class:`pdbg.notebook.widgets.BudgetGauge`)."""

    def __init__(self, budgets) -> None:
        self.budgets = _as_list(budgets)

    def __repr__(self) -> str:
        if not self.budgets:
            return "no active grant for this case"
        return "\n".join(
            f"{b.dataset} (grant {b.grant_id}, {b.accounting}): spent ε {fmt_eps(b.spent_epsilon)} of "
            f"{fmt_eps(b.granted_epsilon)}, remaining {fmt_eps(b.remaining_epsilon)}, δ {b.delta:.3g}, expires {b.expires}"
            for b in self.budgets
        )

    def _repr_html_(self) -> str:
        if not self.budgets:
            return f"{_CSS}<div class=pdbg>no active grant for this case</div>"
        rows = "".join(
            f"<tr><td class=k>{esc(b.dataset)}</td><td class=k>{esc(b.grant_id)}</td><td class=k>{esc(b.accounting)}</td>"
            f"<td>{esc(fmt_eps(b.granted_epsilon))}</td><td>{esc(fmt_eps(b.spent_epsilon))}</td>"
            f"<td>{esc(fmt_eps(b.remaining_epsilon))}</td><td>{esc(f'{b.delta:.3g}')}</td><td class=k>{esc(b.expires)}</td></tr>"
            for b in self.budgets
        )
        return (
            f"{_CSS}<div class=pdbg><table><thead><tr><th class=k>dataset</th><th class=k>grant</th>"
            f"<th class=k>accounting</th><th>granted ε</th><th>spent ε</th><th>remaining ε</th><th>δ</th>"
            f"<th class=k>expires</th></tr></thead><tbody>{rows}</tbody></table></div>"
        )


HISTORY_COLUMNS = ("ts", "user", "status", "epsilon", "sql", "release_id")


def _status(h: dict) -> str:
    if h.get("action") == "query.refused" or h.get("refused"):
        return "refused"
    if h.get("action") == "query.failed":
        return "failed (charged)"
    if h.get("cached"):
        return "cache"
    return "released"


def history_rows(history: list[dict]) -> list[dict]:
    """Normalize `Session.history()` records (audit fields) to the displayed columns."""
    out = []
    for h in history or []:
        row = {c: h.get(c, "") for c in HISTORY_COLUMNS}
        row["user"] = h.get("user") or h.get("actor") or ""
        row["status"] = _status(h)
        eps = h.get("epsilon")
        cost = h.get("cost")
        if row["status"] not in ("released", "failed (charged)"):
            eps = 0.0 if row["status"] == "cache" else ""
        elif isinstance(cost, dict) and cost.get("epsilon") is not None:
            eps = cost["epsilon"]
        row["epsilon"] = "" if eps is None else eps
        out.append(row)
    return out


class HistoryTable:
    def __init__(self, history: list[dict], max_sql: int = 120) -> None:
        self.rows = history_rows(history)
        self.max_sql = max_sql

    def _sql(self, s: Any) -> str:
        s = " ".join(str(s).split())
        return s if len(s) <= self.max_sql else s[: self.max_sql - 1] + "…"

    def __repr__(self) -> str:
        if not self.rows:
            return "no releases in this case yet"
        return "\n".join(
            f"{r['ts']} {r['user']} {r['status']} ε {fmt_number(r['epsilon'])}: {self._sql(r['sql'])}"
            for r in self.rows
        )

    def _repr_html_(self) -> str:
        if not self.rows:
            return f"{_CSS}<div class=pdbg>no releases in this case yet</div>"
        body = "".join(
            f"<tr><td class=k>{esc(r['ts'])}</td><td class=k>{esc(r['user'])}</td><td class=k>{esc(r['status'])}</td>"
            f"<td>{esc(fmt_number(r['epsilon']))}</td><td class=k><code>{esc(self._sql(r['sql']))}</code></td></tr>"
            for r in self.rows
        )
        return (
            f"{_CSS}<div class=pdbg><table><thead><tr><th class=k>time</th><th class=k>user</th><th class=k>status</th>"
            f"<th>ε</th><th class=k>query</th></tr></thead>"
            f"<tbody>{body}</tbody></table></div>"
        )
