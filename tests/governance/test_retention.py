"""Retention purge: windows, legal hold, dry run, idempotence, atomicity, receipt without content."""

from __future__ import annotations

from datetime import timedelta

import pytest

from pdbg.errors import AccessDenied, AuditError
from pdbg.governance import retention
from pdbg.ingest import datasets


def _fill(ws, table: str, now, ages_days: list[float | None], user="u-secret-token") -> None:
    with datasets.admin_connection(ws) as con:
        for age in ages_days:
            ts = None if age is None else (now - timedelta(days=age)).replace(tzinfo=None)
            con.execute(f'INSERT INTO "{table}" (ts, user_id, status) VALUES (?, ?, 500)', [ts, user])


def _count(ws, table: str) -> int:
    with datasets.admin_connection(ws) as con:
        return con.execute(f'SELECT count(*) FROM "{table}"').fetchone()[0]


@pytest.fixture
def filled(gov):
    gov.register("held", legal_hold=True)
    gov.register("short", retention_days=1)
    now = gov.clock.now()
    _fill(gov.ws, "events", now, [40, 31, 30.01, 29, 1, 0, None])
    _fill(gov.ws, "held", now, [400, 40, 1])
    _fill(gov.ws, "short", now, [2, 0.5])
    return gov


def test_purge_deletes_old_rows_respects_hold_and_bumps_version(filled):
    ws = filled.ws
    v_before = datasets.data_version(ws, "events")
    rec = retention.purge(ws, "root")
    by = {e.dataset: e for e in rec.datasets}
    assert by["events"].deleted == 3 and by["events"].rows_without_time == 1
    assert by["events"].cutoff == "2026-10-04T12:00:00.000000Z"
    assert by["events"].data_version_after == v_before + 1 == datasets.data_version(ws, "events")
    assert by["held"].skipped == "legal hold" and by["held"].deleted == 0
    assert by["short"].deleted == 1
    assert by["other"].deleted == 0 and by["other"].data_version_after == by["other"].data_version_before
    assert _count(ws, "events") == 4 and _count(ws, "held") == 3 and _count(ws, "short") == 1
    assert rec.total_deleted == 4 and not rec.dry_run


def test_receipt_is_audited_without_content(filled):
    retention.purge(filled.ws, "root")
    (r,) = [r for r in filled.records() if r["action"] == "retention.purge"]
    assert r["actor"] == "root" and r["total_deleted"] == 4 and r["dry_run"] is False
    assert {d["dataset"] for d in r["datasets"]} == {"events", "held", "other", "short"}
    assert "u-secret-token" not in filled.ws.audit_path.read_text()


def test_dry_run_changes_nothing(filled):
    ws = filled.ws
    v = datasets.data_version(ws, "events")
    rec = retention.purge(ws, "root", dry_run=True)
    assert rec.dry_run and rec.total_deleted == 4
    assert _count(ws, "events") == 7 and datasets.data_version(ws, "events") == v
    assert [r["dry_run"] for r in filled.records() if r["action"] == "retention.purge"] == [True]


def test_purge_is_idempotent(filled):
    ws = filled.ws
    retention.purge(ws, "root")
    v = datasets.data_version(ws, "events")
    again = retention.purge(ws, "root")
    assert again.total_deleted == 0 and datasets.data_version(ws, "events") == v
    filled.clock.advance(days=2)
    assert {e.dataset: e.deleted for e in retention.purge(ws, "root").datasets}["events"] == 1


def test_failure_midway_rolls_everything_back(filled, monkeypatch):
    ws = filled.ws
    versions = {n: datasets.data_version(ws, n) for n in ("events", "short")}
    real = datasets.bump_version

    def crash_on_short(con, name):
        if name == "short":
            raise RuntimeError("simulated crash")
        return real(con, name)

    monkeypatch.setattr(datasets, "bump_version", crash_on_short)
    with pytest.raises(RuntimeError):
        retention.purge(ws, "root")
    monkeypatch.setattr(datasets, "bump_version", real)
    assert _count(ws, "events") == 7 and _count(ws, "short") == 2
    assert {n: datasets.data_version(ws, n) for n in versions} == versions
    assert retention.purge(ws, "root").total_deleted == 4     # and a rerun completes the job


def test_audit_failure_deletes_nothing(filled, monkeypatch):
    from pdbg.ledger.audit import AuditLog

    def fail(self, *a, **k):
        raise AuditError("disk full")

    monkeypatch.setattr(AuditLog, "append", fail)
    with pytest.raises(AuditError):
        retention.purge(filled.ws, "root")
    assert _count(filled.ws, "events") == 7


def test_purge_needs_admin_or_owner(filled):
    with pytest.raises(AccessDenied, match="needs role admin"):
        retention.purge(filled.ws, "bob")
    assert retention.purge(filled.ws, filled.owner).total_deleted == 4
