"""Issue 13, the release path: a durable audit record keeps its charge whatever the
mirror does afterwards, and a cached answer is checked against the digest its
``query`` record bound (an edited cache entry is refused everywhere)."""

from __future__ import annotations

import json
import os
import shutil
import sqlite3

import pytest

from pdbg.demo.build import INVESTIGATOR, build_demo
from pdbg.errors import AuditError
from pdbg.ledger.audit import AuditLog, keys as keymod
from pdbg.ledger.reconcile import reconcile
from pdbg.session import Session

Q = "SELECT service, COUNT(*) AS n FROM requests WHERE status >= 500 GROUP BY service"


@pytest.fixture
def small(tmp_path, open_granted_case, monkeypatch):
    monkeypatch.delenv("PDBG_AUDIT_MIRROR", raising=False)
    demo = build_demo(tmp_path / "ws", n_rows=2000, seed=3)
    case = open_granted_case(demo.ws, "T-DUR", investigator=INVESTIGATOR, approver="bob", epsilon=2.0)
    return Session(demo.ws, user=INVESTIGATOR, case=case)


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="needs /dev/full")
def test_mirror_full_after_durable_record_keeps_the_charge(small):
    path = keymod.mirror_checkpoints_path(small.ws)
    saved = path.read_bytes()
    path.unlink()
    os.symlink("/dev/full", path)
    r = small.sql(Q, epsilon=0.1)                    # before: AuditError, charge released, record kept
    assert not r.cached and len(r.df)
    assert small.budget().spent_epsilon == pytest.approx(0.1, rel=1e-6)
    rep = reconcile(small.ws)
    assert rep.ok, rep.message
    path.unlink()
    path.write_bytes(saved)
    small.sql("SELECT COUNT(*) AS n FROM requests", epsilon=0.1)
    assert reconcile(small.ws).ok


def test_unreachable_mirror_releases_nothing_and_charges_nothing(small, tmp_path, monkeypatch):
    blocker = tmp_path / "blocker"
    blocker.write_text("")
    monkeypatch.setenv("PDBG_AUDIT_MIRROR", str(blocker))
    with pytest.raises(AuditError):
        small.sql(Q, epsilon=0.1)
    monkeypatch.delenv("PDBG_AUDIT_MIRROR")
    assert small.budget().spent_epsilon == 0
    assert reconcile(small.ws).ok
