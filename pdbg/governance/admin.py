"""Admin operations on datasets, each audited as intent → effect → completion.

Why here and not in ingest/: the ingest layer knows data, not people. An admin action
is only complete when the audit log says who did it; this module is the one place
that pairs the two.

Failure rule (DESIGN.md invariant 12, :mod:`pdbg.ledger.audit.intents`): before the
effect, the audit appender is preflighted and a ``<action>.intent`` record appended; if
either fails, nothing changes (AuditError). The effect is one DuckDB transaction; an
ingest's transaction also records its intent id in ``_pdbg_applied`` (with the resulting
data version and row count), so whether it committed is a fact recovery can read. After
it, the completion record (``dataset.add``, ``ingest``, carrying ``intent``, the data
version and ``rows_total``). If the effect fails, or the completion cannot be written,
the intent is settled from the state (``<action>.settled``) now or by the next recovery.
Identity and role: the CLI passes ``principals.os_actor()`` (``os:<login>``, the
workspace's data owner) or a named pdbg user; ``principals.check`` requires the
owner or an admin (``dataset.add``, ``data.ingest``) and audits refusals.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from pdbg.errors import AuditError, PdbgError, PolicyError
from pdbg.governance import recovery
from pdbg.governance.access import follow_dataset_cap
from pdbg.governance.principals import check
from pdbg.ingest import datasets
from pdbg.ingest import load as ingest_load
from pdbg.ingest.datasets import DatasetInfo
from pdbg.ingest.load import IngestReport
from pdbg.ledger.audit import AuditLog, intents
from pdbg.policy.model import load_policy
from pdbg.policy.workspace import Workspace


def _registered_hash(ws: Workspace, name: str) -> str | None:
    if not ws.data_path.exists():
        return None
    try:
        with datasets.reader_connection(ws) as con:
            return next((d.policy_hash for d in datasets.registered(con) if d.name == name), None)
    except Exception:  # noqa: BLE001 - a fresh file without a registry yet: register() creates it
        return None


def add_dataset(ws: Workspace, policy_path: str | Path, actor: str, *, replace: bool = False) -> tuple[DatasetInfo, str]:
    """Validate and register a policy; audit ``dataset.add`` (intent first) unless nothing changed."""
    policy = load_policy(policy_path)
    check(ws, actor, "dataset.add", f"dataset {policy.dataset}", audit_refusal=True)
    # A changed lifetime cap must reach the ledger, or a lowered cap goes unenforced. Refusals
    # (accounting changed after spending, a query in flight) come before anything changes.
    follow_dataset_cap(ws, policy, check_only=True)
    recovery.recover_pending(ws, actor)
    if _registered_hash(ws, policy.dataset) == policy.digest:
        info, outcome = datasets.register(ws, policy, replace=replace)     # unchanged: nothing to audit
    else:
        op = intents.begin(ws, actor, "dataset.add", dataset=policy.dataset, table=policy.table,
                           policy_hash=policy.digest, replace=replace)
        try:
            info, outcome = datasets.register(ws, policy, replace=replace)
        except BaseException:
            recovery.settle_now(op)
            raise
        if outcome == "unchanged":   # registered concurrently with the same policy
            op.settle("not-done", dataset=info.name, reason="already registered with this policy")
        else:
            st = recovery.dataset_state(ws, info.name) or {}
            _done(op, f"dataset {info.name} was {outcome} (data version {info.data_version})",
                  dataset=info.name, table=info.table, policy_hash=info.policy_hash, key_id=info.key_id,
                  outcome=outcome, data_version=info.data_version,
                  rows_total=st.get("rows_total") if st.get("data_version") == info.data_version else None)
    try:
        old = follow_dataset_cap(ws, policy)
    except PdbgError as err:   # lost a race with a query that started after the check
        raise PolicyError(
            f"dataset {info.name} was {outcome}, but its lifetime budget cap could not follow: {err.message}",
            "Run the same `pdbg dataset add --replace` again in a moment; it only updates the cap.",
        ) from None
    if old is not None:
        _audit(
            ws, actor, "budget.cap",
            f"the lifetime budget cap of dataset {info.name} changed",
            dataset=info.name, account=f"dataset:{info.name}", accounting=policy.accounting,
            epsilon=policy.epsilon.dataset_cap, delta=policy.lifetime_delta, previous=old,
        )
    return info, outcome


def ingest(
    ws: Workspace, dataset: str, files: Sequence[str | Path], actor: str, progress: bool | None = None
) -> IngestReport:
    """Ingest ``files``, audited as ``ingest.intent`` → commit → ``ingest`` (counts only, never a value)."""
    check(ws, actor, "data.ingest", f"dataset {dataset}", audit_refusal=True)
    if isinstance(files, (str, os.PathLike)):   # one path, not a sequence of characters
        files = [files]
    ingest_load.check_inputs(files)   # a bad path is refused before an intent is written
    recovery.recover_pending(ws, actor)
    op = intents.begin(ws, actor, "ingest", dataset=dataset, files=[Path(f).name for f in files])
    result: dict = {}

    def in_transaction(con) -> None:
        # Last look before COMMIT: a log that became unwritable during a long ingest rolls it back.
        AuditLog(ws).preflight()
        table = datasets.get_policy(ws, dataset, con).table
        result.update(dataset=dataset, data_version=datasets.data_version(con, dataset) + 1,
                      rows_total=int(con.execute(f"SELECT count(*) FROM {datasets.quote_ident(table)}").fetchone()[0]))
        recovery.mark_applied(con, op.id, "ingest", result)

    try:
        report = ingest_load.ingest(ws, dataset, files, progress=progress, _after_insert=in_transaction)
    except BaseException:
        recovery.settle_now(op)
        raise
    _done(
        op, f"ingest into {dataset} committed (data version {report.data_version})",
        dataset=dataset, policy_hash=report.policy_hash, files=report.files,
        rows_in=report.rows_in, rows_out=report.rows_out, data_version=report.data_version,
        rows_total=result.get("rows_total"),
        detectors=dict(sorted(report.detectors.items())), dropped_columns=sorted(report.dropped_columns),
        key_id=report.key_id,
    )
    return report


def _done(op: intents.Intent, what: str, **fields) -> None:
    try:
        op.done(**fields)
    except AuditError as err:
        raise AuditError(
            f"{what}, but its completion record could not be written: {err.message}",
            "The change is in effect and its intent is recorded: repair the audit log, then run "
            "`pdbg audit recover WS` to record the outcome.",
        ) from None


def _audit(ws: Workspace, actor: str, action: str, what: str, **fields) -> None:
    try:
        AuditLog(ws).append(actor, action, **fields)
    except AuditError as err:
        raise AuditError(
            f"{what}, but its audit record could not be written: {err.message}",
            "The change is in effect but unaudited: run `pdbg audit verify WS`, repair the log, "
            "and record the action before relying on the workspace.",
        ) from None
    except Exception as exc:  # any other failure of the log is also a failure to audit
        raise AuditError(
            f"{what}, but its audit record could not be written ({type(exc).__name__})",
            "The change is in effect but unaudited: run `pdbg audit verify WS` and repair the log.",
        ) from None
