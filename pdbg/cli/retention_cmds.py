"""CLI verbs: `pdbg purge` (retention)."""

from __future__ import annotations

import click


def register(cli: click.Group) -> None:
    """Attach this module's commands to the top-level group."""

    @cli.command("purge")
    @click.argument("workspace", type=click.Path(file_okay=False))
    @click.option("--dry-run", is_flag=True, help="Count what would be deleted; change nothing.")
    @click.option("--user", "acting", default=None,
                  help="Admin running the purge (default: the OS account running pdbg, the data owner).")
    @click.option("--json", "as_json", is_flag=True, help="Print the receipt as one JSON object.")
    def purge_cmd(workspace, dry_run, acting, as_json):
        """Delete rows older than each dataset's retention window (legal holds respected).

        One transaction for all datasets; safe to re-run. The receipt (counts,
        cutoffs, data versions; no content) is appended to the audit log.
        """
        from pdbg.cli.main import emit
        from pdbg.governance.principals import os_actor
        from pdbg.governance.retention import purge
        from pdbg.policy.workspace import Workspace

        rec = purge(Workspace(workspace), acting or os_actor(), dry_run=dry_run).to_dict()
        verb = "would delete" if dry_run else "deleted"
        lines = []
        for e in rec["datasets"]:
            if e["skipped"]:
                lines.append(f"{e['dataset']}: skipped ({e['skipped']})")
            else:
                lines.append(f"{e['dataset']}: {verb} {e['deleted']} rows older than {e['cutoff']} "
                             f"(data version {e['data_version_after']})")
        lines.append(f"total: {verb} {rec['total_deleted']} rows" if rec["datasets"] else "no datasets registered")
        emit(rec, as_json, "\n".join(lines))
