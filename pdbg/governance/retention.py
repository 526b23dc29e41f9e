"""Retention: delete rows older than each dataset's window, with a receipt and no content.

Following Loki's model, every dataset has its own window (``retention_days``, at
least one day by policy) and may be under ``legal_hold``, which suspends deletion.
A purge is audited as intent → effect → completion (DESIGN.md invariant 12): the
appender is preflighted and ``retention.purge.intent`` appended *before* anything is
deleted; the deletes, the data-version bumps (so release-cache entries for old data
stop matching) and a row in ``_pdbg_applied`` carrying the receipt happen in **one
DuckDB transaction** covering every dataset; the receipt (``retention.purge``, with
``intent``) is appended after ``COMMIT``. So a crash before COMMIT leaves the data as it
was and an intent that recovery settles as ``not-done``; a crash after it leaves the
deletion and an intent that recovery settles as ``done`` with the receipt read back
from ``_pdbg_applied``. A receipt never describes a deletion that did not happen.
Running purge again after success deletes nothing and still succeeds (idempotent).

The receipt holds counts, cutoffs, data versions and resulting row counts, never a row
or a value. Rows whose time is NULL cannot be aged; they are counted in the receipt
(``rows_without_time``) so that the data owner notices them. A dry run changes nothing
and is audited by one ``retention.purge`` record (``dry_run: true``) after its rollback.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta

from pdbg import clock
from pdbg.errors import AuditError, WorkspaceError
from pdbg.governance.principals import check
from pdbg.ledger.audit import AuditLog
from pdbg.policy.workspace import Workspace


@dataclass(frozen=True)
class PurgeEntry:
    dataset: str
    table: str
    time_column: str | None
    retention_days: int
    cutoff: str | None
    deleted: int                    # rows deleted (or that would be, in a dry run)
    legal_hold: bool
    skipped: str | None             # why nothing was considered, if so
    data_version_before: int | None
    data_version_after: int | None
    rows_without_time: int = 0
    rows_total: int | None = None   # rows in the table after the purge (None: no table)


@dataclass(frozen=True)
class PurgeReceipt:
    at: str
    dry_run: bool
    datasets: tuple[PurgeEntry, ...] = field(default_factory=tuple)

    @property
    def total_deleted(self) -> int:
        return sum(e.deleted for e in self.datasets)

    def to_dict(self) -> dict:
        return {"at": self.at, "dry_run": self.dry_run, "total_deleted": self.total_deleted,
                "datasets": [asdict(e) for e in self.datasets]}


def _registry():
    from pdbg.ingest import datasets

    return datasets


def _cutoff_literal(con, table: str, column: str, cutoff: datetime) -> tuple[str, object] | None:
    """SQL cast and parameter comparing ``column`` to the UTC cutoff, by the column's type."""
    row = con.execute(
        "SELECT data_type FROM information_schema.columns WHERE table_name = ? AND column_name = ?",
        [table, column],
    ).fetchone()
    if row is None:
        return None
    dtype = str(row[0]).upper()
    if "TIME ZONE" in dtype or dtype == "TIMESTAMPTZ":
        return "CAST(? AS TIMESTAMPTZ)", clock.iso(cutoff).replace("Z", "+00:00")
    if dtype == "DATE":
        return "CAST(? AS DATE)", cutoff.date().isoformat()
    # naive TIMESTAMP columns hold UTC by ingest convention
    return "CAST(? AS TIMESTAMP)", clock.iso(cutoff).removesuffix("Z")


def _table_exists(con, table: str) -> bool:
    return con.execute("SELECT count(*) FROM information_schema.tables WHERE table_name = ?",
                       [table]).fetchone()[0] > 0


def _purge_one(con, reg, policy, now: datetime, dry_run: bool) -> PurgeEntry:
    name, table, tcol = policy.dataset, policy.table, policy.time_col
    before = reg.data_version(con, name)

    def entry(**kw) -> PurgeEntry:
        base = dict(dataset=name, table=table, time_column=tcol, retention_days=policy.retention_days, cutoff=None,
                    deleted=0, legal_hold=policy.legal_hold, skipped=None, data_version_before=before,
                    data_version_after=before)
        base.update(kw)
        return PurgeEntry(**base)

    if policy.legal_hold:
        return entry(skipped="legal hold")
    if tcol is None:
        return entry(skipped="no time column in the policy")
    if not _table_exists(con, table):
        return entry(skipped="table not created yet")
    cutoff = now - timedelta(days=policy.retention_days)
    cmp = _cutoff_literal(con, table, tcol, cutoff)
    if cmp is None:
        return entry(skipped=f"time column {tcol} missing from the table")
    cast, param = cmp
    qt, qc = reg.quote_ident(table), reg.quote_ident(tcol)
    where = f"{qc} < {cast}"
    n = con.execute(f"SELECT count(*) FROM {qt} WHERE {where}", [param]).fetchone()[0]
    nulls = con.execute(f"SELECT count(*) FROM {qt} WHERE {qc} IS NULL").fetchone()[0]
    after = before
    if n and not dry_run:
        con.execute(f"DELETE FROM {qt} WHERE {where}", [param])
        after = reg.bump_version(con, name)
    total = con.execute(f"SELECT count(*) FROM {qt}").fetchone()[0]
    return entry(cutoff=clock.iso(cutoff), deleted=int(n), data_version_after=after, rows_without_time=int(nulls),
                 rows_total=int(total))


def purge(ws: Workspace, actor: str, dry_run: bool = False) -> PurgeReceipt:
    """Apply every dataset's retention window; returns (and audits) a receipt without content.

    ``actor`` must be an admin or the data owner. A dry run computes the same
    receipt and rolls back; it is audited too (``dry_run: true``), since counting
    old rows is itself a look at the data. Policies (retention window, legal hold)
    are read inside the transaction, so a hold set concurrently is never missed.
    """
    import duckdb

    check(ws, actor, "retention.purge", "all datasets", audit_refusal=True)
    from pdbg.governance import recovery
    from pdbg.ledger.audit import intents

    reg = _registry()
    now = clock.now()
    op = None
    if not dry_run:
        recovery.recover_pending(ws, actor)
        op = intents.begin(ws, actor, "retention.purge", at=clock.iso(now))
    try:
        with reg.admin_connection(ws) as con:
            con.execute("BEGIN TRANSACTION")
            try:
                names = [r[0] for r in con.execute(f"SELECT name FROM {reg.REGISTRY} ORDER BY name").fetchall()]
                policies = [reg.get_policy(ws, n, con=con) for n in names]
                entries = tuple(_purge_one(con, reg, p, now, dry_run) for p in policies)
                receipt = PurgeReceipt(at=clock.iso(now), dry_run=dry_run, datasets=entries)
                if op is not None:
                    AuditLog(ws).preflight()     # last look before COMMIT: the receipt must be writable
                    recovery.mark_applied(con, op.id, "retention.purge", receipt.to_dict())
            except duckdb.Error as exc:
                con.execute("ROLLBACK")
                # engine messages may quote values: only the exception class crosses the boundary
                raise WorkspaceError(f"retention purge failed in the data engine ({type(exc).__name__}); "
                                     "nothing was deleted", "Check the dataset tables, then retry.") from None
            except BaseException:
                con.execute("ROLLBACK")
                raise
            con.execute("ROLLBACK" if dry_run else "COMMIT")
    except BaseException:
        if op is not None:
            recovery.settle_now(op)
        raise
    if op is None:
        AuditLog(ws).append(actor, "retention.purge", **receipt.to_dict())
    else:
        try:
            op.done(**receipt.to_dict())
        except AuditError as err:
            raise AuditError(f"the purge committed ({receipt.total_deleted} rows deleted) but its receipt could "
                             f"not be written: {err.message}",
                             "Repair the audit log, then run `pdbg audit recover WS`: it records the receipt "
                             "from the data.") from None
    return receipt
