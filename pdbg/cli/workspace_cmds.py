"""CLI verbs: `pdbg init`. (`pdbg demo` lives in `demo_cmds.py` and builds on ``init_workspace``.)"""

from __future__ import annotations

import click


def _emit(obj: dict, as_json: bool, human: str | None = None) -> None:
    from pdbg.cli.main import emit

    emit(obj, as_json, human)


def register(cli: click.Group) -> None:
    """Attach this module's commands to the top-level group."""

    @cli.command("init")
    @click.argument("workspace", type=click.Path(file_okay=False))
    @click.option("--audit-mirror", type=click.Path(file_okay=False), default=None,
                  help="Second location for signed audit checkpoints (default: .WS.audit-mirror beside WS; "
                       "the PDBG_AUDIT_MIRROR environment variable overrides it).")
    @click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
    def init(workspace, audit_mirror, as_json):
        """Create an empty workspace. Refuses to overwrite an existing or non-empty directory.

        The OS account running this command is the workspace's data owner: it can
        then add the first admin with `pdbg user add WS NAME --role admin`.
        """
        from pdbg.governance.init import init_workspace
        from pdbg.policy.workspace import loose_root_warning

        ws = init_workspace(workspace, audit_mirror=audit_mirror)
        # Its files are 0600 anyway, but a listable root shows names, sizes and activity.
        warnings = [w for w in (loose_root_warning(ws.root),) if w]
        for w in warnings:
            click.echo(f"pdbg: warning: {w}", err=True)
        _emit({"workspace": str(ws.root), "workspace_id": ws.workspace_id, "audit_mirror": str(ws.audit_mirror),
               "warnings": warnings},
              as_json,
              f"created workspace {ws.root}\n  audit mirror: {ws.audit_mirror}\n"
              f"  next: pdbg user add {workspace} NAME --role admin")
