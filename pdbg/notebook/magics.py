"""`%load_ext pdbg`: the `%pdbg` line magic and the `%%dpsql` cell magic.

Why a magic: the safe path must be the easy path. `%%dpsql` feels like `%%sql`
(jupysql) but every answer goes through the session's DP pipeline, carries CIs,
costs budget (or nothing, from the cache) and is audited; there is no raw mode.

Parsing lives in :mod:`pdbg.notebook.args` (pure); this module only runs things.
A refused query (``QueryRejected``, ``BudgetExceeded``, …) is shown as one line with
its hint, not a traceback wall; set ``%config PdbgMagics.raise_errors = True`` to make
such cells fail instead (papermill/CI runs that must stop on a refusal).
"""

from __future__ import annotations

import inspect
from typing import Any

from IPython.core.magic import Magics, line_cell_magic, line_magic, magics_class
from traitlets import Bool, Int

from pdbg.errors import PdbgError
from pdbg.notebook import args as argmod
from pdbg.notebook import display as disp

_CURRENT: dict[str, Any] = {"session": None}


def current_session():
    """The session opened by `%pdbg connect` (or `%pdbg use`), for widgets and helpers."""
    return _CURRENT["session"]


def set_current_session(session) -> None:
    _CURRENT["session"] = session


class NotConnected(PdbgError):
    default_hint = "Run `%pdbg connect WS --user U --case C` first."


class DpsqlRefused(Exception):
    """Raised instead of displaying when ``raise_errors`` is on; renders as one line in IPython."""

    def __init__(self, err: PdbgError) -> None:
        super().__init__(str(err))
        self.error = err

    def _render_traceback_(self) -> list[str]:  # IPython hook: replaces the traceback
        return repr(disp.ErrorView(self.error)).splitlines()


def resolve_query(a: argmod.DpsqlArgs, cell: str, library=None) -> tuple[str, dict, float | None, str | None]:
    """(sql, params, epsilon, template name) for a `%%dpsql` cell. Pure: spends nothing.

    With ``--template`` the SQL comes from the reviewed library and parameters are typed
    by its header; otherwise the cell is the SQL and ``--param`` values are inferred
    (int, float, text). Either way values are *bound* by the planner, never pasted in.
    """
    from pdbg import templates as tmod

    body = (cell or "").strip()
    if a.template:
        if body:
            raise argmod.MagicUsageError(
                "%%dpsql: give either --template or SQL in the cell, not both",
                "Empty the cell to run the template, or drop --template to run your SQL.",
            )
        t = tmod.get_template(a.template, library)
        params = t.bind(a.params)
        eps = a.epsilon if (a.epsilon is not None or a.accuracy is not None) else t.epsilon
        return t.sql, params, eps, t.name
    if not body:
        raise argmod.MagicUsageError("%%dpsql: the cell holds no SQL", "Write a SELECT below the %%dpsql line.")
    params = {k: argmod.infer_free_param(v) for k, v in a.params.items()}
    return body, params, a.epsilon, None


def _accepts(fn, name: str) -> bool:
    try:
        return name in inspect.signature(fn).parameters
    except (TypeError, ValueError):
        return False


@magics_class
class PdbgMagics(Magics):
    """`%pdbg` (session management) and `%%dpsql` (DP queries). Display settings are traitlets."""

    raise_errors = Bool(False, help="Fail the cell on a refusal instead of showing one line.").tag(config=True)
    max_rows = Int(50, help="Rows shown in a result (the DataFrame always has all).").tag(config=True)

    def _session(self):
        s = current_session()
        if s is None:
            raise NotConnected("no pdbg session in this kernel")
        return s

    def _fail(self, err: PdbgError):
        if self.raise_errors:
            raise DpsqlRefused(err)
        from IPython.display import display

        display(disp.ErrorView(err))
        return None

    # -- %pdbg ---------------------------------------------------------------
    @line_magic
    def pdbg(self, line: str):
        """%pdbg connect WS --user U --case C | use VAR | budget | history | templates | disconnect"""
        try:
            cmd = argmod.parse_pdbg(line)
            return self._run_pdbg(cmd)
        except PdbgError as err:
            return self._fail(err)

    def _run_pdbg(self, cmd: argmod.PdbgCommand):
        from IPython.display import display

        if cmd.verb == "help":
            print(argmod.pdbg_usage())
            return None
        if cmd.verb == "connect":
            import pdbg

            c = cmd.connect
            from pdbg.governance.principals import read_token

            session = pdbg.connect(c.target, user=c.user, case=c.case, token=read_token(c.token_file))
            set_current_session(session)
            print(f"pdbg: connected as {c.user} on case {c.case}")
            display(disp.BudgetTable(session.budget()))
            return None
        if cmd.verb == "use":
            if cmd.variable not in self.shell.user_ns:
                raise argmod.MagicUsageError(f"%pdbg use: no variable {cmd.variable!r}", "Assign the session first.")
            set_current_session(self.shell.user_ns[cmd.variable])
            return None
        if cmd.verb == "disconnect":
            set_current_session(None)
            return None
        if cmd.verb == "budget":
            return disp.BudgetTable(self._session().budget())
        if cmd.verb == "history":
            return disp.HistoryTable(self._session().history())
        if cmd.verb == "templates":
            return TemplateList()
        raise argmod.MagicUsageError(f"%pdbg: {cmd.verb} is not implemented", argmod.pdbg_usage())

    # -- %%dpsql -------------------------------------------------------------
    @line_cell_magic
    def dpsql(self, line: str, cell: str | None = None):
        """Run a DP query: %%dpsql [--epsilon E | --accuracy A] [--preview] [-o var] with SQL in the cell,
        or `%dpsql --template NAME [--param k=v …]` (line form: IPython refuses empty cell bodies)."""
        try:
            a = argmod.parse_dpsql(line)
            if cell is None and not a.template:
                raise argmod.MagicUsageError(
                    "%dpsql as a line magic runs a template", "Use `%dpsql --template NAME`, or `%%dpsql` with SQL below."
                )
            sql, params, eps, tname = resolve_query(a, cell)
            session = self._session()
            if a.preview:
                kwargs: dict[str, Any] = {"epsilon": eps, "params": params or None}
                if a.accuracy is not None:
                    if not _accepts(session.preview, "accuracy"):
                        raise argmod.MagicUsageError(
                            "%%dpsql: --preview takes --epsilon here, not --accuracy",
                            "Preview with --epsilon, or run with --accuracy to let pdbg solve for ε.",
                        )
                    kwargs["accuracy"] = a.accuracy
                return disp.PreviewView(session.preview(sql, **kwargs))
            result = session.sql(sql, epsilon=eps, accuracy=a.accuracy, params=params or None)
        except PdbgError as err:
            return self._fail(err)
        if a.output:
            self.shell.user_ns[a.output] = result.df
        view = disp.ResultView(result, tname)
        view.max_rows = self.max_rows
        if a.chart:
            from IPython.display import display

            from pdbg.notebook import charts

            display(view)
            charts.show(charts.plot(result))
            return None
        return view


class TemplateList:
    """`%pdbg templates`: the reviewed library, name / ε / parameters / description."""

    def __init__(self) -> None:
        from pdbg.templates import load_library

        self.library = load_library()

    def __repr__(self) -> str:
        return "\n".join(
            f"{t.name} (ε {t.epsilon}; {', '.join(p.name for p in t.params) or 'no parameters'}): {t.title}"
            for t in self.library.values()
        )

    def _repr_html_(self) -> str:
        rows = "".join(
            f"<tr><td class=k><code>{disp.esc(t.name)}</code></td><td>{t.epsilon:g}</td>"
            f"<td class=k>{disp.esc(', '.join(f'{p.name}={p.default_text()}' for p in t.params))}</td>"
            f"<td class=k>{disp.esc(t.description)}</td></tr>"
            for t in self.library.values()
        )
        return (
            f"{disp._CSS}<div class=pdbg><table><thead><tr><th class=k>template</th><th>ε</th>"
            f"<th class=k>parameters</th><th class=k>description</th></tr></thead><tbody>{rows}</tbody></table></div>"
        )


def load_ipython_extension(ipython) -> None:
    """Register the magics; `%config PdbgMagics.…` reaches their traitlets."""
    magics = PdbgMagics(ipython)
    ipython.register_magics(magics)
    if magics not in ipython.configurables:
        ipython.configurables.append(magics)


def unload_ipython_extension(ipython) -> None:  # pragma: no cover - trivial
    set_current_session(None)
