"""`pdbg demo`: build a demo workspace with a synthetic incident and investigate it with DP queries."""

from __future__ import annotations

import json

import click


def register(cli: click.Group) -> None:
    @cli.command("demo")
    @click.argument("workspace", default="demo-ws", type=click.Path(file_okay=False))
    @click.option("--rows", default=None, type=click.IntRange(min=1000), help="Rows of synthetic log (default 500,000).")
    @click.option("--seed", default=None, type=int, help="Seed of the synthetic DATA (never of the noise).")
    @click.option("--no-investigate", is_flag=True, help="Only build the workspace.")
    @click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
    def demo(workspace, rows, seed, no_investigate, as_json):
        """Build WORKSPACE (default demo-ws) from a synthetic request log with one injected incident,
        then run a DP investigation that locates it."""
        from pdbg.cli.query_cmds import _table
        from pdbg.demo.build import DEFAULT_ROWS, build_demo
        from pdbg.demo.investigate import investigate, within
        from pdbg.session import Session

        demo_ws = build_demo(workspace, n_rows=rows or DEFAULT_ROWS, seed=seed, progress=None if not as_json else False)
        rep = demo_ws.report.to_dict()
        if not as_json:
            click.echo(f"workspace {demo_ws.ws.root}: dataset 'requests' ingested")
            click.echo(f"  rows in {rep['rows_in']:,}, rows out {rep['rows_out']:,}; "
                       f"dropped columns: {', '.join(rep.get('dropped_columns', {}) or []) or 'none'}")
            dets = rep.get("detectors", {})
            click.echo("  redacted: " + (", ".join(f"{k} {v:,}" for k, v in sorted(dets.items()) if v) or "nothing"))
            click.echo(f"  users: alice (investigator), bob (approver), carol (admin), dave (auditor); "
                       f"case {demo_ws.case} with an approved grant of ε=1.0 for alice")
        out = {"workspace": str(demo_ws.ws.root), "ingest": rep, "case": demo_ws.case}
        if not no_investigate:
            s = Session(demo_ws.ws, user=demo_ws.investigator, case=demo_ws.case)

            def echo(title, result, finding):
                if as_json:
                    return
                click.echo(f"\n== {title} (ε={result.epsilon:g}) ==")
                click.echo(_table(result.df))
                click.echo(f"-> {finding}")

            f = investigate(s, demo_ws.window, echo=echo)
            t = demo_ws.truth
            found = {"service": f.service, "region": f.region, "start": f.start.isoformat(),
                     "users_affected": f.users_affected, "p99_ms": f.p99_ms,
                     "spent_epsilon": f.spent_epsilon, "remaining_epsilon": f.remaining_epsilon}
            truth = {"service": t.service, "region": t.region, "start": t.start.isoformat()}
            ok = f.service == t.service and f.region == t.region and within(f.start, t.start)
            out.update(findings=found, truth=truth, located=ok)
            if not as_json:
                click.echo(f"\nfound: {f.service} in {f.region} from {f.start:%H:%M} "
                           f"(injected: {t.service} in {t.region} from {t.start:%H:%M}) -> "
                           f"{'located' if ok else 'NOT located'}")
                click.echo(f"budget: spent ε={f.spent_epsilon:.3f}, remaining ε={f.remaining_epsilon:.3f}")
        if as_json:
            click.echo(json.dumps(out, default=str, sort_keys=True))
