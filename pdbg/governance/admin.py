"""Admin operations on datasets, each followed by an audit record.

Why here and not in ingest/: the ingest layer knows data, not people. An admin action
is only complete when the audit log says who did it; this module is the one place
that pairs the two.

Failure rule: the audit record is appended *after* the DuckDB transaction committed
(the log records facts, not intentions). If that append fails, the change stands but
is unaudited, so we raise :class:`AuditError` naming the data version, and the
operator must repair the audit log (``pdbg audit verify``) before anyone relies on it.
Identity and role: the CLI passes ``principals.os_actor()`` (``os:<login>``, the
workspace's data owner) or a named pdbg user; ``principals.check`` requires the
owner or an admin (``dataset.add``, ``data.ingest``) and audits refusals.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from pdbg.errors import AuditError, PdbgError, PolicyError
from pdbg.governance.access import follow_dataset_cap
from pdbg.governance.principals import check
from pdbg.ingest import datasets
from pdbg.ingest import load as ingest_load
from pdbg.ingest.datasets import DatasetInfo
from pdbg.ingest.load import IngestReport
from pdbg.ledger.audit import AuditLog
from pdbg.policy.model import load_policy
from pdbg.policy.workspace import Workspace


def add_dataset(ws: Workspace, policy_path: str | Path, actor: str, *, replace: bool = False) -> tuple[DatasetInfo, str]:
    """Validate and register a policy; audit ``dataset.add`` unless nothing changed."""
    policy = load_policy(policy_path)
    check(ws, actor, "dataset.add", f"dataset {policy.dataset}", audit_refusal=True)
    # A changed lifetime cap must reach the ledger, or a lowered cap goes unenforced. Refusals
    # (accounting changed after spending, a query in flight) come before anything changes.
    follow_dataset_cap(ws, policy, check_only=True)
    info, outcome = datasets.register(ws, policy, replace=replace)
    if outcome != "unchanged":
        _audit(
            ws, actor, "dataset.add",
            f"dataset {info.name} was {outcome} (data version {info.data_version})",
            dataset=info.name, table=info.table, policy_hash=info.policy_hash, key_id=info.key_id,
            outcome=outcome, data_version=info.data_version,
        )
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
    """Ingest ``files`` and audit it with counts only (never a value)."""
    check(ws, actor, "data.ingest", f"dataset {dataset}", audit_refusal=True)
    report = ingest_load.ingest(ws, dataset, files, progress=progress)
    _audit(
        ws, actor, "ingest",
        f"ingest into {dataset} committed (data version {report.data_version})",
        dataset=dataset, policy_hash=report.policy_hash, files=report.files,
        rows_in=report.rows_in, rows_out=report.rows_out, data_version=report.data_version,
        detectors=dict(sorted(report.detectors.items())), dropped_columns=sorted(report.dropped_columns),
        key_id=report.key_id,
    )
    return report


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
