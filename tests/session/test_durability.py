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


def _tamper(ws, release_id):
    """The attack: edit the stored answer in state.sqlite (the notebook process can write it)."""
    con = sqlite3.connect(ws.state_path if hasattr(ws, "state_path") else ws.root / "state.sqlite")
    (text,) = con.execute("SELECT payload FROM release_cache WHERE payload LIKE ?", (f'%{release_id}%',)).fetchone()
    payload = json.loads(text)
    table = json.loads(payload["table"])
    table["data"][0]["n"] = table["data"][0]["n"] + 1000
    payload["table"] = json.dumps(table)
    con.execute("UPDATE release_cache SET payload = ? WHERE payload LIKE ?",
                (json.dumps(payload, sort_keys=True, separators=(",", ":")), f'%{release_id}%'))
    con.commit()
    con.close()


def test_edited_cache_entry_is_refused_everywhere(small, capsys):
    from pdbg.cli.main import main
    from pdbg.ledger.cache import ReleaseTampered
    from pdbg.notebook.postmortem import replay_case

    r = small.sql(Q, epsilon=0.1)
    again = small.sql(Q, epsilon=0.1)
    assert again.cached and again.df.equals(r.df)                # an honest hit is served
    assert main(["audit", "verify", str(small.ws.root), "--deep", "--json"]) in (0, None)
    capsys.readouterr()
    _tamper(small.ws, r.release_id)
    with pytest.raises(ReleaseTampered) as info:                 # the cache hit
        small.sql(Q, epsilon=0.1)
    assert r.release_id in info.value.message and "1000" not in info.value.message
    with pytest.raises(ReleaseTampered):                         # Session.replay
        small.replay(r.release_id)
    with pytest.raises(ReleaseTampered):                         # the postmortem replay
        replay_case(small)
    assert main(["audit", "verify", str(small.ws.root), "--deep"]) == 1     # verify --deep
    out = capsys.readouterr()
    assert r.release_id in out.out + out.err
    assert any(x["action"] == "release.mismatch" for x in AuditLog(small.ws).records())
    assert small.budget().spent_epsilon == pytest.approx(0.1, rel=1e-6)     # refusing cost nothing


def test_cache_hit_takes_no_write_lock(small):
    """Item 7: a hit must be served while another connection holds state.sqlite's write lock."""
    small.sql(Q, epsilon=0.1)
    con = sqlite3.connect(small.ws.root / "state.sqlite", timeout=0.1)
    con.execute("BEGIN IMMEDIATE")
    try:
        assert small.sql(Q, epsilon=0.1).cached
    finally:
        con.rollback()
        con.close()
    recs = [x for x in AuditLog(small.ws).records() if x["action"] == "query"]
    assert recs[-1]["cached"] is True and recs[-1]["result_digest"] == recs[-2]["result_digest"]
