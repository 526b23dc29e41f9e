"""`pdbg` command line: parses arguments, calls the library, turns errors into one line.

Conventions for every verb: `--help`; `--json` prints one JSON object instead of
the human table; exit 0 on success, 1 with one line `pdbg: refused: <why> (hint: …)`
on a PdbgError, 2 on bad usage (click's own handling).
"""

from __future__ import annotations

import importlib
import json
import sys

import click

from pdbg.errors import PdbgError

# One module per verb group; each defines `register(cli: click.Group)`.
COMMAND_MODULES = (
    "pdbg.cli.workspace_cmds",   # init
    "pdbg.cli.demo_cmds",        # demo
    "pdbg.cli.dataset_cmds",     # dataset add/list, ingest
    "pdbg.cli.people_cmds",      # user add/list, case open/update/show
    "pdbg.cli.access_cmds",      # access request/approve/deny/break-glass/revoke/list, review, budget
    "pdbg.cli.audit_cmds",       # audit verify/show/reconcile
    "pdbg.cli.retention_cmds",   # purge
    "pdbg.cli.query_cmds",       # query
    "pdbg.cli.jupyter_cmds",     # queries list/lint, check, postmortem
    "pdbg.cli.serve_cmds",       # serve
)


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(package_name="pdbg")
def cli() -> None:
    """pdbg: ask production debugging data questions without seeing any user's record."""


for _name in COMMAND_MODULES:
    importlib.import_module(_name).register(cli)


def emit(obj: dict, as_json: bool, human: str | None = None) -> None:
    """Print the result: one JSON object with --json, else the human text."""
    if as_json:
        click.echo(json.dumps(obj, default=str, sort_keys=True))
    elif human is not None:
        click.echo(human)


def main(argv: list[str] | None = None) -> int:
    try:
        rc = cli.main(args=argv, prog_name="pdbg", standalone_mode=False)
    except PdbgError as err:
        as_json = "--json" in (argv if argv is not None else sys.argv[1:])
        if as_json:
            click.echo(json.dumps(err.to_dict(), sort_keys=True))
        click.echo(f"pdbg: refused: {err.message} (hint: {err.hint})", err=True)
        return 1
    except click.exceptions.Abort:
        click.echo("pdbg: aborted", err=True)
        return 1
    except click.ClickException as err:
        err.show()
        return err.exit_code
    except click.exceptions.Exit as ex:
        return ex.exit_code
    return rc if isinstance(rc, int) else 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())


def entry() -> None:
    """Console-script entry point."""
    sys.exit(main())
