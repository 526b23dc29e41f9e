"""`pdbg query`: one DP release (or a preview) from the command line."""

from __future__ import annotations

import json

import click


def _table(df, title: str | None = None) -> str:
    from io import StringIO

    from rich.console import Console
    from rich.table import Table

    t = Table(title=title, show_lines=False)
    for c in df.columns:
        t.add_column(str(c), justify="right" if df[c].dtype.kind in "iuf" else "left")
    for row in df.itertuples(index=False):
        t.add_row(*[_fmt(v) for v in row])
    buf = StringIO()
    Console(file=buf, width=160, force_terminal=False).print(t)
    return buf.getvalue().rstrip()


def _fmt(v) -> str:
    if isinstance(v, float):
        return f"{v:,.2f}" if abs(v) < 1e15 else f"{v:.3g}"
    return "" if v is None else str(v)


def read_token(token_file: str | None) -> str | None:
    """The token from ``token_file`` or $PDBG_TOKEN (``pdbg.governance.principals.read_token``)."""
    from pdbg.governance.principals import read_token as read

    return read(token_file)


def register(cli: click.Group) -> None:
    @cli.command("query")
    @click.argument("workspace", type=click.Path(file_okay=False))
    @click.argument("sql")
    @click.option("--user", required=True, help="Investigator running the query.")
    @click.option("--case", "case", required=True, help="Incident case the grant belongs to.")
    @click.option("--token-file", "token_file", type=click.Path(dir_okay=False), default=None,
                  help="File holding the access token (mode 0600). Without it, $PDBG_TOKEN is used when set. "
                       "There is no --token: a token in argv is visible to every user in `ps`.")
    @click.option("--epsilon", type=float, default=None, help="ε to spend (default and maximum from policy).")
    @click.option("--accuracy", type=float, default=None, help="Target 95% CI half-width; pdbg solves for ε.")
    @click.option("--preview", is_flag=True, help="Show cost and expected accuracy; spends nothing.")
    @click.option("--format", "fmt", type=click.Choice(["table", "csv", "json"]), default="table")
    @click.option("--json", "as_json", is_flag=True, help="Same as --format json.")
    def query(workspace, sql, user, case, token_file, epsilon, accuracy, preview, fmt, as_json):
        """Release a differentially private answer to SQL (or --preview its cost).

        The token (checked when given) comes from --token-file or $PDBG_TOKEN, never from argv.
        """
        from pdbg import session

        s = session.Session(workspace, user=user, case=case, token=read_token(token_file))
        fmt = "json" if as_json else fmt
        if preview:
            p = s.preview(sql, epsilon=epsilon, accuracy=accuracy)
            obj = {"epsilon": p.epsilon, "cost": vars(p.cost), "accuracy_95": p.accuracy, "notes": list(p.notes)}
            if fmt == "json":
                click.echo(json.dumps(obj, sort_keys=True))
            else:
                click.echo(f"preview: ε={p.epsilon:g} (cost ε={p.cost.epsilon:.4g}, δ={p.cost.delta:.2g}); nothing spent")
                for col, hw in p.accuracy.items():
                    click.echo(f"  {col}: ±{hw:,.2f} at 95%")
            return
        r = s.sql(sql, epsilon=epsilon, accuracy=accuracy)
        if fmt == "json":
            click.echo(json.dumps({
                "release_id": r.release_id, "cached": r.cached, "epsilon": r.epsilon,
                "cost": vars(r.cost), "rows": json.loads(r.df.to_json(orient="records", date_format="iso")),
                "remaining_epsilon": r.budget.remaining_epsilon if r.budget else None, "notes": list(r.notes),
            }, sort_keys=True))
        elif fmt == "csv":
            click.echo(r.df.to_csv(index=False).rstrip())
        else:
            click.echo(_table(r.df))
            src = "served from cache, no cost" if r.cached else f"cost ε={r.cost.epsilon:.4g}, δ={r.cost.delta:.2g}"
            left = f"; remaining ε={r.budget.remaining_epsilon:.4g}" if r.budget else ""
            click.echo(f"{src}{left}; 95% CIs in *_ci_low/*_ci_high")
