"""Settle unfinished state changes from the actual state (DESIGN.md invariant 12).

An intent record without its completion means the process making the change died (or
could not write the completion). Whether the change happened is read from where the
change lives, never guessed:

* ``ingest`` / ``retention.purge``: the effect's own DuckDB transaction inserts the intent
  id into ``_pdbg_applied`` in data.duckdb (with the resulting data versions and row
  counts), so the row exists exactly when the data changed;
* ``dataset.add``: the registry holds the intent's policy digest, or not;
* ``access.approve`` / ``access.break_glass``: the grant id named by the intent exists;
  ``access.deny``: the request is denied by the intent's actor; ``access.revoke``: the
  grant is revoked by the intent's actor.

Each settlement appends ``<action>.settled`` (``outcome`` done|not-done, ``how``
recovered, plus what was found). :func:`recover` also settles dead query reservations
(``Ledger.recover``), so ``pdbg audit recover WS`` leaves nothing half-done.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

from pdbg.ledger.audit import intents
from pdbg.policy.workspace import Workspace

APPLIED = "_pdbg_applied"
_APPLIED_DDL = (f"CREATE TABLE IF NOT EXISTS {APPLIED} (intent VARCHAR PRIMARY KEY, action VARCHAR NOT NULL, "
                "result VARCHAR NOT NULL)")


def mark_applied(con, intent_id: str, action: str, result: dict) -> None:
    """Inside the effect's DuckDB transaction: record that this intent's change is in it."""
    con.execute(_APPLIED_DDL)
    con.execute(f"INSERT INTO {APPLIED} VALUES (?, ?, ?)", [intent_id, action, json.dumps(result, sort_keys=True)])


def applied(ws: Workspace, intent_id: str) -> dict | None:
    """The result stored by :func:`mark_applied`, or None when that transaction never committed."""
    from pdbg.ingest import datasets

    if not ws.data_path.exists():
        return None
    with datasets.reader_connection(ws) as con:
        n = con.execute("SELECT count(*) FROM information_schema.tables WHERE table_name = ?", [APPLIED]).fetchone()[0]
        if not n:
            return None
        row = con.execute(f"SELECT result FROM {APPLIED} WHERE intent = ?", [intent_id]).fetchone()
    return json.loads(row[0]) if row else None


def dataset_state(ws: Workspace, name: str) -> dict | None:
    """{data_version, rows_total, policy_hash} of a registered dataset, or None."""
    from pdbg.ingest import datasets

    if not ws.data_path.exists():
        return None
    with datasets.reader_connection(ws) as con:
        info = next((d for d in datasets.registered(con) if d.name == name), None)
        if info is None:
            return None
        rows = con.execute(f"SELECT count(*) FROM {datasets.quote_ident(info.table)}").fetchone()[0]
    return {"data_version": info.data_version, "rows_total": int(rows), "policy_hash": info.policy_hash}


# -- settlers: intent record -> (outcome, evidence) ---------------------------------

def _by_marker(ws, rec):
    result = applied(ws, rec["intent"])
    return ("done", result) if result is not None else ("not-done", {})


def _dataset_add(ws, rec):
    st = dataset_state(ws, rec.get("dataset", ""))
    if st is not None and st["policy_hash"] == rec.get("policy_hash"):
        return "done", {"dataset": rec.get("dataset"), "data_version": st["data_version"],
                        "rows_total": st["rows_total"], "policy_hash": st["policy_hash"]}
    return "not-done", {"dataset": rec.get("dataset")}


def _grant_row(ws, grant_id):
    from pdbg.governance.init import gov_db

    with gov_db(ws) as conn:
        return conn.execute("SELECT * FROM gov_grants WHERE id = ?", (grant_id,)).fetchone()


def _grant_exists(ws, rec):
    row = _grant_row(ws, rec.get("grant"))
    return ("done", {"grant": rec.get("grant")}) if row is not None else ("not-done", {"grant": rec.get("grant")})


def _revoked(ws, rec):
    row = _grant_row(ws, rec.get("grant"))
    ok = row is not None and row["revoked"] and row["revoked_by"] == rec.get("actor")
    return ("done" if ok else "not-done"), {"grant": rec.get("grant")}


def _denied(ws, rec):
    from pdbg.governance.init import gov_db

    with gov_db(ws) as conn:
        row = conn.execute("SELECT status, decided_by FROM gov_requests WHERE id = ?", (rec.get("request"),)).fetchone()
    ok = row is not None and row["status"] == "denied" and row["decided_by"] == rec.get("actor")
    return ("done" if ok else "not-done"), {"request": rec.get("request")}


SETTLERS = {
    "ingest": _by_marker,
    "retention.purge": _by_marker,
    "dataset.add": _dataset_add,
    "access.approve": _grant_exists,
    "access.break_glass": _grant_exists,
    "access.revoke": _revoked,
    "access.deny": _denied,
}


def outcome_of(ws: Workspace, intent_record: dict) -> tuple[str, dict]:
    action = str(intent_record.get("action", "")).removesuffix(".intent")
    settler = SETTLERS.get(action)
    if settler is None:
        return "not-done", {"note": "no settler for this action; nothing was changed by pdbg's own code"}
    return settler(ws, intent_record)


def settle_now(op: intents.Intent, how: str = "failed") -> dict:
    """Settle a running intent whose effect raised: read the state, record what happened."""
    outcome, evidence = outcome_of(op.ws, op.record)
    return op.settle(outcome, how=how, **evidence)


@dataclass
class RecoveryReport:
    settled: list[dict] = field(default_factory=list)     # {intent, action, outcome}
    running: list[str] = field(default_factory=list)      # intents whose process is alive
    markers_dropped: int = 0                              # markers whose intent was never recorded
    budget: dict = field(default_factory=dict)

    @property
    def changed(self) -> bool:
        return bool(self.settled or self.markers_dropped or self.budget.get("committed") or self.budget.get("released"))

    def to_dict(self) -> dict:
        return {"settled": self.settled, "running": self.running, "markers_dropped": self.markers_dropped,
                "budget": self.budget}


def recover_pending(ws: Workspace, actor: str) -> RecoveryReport:
    """Cheap path for every session/admin open: only when a pending marker exists."""
    if not intents.has_pending(ws):
        return RecoveryReport()
    return _settle(ws, actor, full=False)


def recover(ws: Workspace, actor: str) -> RecoveryReport:
    """Settle every unfinished intent in the log (not only those with a marker) and every
    dead query reservation. ``pdbg audit recover WS``."""
    from pdbg.ledger.budget import Ledger

    report = _settle(ws, actor, full=True)
    with Ledger(ws) as ledger:
        r = ledger.recover(actor=actor)
    report.budget = {"committed": list(r.committed), "released": list(r.released)}
    return report


def _settle(ws: Workspace, actor: str, *, full: bool) -> RecoveryReport:
    from pdbg.ledger.audit import AuditLog

    report = RecoveryReport()
    stale = intents.stale_markers(ws)
    try:
        if not stale and not full:
            return report
        open_ = {r["intent"]: r for r in intents.unfinished(AuditLog(ws).records())}
        live = intents.running(ws)
        report.running = sorted(i for i in open_ if i in live)
        stale_ids = {iid for iid, _, _ in stale}
        todo = [r for iid, r in open_.items() if iid in stale_ids or (full and iid not in live)]
        for rec in todo:
            outcome, evidence = outcome_of(ws, rec)
            action = str(rec["action"]).removesuffix(".intent")
            AuditLog(ws).append(actor, f"{action}.settled", severity="warning", intent=rec["intent"], outcome=outcome,
                                how="recovered", intent_action=action, intent_seq=rec.get("seq"), **evidence)
            report.settled.append({"intent": rec["intent"], "action": action, "outcome": outcome})
        for iid, path, fd in stale:
            if iid not in open_:
                report.markers_dropped += 1
            intents.drop_marker(path, fd)
        stale = []
    finally:
        for _, _, fd in stale:   # an AuditError above: keep the markers for the next try
            import os

            os.close(fd)
    return report


__all__ = ["APPLIED", "RecoveryReport", "SETTLERS", "applied", "dataset_state", "mark_applied", "outcome_of",
           "recover", "recover_pending", "settle_now"]
