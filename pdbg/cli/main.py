"""`pdbg` command line: parses arguments, calls the library, turns errors into one line.

Conventions for every verb: `--help`; `--json` prints one JSON object instead of
the human table; exit 0 on success, 1 with one line `pdbg: refused: <why> (hint: …)`
on a PdbgError, 2 on bad usage (click's own handling).

The last line of defence: any other exception also ends as one line on stderr, never a
traceback (unless ``PDBG_DEBUG=1``). sqlite3, DuckDB and OS errors that escaped a module
boundary get a best-effort mapping to the same refusals (busy, read-only, full, corrupt,
unreadable; exit 1); anything else is `pdbg: internal error (<class>); …` with exit 3. The
exception's own text is never printed: it may quote a path or a value.
"""

from __future__ import annotations

import errno
import importlib
import json
import os
import sys

import click

from pdbg.errors import PdbgError, StorageCorrupt, StorageError, StorageFull, StorageReadOnly, StorageUnreadable

DEBUG_ENV = "PDBG_DEBUG"
INTERNAL_ERROR_EXIT = 3

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
    as_json = "--json" in (argv if argv is not None else sys.argv[1:])
    try:
        rc = cli.main(args=argv, prog_name="pdbg", standalone_mode=False)
    except PdbgError as err:
        return _refuse(err, as_json)
    except click.exceptions.Abort:
        click.echo("pdbg: aborted", err=True)
        return 1
    except click.ClickException as err:
        err.show()
        return err.exit_code
    except click.exceptions.Exit as ex:
        return ex.exit_code
    except KeyboardInterrupt:
        click.echo("pdbg: interrupted", err=True)
        return 130
    except Exception as exc:  # noqa: BLE001 - the last line of defence: one line, never a traceback
        if os.environ.get(DEBUG_ENV, "") not in ("", "0"):
            raise
        mapped = best_effort_error(exc)
        if mapped is not None:
            return _refuse(mapped, as_json)
        name = type(exc).__name__
        if as_json:
            click.echo(json.dumps({"error": "InternalError", "exception": name,
                                   "message": f"internal error ({name})"}, sort_keys=True))
        click.echo(f"pdbg: internal error ({name}); run with {DEBUG_ENV}=1 for the traceback, "
                   "and report it if it persists", err=True)
        return INTERNAL_ERROR_EXIT
    return rc if isinstance(rc, int) else 0


def _refuse(err: PdbgError, as_json: bool) -> int:
    if as_json:
        click.echo(json.dumps(err.to_dict(), sort_keys=True))
    click.echo(f"pdbg: refused: {_one_line(err.message)} (hint: {_one_line(err.hint)})", err=True)
    return 1


def _one_line(text: str) -> str:
    return " ".join(str(text).split())


def best_effort_error(exc: BaseException) -> PdbgError | None:
    """A PdbgError for a storage failure that escaped without being mapped where it happened.

    By class and error code only: the exception's text (a path, an engine message quoting a
    value) is never used in what is shown.
    """
    import sqlite3

    if isinstance(exc, sqlite3.Error):
        from pdbg.ledger.state import storage_error

        return storage_error(exc)
    duckdb = sys.modules.get("duckdb")
    if duckdb is not None and isinstance(exc, duckdb.Error):
        from pdbg.ingest.readers import open_error

        mapped = open_error(exc, writing=True)
        return mapped if isinstance(mapped, (StorageCorrupt, StorageFull, StorageReadOnly)) else None
    if isinstance(exc, json.JSONDecodeError):
        return StorageCorrupt("a workspace file holds invalid JSON (truncated or edited by hand)",
                              "Restore it from a backup; `pdbg audit verify WS` tells whether the audit log is intact.")
    if isinstance(exc, OSError) and exc.errno is not None:
        what = os.strerror(exc.errno).lower()
        if exc.errno in (errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC)):
            return StorageFull(f"a file pdbg writes could not grow: {what}",
                               "Free disk space (or quota) on the workspace's file system, then retry.")
        if exc.errno == errno.EROFS:
            return StorageReadOnly("the workspace is on a read-only file system",
                                   "Remount it read-write or copy the workspace; nothing was changed.")
        if exc.errno in (errno.EACCES, errno.EPERM):
            return StorageReadOnly(f"a file pdbg needs could not be opened: {what}",
                                   "Run as the workspace's owner, or fix the modes of its files and directories.")
        if exc.errno == errno.ENOENT:
            return StorageUnreadable(f"a file pdbg needs is missing: {what}",
                                     "Check the workspace path; a workspace needs state.sqlite, data.duckdb, "
                                     "audit/ and keys/ (`pdbg init WS` makes a new one).")
        return StorageUnreadable(f"the operating system refused a file operation: {what}",
                                 "Check the workspace's disk and file modes, then retry.")
    if isinstance(exc, MemoryError):
        return PdbgError("pdbg ran out of memory", "Retry with less data at once (e.g. ingest fewer files).")
    return None


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())


def entry() -> None:
    """Console-script entry point."""
    sys.exit(main())
