"""CLI verbs: `pdbg audit verify|show|reconcile|recover`.

Reading the audit log needs the ``audit.read`` permission (auditor, admin, or the OS
account that owns the workspace; `--user NAME` acts as a pdbg user, taken on trust
as in every embedded verb). Verifications are themselves audited (``audit.verify``,
``audit.reconcile`` records carrying the outcome, never record content); when that
record cannot be written the command still reports what it found and exits 1.
"""

from __future__ import annotations

import click

ACTING_HELP = "pdbg user acting (default: the OS account running pdbg, the data owner)."


def _ws(path: str):
    from pdbg.policy.workspace import Workspace

    return Workspace(path)


def _authorize(ws, user: str | None) -> str:
    from pdbg.governance.principals import check, os_actor

    actor = user or os_actor()
    check(ws, actor, "audit.read", audit_refusal=True)
    return actor


def _record(ws, actor: str, action: str, **fields) -> str | None:
    """Audit the verification; return a reason if that failed (the caller exits 1)."""
    from pdbg.errors import AuditError
    from pdbg.ledger.audit import AuditLog

    try:
        AuditLog(ws).append(actor, action, **fields)
    except AuditError as err:
        return err.message
    return None


def _echo_json(obj: dict) -> None:
    import json

    click.echo(json.dumps(obj, default=str, sort_keys=True))


def _refused(message: str, payload: dict, hint: str | None = None):
    """An AuditError whose --json form is the full report plus the error fields, so
    `pdbg --json` still prints exactly one JSON object and exits 1 via cli.main."""
    from pdbg.errors import AuditError

    class AuditRefused(AuditError):
        def to_dict(self) -> dict:
            return {**payload, **super().to_dict(), "error": "AuditError"}

    return AuditRefused(message, hint)


def _summary(fields: dict, width: int = 80) -> str:
    """key=value pairs of the record's own fields, one line, cut to ``width``."""
    import json

    parts = []
    for k, v in fields.items():
        text = v if isinstance(v, str) else json.dumps(v, ensure_ascii=False, default=str)
        parts.append(f"{k}={text}")
    line = " ".join(parts)
    return line if len(line) <= width else line[: width - 1] + "…"


def register(cli: click.Group) -> None:
    """Attach this module's commands to the top-level group."""

    @cli.group("audit")
    def audit_group():
        """Verify, read and reconcile the tamper-evident audit log."""

    @audit_group.command("verify")
    @click.argument("workspace", type=click.Path(file_okay=False))
    @click.option("--user", default=None, help=ACTING_HELP)
    @click.option("--all-signatures", is_flag=True, help="Check every checkpoint signature, not only the newest.")
    @click.option("--deep", is_flag=True, help="Also compare every cached release with the digest its record bound.")
    @click.option("--json", "as_json", is_flag=True, help="Print the full report as one JSON object.")
    def verify_cmd(workspace, user, all_signatures, deep, as_json):
        """Recompute hashes, Merkle roots and signatures; exit 1 naming the first bad record."""
        from pdbg.ledger.audit import verify

        ws = _ws(workspace)
        actor = _authorize(ws, user)
        report = verify(ws, all_signatures=all_signatures)
        releases = None
        if deep:
            from pdbg.ledger.cache import verify_releases

            releases = verify_releases(ws)
        ok = report.ok and not (releases and releases["mismatches"])
        not_recorded = _record(
            ws, actor, "audit.verify", severity="info" if ok else "high", ok=ok,
            records=report.records, checkpoints=report.checkpoints, first_bad_seq=report.first_bad_seq,
            problem=report.problem, root=report.root, deep=deep,
            release_mismatches=[m["release_id"] for m in releases["mismatches"]] if releases else [],
        )  # fmt: skip
        payload = {**report.to_dict(), "recorded": not_recorded is None, "ok": ok}
        if releases is not None:
            payload["releases"] = releases
        if as_json and ok and not not_recorded:
            _echo_json(payload)
        elif not as_json:
            click.echo(report.message)
            if releases is not None:
                click.echo(f"releases: {releases['releases']} cached, {len(releases['mismatches'])} not matching "
                           f"their audit record, {len(releases['legacy'])} from before digests")
            extras = list(report.warnings)
            for m in (releases or {}).get("mismatches", []):
                extras.append(f"release {m['release_id']}: {m['problem']}")
            if report.unsigned:
                extras.append(f"{report.unsigned} newest record(s) not yet covered by a checkpoint (crash?)")
            if report.torn_tail_bytes:
                extras.append(f"torn last line of {report.torn_tail_bytes} bytes; the next append quarantines it")
            for q in report.quarantined:
                extras.append(f"quarantined {q['bytes']} bytes of {q['file']} at seq {q['seq']}: {q['quarantined_as']}")
            for p in report.problems[1:]:
                extras.append(f"also: {p['problem']}")
            for line in extras:
                click.echo(f"  note: {line}")
        if not report.ok:
            raise _refused(report.message, payload, "Restore the named records from a backup; the mirror "
                           "holds the signed checkpoints to check the restore against.")
        if not ok:
            raise _refused(f"{len(releases['mismatches'])} cached release(s) differ from what their audit records "
                           f"bound (first: {releases['mismatches'][0]['release_id']})", payload,
                           "The release cache was altered; altered answers are refused when shown.")
        if not_recorded:
            raise _refused(f"the log verifies but the verification could not be recorded: {not_recorded}", payload)

    @audit_group.command("show")
    @click.argument("workspace", type=click.Path(file_okay=False))
    @click.option("--case", default=None, help="Only records about this case.")
    @click.option("--user", default=None, help=ACTING_HELP)
    @click.option("--json", "as_json", is_flag=True, help='Print {"records": [...]}.')
    def show_cmd(workspace, case, user, as_json):
        """Readable history: seq, time, actor, action and the record's fields (secrets redacted)."""
        from pdbg.ledger.audit import show

        ws = _ws(workspace)
        _authorize(ws, user)
        rows = show(ws, case=case)
        if as_json:
            _echo_json({"records": rows, "case": case})
            return
        from rich.console import Console
        from rich.table import Table

        table = Table(title=f"audit log{f' for case {case}' if case else ''}: {len(rows)} records")
        for col in ("seq", "ts", "actor", "action", "fields"):
            table.add_column(col, overflow="fold", no_wrap=col != "fields")
        for r in rows:
            action = r["action"] if r["severity"] == "info" else f"{r['action']} [{r['severity']}]"
            table.add_row(str(r["seq"]), str(r["ts"]), str(r["actor"]), str(action), _summary(r["fields"]))
        Console(soft_wrap=False, width=160).print(table)

    @audit_group.command("reconcile")
    @click.argument("workspace", type=click.Path(file_okay=False))
    @click.option("--user", default=None, help=ACTING_HELP)
    @click.option("--json", "as_json", is_flag=True, help="Print the reconciliation report as one JSON object.")
    def reconcile_cmd(workspace, user, as_json):
        """Prove the budget ledger equals the sum of charges recorded in the audit log."""
        from pdbg.ledger.reconcile import reconcile

        ws = _ws(workspace)
        actor = _authorize(ws, user)
        result = reconcile(ws)
        not_recorded = _record(ws, actor, "audit.reconcile", severity="info" if result.ok else "high", ok=result.ok)
        payload = {**result.to_dict(), "recorded": not_recorded is None}
        if as_json and result.ok and not not_recorded:
            _echo_json(payload)
        elif not as_json:
            click.echo(result.message)
        if not result.ok:
            raise _refused(result.message, payload, "Compare `pdbg budget WS` with `pdbg audit show WS`.")
        if not_recorded:
            raise _refused(f"the ledger reconciles but the check could not be recorded: {not_recorded}", payload)

    @audit_group.command("recover")
    @click.argument("workspace", type=click.Path(file_okay=False))
    @click.option("--user", default=None, help=ACTING_HELP)
    @click.option("--json", "as_json", is_flag=True, help="Print what was settled as one JSON object.")
    def recover_cmd(workspace, user, as_json):
        """Settle every unfinished state change and dead query charge from the actual state.

        An intent record without its completion (a process died between them, or the
        completion could not be written) is settled done / not-done by reading data.duckdb
        and state.sqlite, with a `<action>.settled` record; stranded query reservations are
        committed if their charge was audited, released otherwise. Running changes are left alone.
        """
        from pdbg.governance.principals import check, os_actor
        from pdbg.governance.recovery import recover

        ws = _ws(workspace)
        actor = user or os_actor()
        check(ws, actor, "retention.purge", "recovery of unfinished changes", audit_refusal=True)
        report = recover(ws, actor)
        payload = report.to_dict()
        if as_json:
            _echo_json(payload)
            return
        if not report.changed:
            click.echo("nothing to recover" + (f" ({len(report.running)} change(s) still running)"
                                               if report.running else ""))
            return
        for s in report.settled:
            click.echo(f"settled {s['action']} {s['intent']}: {s['outcome']}")
        b = report.budget
        if b.get("committed") or b.get("released"):
            click.echo(f"query charges: {len(b.get('committed', []))} committed, {len(b.get('released', []))} released")
        for r in report.running:
            click.echo(f"  note: {r} is still running; left alone")
