"""Prove that the budget ledger and the audit log tell the same story.

Why: the ledger decides what may still be spent, the audit log is what people can
verify. If they disagree, either a release was shown without being charged or budget
was charged for nothing; ``pdbg audit reconcile WS`` must find both.

Audit record contract (the session writes exactly this for every release it charges)::

    action      "query" (an answer) or "query.failed" (a failure after data access)
    charged     true                         (false, or absent, for cache hits and refusals)
    reservation "r-…"                        the ledger reservation id (Reservation.id)
    accounts    ["grant:…", "dataset:…"]     every account the reservation holds
    cost_units  {"privacy": int, "delta": int}   exact units (pdbg.dp.accounting.UNIT);
                                             privacy is ρ for zcdp accounts, ε for pure

``Reservation.audit_fields()`` returns exactly these four fields. The record is appended
*before* the ledger commit, so at rest every committed reservation has one such record
and every such record has a committed reservation. Reconciliation checks, per
reservation, that state, accounts and units agree, and per account that the committed
units equal the units summed from the audit log (and that each account's running
totals equal the sums of its reservation rows). A reservation that is still
``reserved`` but already audited is in flight (or its holder died: run recover);
it is reported as pending and makes the report not ok.

Data (issue 13): the registry in data.duckdb must agree with the audit log's record of
every data change. Per dataset, the completion records (``dataset.add``, ``ingest``,
``retention.purge``, and ``<action>.settled`` with outcome ``done``) carry the resulting
``data_version`` and ``rows_total``; the newest (highest version) must equal the
registry's version and the table's row count. A mismatch is an unaudited change (or a
receipt for one that never happened). An intent without completion is pending (run
``pdbg audit recover WS``). A dataset with no audited change at all (registered below
the admin layer, e.g. by old tooling) is only noted.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass

from pdbg.ledger.budget import CHARGING_ACTIONS, Ledger
from pdbg.policy.workspace import Workspace


@dataclass(frozen=True)
class ReconcileReport:
    ok: bool
    per_account: dict[str, tuple[int, int]]  # account -> (ledger privacy units, audit privacy units)
    per_account_delta: dict[str, tuple[int, int]]  # account -> (ledger delta units, audit delta units)
    message: str
    problems: tuple[str, ...] = ()
    pending: tuple[str, ...] = ()
    charged_records: int = 0
    committed_reservations: int = 0
    notes: tuple[str, ...] = ()

    def to_dict(self) -> dict:
        return {
            "ok": self.ok,
            "message": self.message,
            "per_account": {k: {"ledger_units": v[0], "audit_units": v[1]} for k, v in self.per_account.items()},
            "per_account_delta": {
                k: {"ledger_units": v[0], "audit_units": v[1]} for k, v in self.per_account_delta.items()
            },
            "problems": list(self.problems),
            "pending": list(self.pending),
            "charged_records": self.charged_records,
            "committed_reservations": self.committed_reservations,
            "notes": list(self.notes),
        }


def reconcile(ws: Workspace, *, audit_records: Iterable[dict] | None = None) -> ReconcileReport:
    """Compare committed ledger charges with the charged ``query`` records of the audit log."""
    if audit_records is None:
        from pdbg.ledger.audit import AuditLog

        audit_records = AuditLog(ws).records()
    audit_records = list(audit_records)
    with Ledger(ws) as ledger:
        reservations = {r["id"]: r for r in ledger.reservations()}
        ledger_units = ledger.committed_units()
        totals = ledger.row_totals()

    problems: list[str] = []
    pending: list[str] = []
    audit_p: dict[str, int] = defaultdict(int)
    audit_d: dict[str, int] = defaultdict(int)
    seen: dict[str, int] = defaultdict(int)
    pend_p: dict[str, int] = defaultdict(int)
    pend_d: dict[str, int] = defaultdict(int)
    n_charged = 0
    for rec in audit_records:
        if rec.get("action") not in CHARGING_ACTIONS or rec.get("charged") is not True:
            continue
        n_charged += 1
        where = f"audit record seq {rec.get('seq')}"
        rid, accounts, units = rec.get("reservation"), rec.get("accounts"), rec.get("cost_units")
        if not isinstance(rid, str) or not isinstance(accounts, list) or not _valid_units(units):
            problems.append(f"{where}: charged query record lacks reservation/accounts/cost_units")
            continue
        seen[rid] += 1
        for a in accounts:
            audit_p[a] += units["privacy"]
            audit_d[a] += units["delta"]
        res = reservations.get(rid)
        if res is None:
            problems.append(f"{where}: reservation {rid} is not in the ledger (charge never recorded)")
            continue
        if res["state"] == "released":
            problems.append(f"{where}: reservation {rid} was released although the release was audited as charged")
        elif res["state"] == "reserved":
            pending.append(rid)
            for a in res["accounts"]:  # explained by the pending commit, not a disagreement
                pend_p[a] += res["privacy_units"]
                pend_d[a] += res["delta_units"]
        if sorted(res["accounts"]) != sorted(accounts):
            problems.append(f"{where}: reservation {rid} holds accounts {sorted(res['accounts'])}, audit says {sorted(accounts)}")
        if (res["privacy_units"], res["delta_units"]) != (units["privacy"], units["delta"]):
            problems.append(f"{where}: reservation {rid} units differ between ledger and audit")
    for rid, n in seen.items():
        if n > 1:
            problems.append(f"reservation {rid} is charged by {n} audit records")
    for a, t in totals.items():
        if (t["t_c"], t["t_r"], t["t_dc"], t["t_dr"]) != (t["c"], t["r"], t["dc"], t["dr"]):
            problems.append(f"account {a}: running totals differ from its reservation rows")
    committed = [r for r in reservations.values() if r["state"] == "committed"]
    for r in committed:
        if r["id"] not in seen:
            problems.append(f"reservation {r['id']} is committed but has no charged query audit record")

    per_account: dict[str, tuple[int, int]] = {}
    per_account_delta: dict[str, tuple[int, int]] = {}
    for a in sorted(set(ledger_units) | set(audit_p)):
        lp, ld = ledger_units.get(a, (0, 0))
        per_account[a] = (lp, audit_p.get(a, 0))
        per_account_delta[a] = (ld, audit_d.get(a, 0))
        if lp + pend_p[a] != audit_p.get(a, 0) or ld + pend_d[a] != audit_d.get(a, 0):
            problems.append(f"account {a}: ledger and audit log totals differ")

    data_problems, data_pending, notes = _check_data(ws, audit_records)
    problems += data_problems
    pending += data_pending
    ok = not problems and not pending
    if ok:
        message = (
            f"ledger matches the audit log: {len(committed)} committed charges across {len(per_account)} accounts"
        )
    elif problems:
        message = f"ledger and audit log disagree: {len(problems)} problem(s); first: {problems[0]}"
    else:
        message = (
            f"{len(pending)} audited charge(s) or state change(s) are not yet settled (in flight, or the process "
            "died): run again when idle, or run `pdbg audit recover WS`"
        )
    return ReconcileReport(
        ok=ok,
        per_account=per_account,
        per_account_delta=per_account_delta,
        message=message,
        problems=tuple(problems),
        pending=tuple(pending),
        charged_records=n_charged,
        committed_reservations=len(committed),
        notes=tuple(notes),
    )


_DATA_ACTIONS = ("dataset.add", "ingest", "retention.purge")


def _expected_data(records: list[dict]) -> dict[str, tuple[int, int | None, int]]:
    """dataset -> (data version, rows or None, seq) from the newest audited data change."""
    out: dict[str, tuple[int, int | None, int]] = {}

    def note(name, version, rows, seq, carry: bool) -> None:
        if not isinstance(name, str) or type(version) is not int:
            return
        prev = out.get(name)
        if prev is not None and prev[0] > version:
            return
        if rows is None and carry and prev is not None:
            rows = prev[1]
        out[name] = (version, rows if type(rows) is int else None, seq)

    for r in records:
        action = r.get("action")
        if action not in _DATA_ACTIONS and not (str(action).endswith(".settled") and r.get("outcome") == "done"):
            continue
        kind = r.get("intent_action", action)
        if kind == "retention.purge":
            if r.get("dry_run"):
                continue
            for e in r.get("datasets") or []:
                if isinstance(e, dict):
                    note(e.get("dataset"), e.get("data_version_after"), e.get("rows_total"), r.get("seq"), True)
        elif kind in ("dataset.add", "ingest"):
            note(r.get("dataset"), r.get("data_version"), r.get("rows_total"), r.get("seq"), kind == "dataset.add")
    return out


def _check_data(ws: Workspace, records: list[dict]) -> tuple[list[str], list[str], list[str]]:
    """(problems, pending, notes): the registry against the audited data changes."""
    from pdbg.ledger.audit import intents

    problems: list[str] = []
    notes: list[str] = []
    pending = [f"intent {r['intent']} ({r.get('action')}, seq {r.get('seq')}) has no completion"
               for r in intents.unfinished(records)]
    if not ws.data_path.exists():
        return problems, pending, notes
    try:
        from pdbg.ingest import datasets

        infos = datasets.list_datasets(ws)
    except Exception as exc:  # noqa: BLE001 - busy or unreadable: say so, do not guess
        notes.append(f"data.duckdb could not be read ({type(exc).__name__}); data versions not checked")
        return problems, pending, notes
    expected = _expected_data(records)
    for info in infos:
        exp = expected.get(info.name)
        if exp is None:
            notes.append(f"dataset {info.name}: no audited data change in the log (registered outside pdbg admin?)")
            continue
        version, rows, seq = exp
        if info.data_version != version:
            problems.append(f"dataset {info.name}: data version {info.data_version} in data.duckdb, but the newest "
                            f"audited change (seq {seq}) left version {version} (an unaudited change, or a record "
                            "of one that never happened)")
        elif rows is not None and info.rows != rows:
            problems.append(f"dataset {info.name}: {info.rows} rows in data.duckdb, but the newest audited change "
                            f"(seq {seq}) left {rows}")
    return problems, pending, notes


def _valid_units(units) -> bool:
    return (
        isinstance(units, dict)
        and all(isinstance(units.get(k), int) and not isinstance(units.get(k), bool) for k in ("privacy", "delta"))
        and units["privacy"] >= 0
        and units["delta"] >= 0
    )


__all__ = ["ReconcileReport", "reconcile"]
