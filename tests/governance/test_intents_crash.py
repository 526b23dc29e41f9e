"""Intent → effect → completion for every state change, proven with SIGKILL (issue 13 item 1).

A real child process makes a change and is killed at the point between intent and
effect, or between effect and completion (``AuditLog.append`` is wrapped in the child
to die right after the first record of the change, or right before its completion).
Then recovery (the cheap path every session/admin open runs) settles the intent from
the actual state, and ``reconcile(ws).ok`` holds. The invariant checked each time: the
log never holds a completion for a change that did not happen, and every change that
happened has exactly one record saying so.

Before the change these fail: ingest committed before it audited (no record for a
committed ingest), purge and grant changes audited before COMMIT (a receipt for a
deletion / grant that never happened), and nothing settled anything.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap

import pytest
import yaml

from pdbg.governance import access, admin, recovery
from pdbg.ingest import datasets
from pdbg.ledger.audit import AuditLog
from pdbg.ledger.reconcile import reconcile

from .conftest import policy_dict

CHILD = """
import os, signal, sys
from pdbg.ledger.audit import AuditLog
from pdbg.policy.workspace import Workspace
ws, op, when, prefix, arg = Workspace(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4], sys.argv[5]
import datetime
from pdbg import clock
_t = datetime.datetime.fromisoformat(sys.argv[6])
clock.now = lambda: _t          # the parent's frozen clock
real = AuditLog.append
def append(self, actor, action, **kw):
    if when == "before" and action == prefix:
        os.kill(os.getpid(), signal.SIGKILL)
    rec = real(self, actor, action, **kw)
    if when == "after" and action.startswith(prefix):
        os.kill(os.getpid(), signal.SIGKILL)
    return rec
AuditLog.append = append
if op == "ingest":
    from pdbg.governance import admin
    admin.ingest(ws, "events", [arg], "root")
elif op == "purge":
    from pdbg.governance import retention
    retention.purge(ws, "root")
elif op == "replace":
    from pdbg.governance import admin
    admin.add_dataset(ws, arg, "root", replace=True)
elif op == "approve":
    from pdbg.governance import access
    access.approve(ws, arg, "bob")
elif op == "revoke":
    from pdbg.governance import access
    access.revoke(ws, arg, "root")
print("not killed", flush=True)
"""


def _env() -> dict:
    env = {k: v for k, v in os.environ.items() if k != "PDBG_AUDIT_MIRROR"}
    return env


def _rows(path, ts_list):
    with open(path, "w") as f:
        for i, ts in enumerate(ts_list):
            f.write(json.dumps({"ts": ts, "user_id": f"u{i}", "status": 200 + i}) + "\n")
    return path


@pytest.fixture
def prepared(gov, tmp_path):
    """events with audited data: 3 rows far in the past (purgeable), 3 in the future."""
    pol = tmp_path / "events.policy.yaml"
    pol.write_text(yaml.safe_dump(policy_dict("events")))
    admin.add_dataset(gov.ws, pol, "root", replace=True)       # audited, so reconcile knows the dataset
    admin.ingest(gov.ws, "events", [_rows(tmp_path / "a.jsonl", ["2000-01-01T00:00:00"] * 3
                                          + ["2100-01-01T00:00:00"] * 3)], "root")
    return gov


def _state(ws):
    st = recovery.dataset_state(ws, "events")
    return st["data_version"], st["rows_total"], st["policy_hash"]


def _run(ws, op, when, prefix, arg=""):
    from pdbg import clock

    p = subprocess.run([sys.executable, "-c", textwrap.dedent(CHILD), str(ws.root), op, when, prefix, str(arg),
                        clock.now().isoformat()],
                       capture_output=True, text=True, env=_env(), timeout=120)
    assert p.returncode == -signal.SIGKILL, (p.returncode, p.stdout, p.stderr[-3000:])


CASES = [  # op, when, action prefix, did the effect happen?
    ("ingest", "after", "ingest.intent", False),
    ("ingest", "before", "ingest", True),
    ("purge", "after", "retention.purge", False),
    ("purge", "before", "retention.purge", True),
    ("replace", "after", "dataset.add", False),
    ("replace", "before", "dataset.add", True),
    ("approve", "after", "access.approve", False),
    ("approve", "before", "access.approve", True),
    ("revoke", "after", "access.revoke", False),
    ("revoke", "before", "access.revoke", True),
]


@pytest.mark.parametrize("op, when, prefix, happened", CASES, ids=[f"{c[0]}-{c[1]}-{c[2]}" for c in CASES])
def test_killed_mid_change_is_settled_by_state(prepared, tmp_path, op, when, prefix, happened):
    ws = prepared.ws
    action = {"ingest": "ingest", "purge": "retention.purge", "replace": "dataset.add",
              "approve": "access.approve", "revoke": "access.revoke"}[op]
    arg = ""
    if op == "ingest":
        arg = _rows(tmp_path / "b.jsonl", ["2100-01-02T00:00:00"] * 4)
    elif op == "replace":
        arg = tmp_path / "events2.policy.yaml"
        arg.write_text(yaml.safe_dump(policy_dict("events", retention_days=60)))
    elif op == "approve":
        arg = access.request(ws, "alice", "INC-1", "events", 1.0, 4, "why").id
    elif op == "revoke":
        arg = access.approve(ws, access.request(ws, "alice", "INC-1", "events", 1.0, 4, "why").id, "bob").id
    before = _state(ws)
    n0 = len(AuditLog(ws).records())
    _run(ws, op, when, prefix, arg)
    after = _state(ws)
    new = AuditLog(ws).records()[n0:]
    # never a completion for a change that did not happen (the old purge/grant receipt-before-commit)
    completions = [r for r in new if r["action"] == action]
    assert completions == [], completions

    rep = recovery.recover_pending(ws, "root")                  # what every session / admin open runs
    assert [s["outcome"] for s in rep.settled] == ["done" if happened else "not-done"]
    settled = [r for r in AuditLog(ws).records()[n0:] if r["action"] == f"{action}.settled"]
    assert len(settled) == 1 and settled[0]["how"] == "recovered"
    if op in ("ingest", "purge", "replace"):
        assert (after != before) == happened
    elif op == "approve":
        assert (access.get_request(ws, arg).status == "approved") == happened
    else:
        assert (access.get_grant(ws, arg).revoked is not None) == happened
    assert recovery.recover(ws, "root").settled == []            # nothing left, settled once
    rep = reconcile(ws)
    assert rep.ok, rep.message
    assert not list((ws.audit_dir / "pending").iterdir())


def test_unaudited_ingest_is_caught_by_reconcile(prepared, tmp_path):
    from pdbg.ingest import load

    assert reconcile(prepared.ws).ok
    load.ingest(prepared.ws, "events", [_rows(tmp_path / "c.jsonl", ["2100-01-03T00:00:00"])])   # behind pdbg's back
    rep = reconcile(prepared.ws)
    assert not rep.ok and any("data version" in p for p in rep.problems), rep.problems


def test_ingest_refused_when_the_log_cannot_be_written(prepared, tmp_path, monkeypatch):
    blocker = tmp_path / "blocker"
    blocker.write_text("")
    before = _state(prepared.ws)
    monkeypatch.setenv("PDBG_AUDIT_MIRROR", str(blocker))
    from pdbg.errors import AuditError

    with pytest.raises(AuditError):
        admin.ingest(prepared.ws, "events", [_rows(tmp_path / "d.jsonl", ["2100-01-03T00:00:00"])], "root")
    monkeypatch.delenv("PDBG_AUDIT_MIRROR")
    assert _state(prepared.ws) == before
    assert reconcile(prepared.ws).ok


def test_session_open_settles_a_dead_intent(prepared, tmp_path):
    from pdbg.session import Session

    ws = prepared.ws
    grant = access.approve(ws, access.request(ws, "alice", "INC-2", "events", 1.0, 4, "why").id, "bob")
    assert grant
    _run(ws, "ingest", "before", "ingest", _rows(tmp_path / "e.jsonl", ["2100-01-02T00:00:00"]))
    Session(ws, user="alice", case="INC-2")
    assert [r["outcome"] for r in AuditLog(ws).records() if r["action"] == "ingest.settled"] == ["done"]
    assert reconcile(ws).ok


def test_cli_audit_recover_settles(prepared, tmp_path, capsys):
    from pdbg.cli.main import main

    ws = prepared.ws
    _run(ws, "purge", "before", "retention.purge")
    code = main(["audit", "recover", str(ws.root), "--user", "root", "--json"])
    out = json.loads(capsys.readouterr().out)
    assert code in (0, None) and [s["outcome"] for s in out["settled"]] == ["done"]
    rec = [r for r in AuditLog(ws).records() if r["action"] == "retention.purge.settled"][0]
    assert rec["total_deleted"] == 3                       # the receipt, read back from the data
    assert reconcile(ws).ok
