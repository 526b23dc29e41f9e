"""Real processes: concurrent appenders, and writers killed with SIGKILL mid-append."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import textwrap
import time

import pytest

from pdbg.ledger.audit import AuditLog, verify

from .conftest import read_lines

ENV = {k: v for k, v in os.environ.items() if k != "PDBG_AUDIT_MIRROR"}


def run_child(code: str, *args: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", textwrap.dedent(code), *args], env=ENV)


APPENDER = """
import sys
from pdbg.policy.workspace import Workspace
from pdbg.ledger.audit import AuditLog
ws, who, n = Workspace(sys.argv[1]), sys.argv[2], int(sys.argv[3])
log = AuditLog(ws)
for i in range(n):
    log.append(who, "query", i=i)
"""


def test_eight_processes_append_concurrently(ws):
    procs = [run_child(APPENDER, str(ws.root), f"p{k}", "25") for k in range(8)]
    assert [p.wait(timeout=120) for p in procs] == [0] * 8
    recs = AuditLog(ws).records()
    assert [r["seq"] for r in recs] == list(range(200))
    for k in range(8):
        assert [r["i"] for r in recs if r["actor"] == f"p{k}"] == list(range(25))
    rep = verify(ws, all_signatures=True)
    assert rep.ok and rep.checkpoints == 200 and rep.unsigned == 0, rep.problems


# The child dies inside the append, at the n-th write: 1 = record line, 2 = checkpoint
# line, 3 = mirror copy. ``half`` writes only half of that line first.
KILLED_MID_WRITE = """
import os, signal, sys
from pdbg.policy.workspace import Workspace
from pdbg.ledger.audit import AuditLog, log as logmod
ws, at, half = Workspace(sys.argv[1]), int(sys.argv[2]), sys.argv[3] == "1"
real, count = logmod._write_all, [0]
def dying_write(fd, data):
    count[0] += 1
    if count[0] == at:
        if half:
            os.write(fd, data[: len(data) // 2])
        os.kill(os.getpid(), signal.SIGKILL)
    real(fd, data)
logmod._write_all = dying_write
AuditLog(ws).append("victim", "query", text="x" * 200)
"""


@pytest.mark.parametrize("at, half", [(1, True), (1, False), (2, True), (2, False), (3, True), (3, False)])
def test_killed_mid_append(ws, at, half):
    log = AuditLog(ws)
    for i in range(3):
        log.append("alice", "query", i=i)
    before = ws.audit_path.stat().st_size
    p = run_child(KILLED_MID_WRITE, str(ws.root), str(at), "1" if half else "0")
    assert p.wait(timeout=60) == -signal.SIGKILL

    rep = verify(ws)  # before anyone repairs anything
    assert rep.ok, rep.problems
    if at == 1 and half:
        assert rep.torn_tail_bytes > 0 and rep.records == 3
    if at >= 2:
        assert rep.records == 4 and rep.unsigned in (0, 1)

    rec = log.append("alice", "after-crash")  # repairs: quarantines torn tails
    recs = log.records()
    assert [r["seq"] for r in recs] == list(range(len(recs)))
    quarantines = [r for r in recs if r["action"] == "audit.quarantine"]
    if half:
        assert len(quarantines) == 1
        q = quarantines[0]
        saved = ws.audit_dir / q["quarantined_as"]
        assert saved.is_file() and saved.stat().st_size == q["bytes"] > 0
        if at == 1:
            assert q["file"] == "audit.jsonl" and saved.read_bytes()[:1] == b"{"
            assert ws.audit_path.read_bytes().count(b"victim") == 0
    else:
        assert quarantines == []
    assert rec["action"] == "after-crash"
    rep = verify(ws, all_signatures=True)
    assert rep.ok and rep.unsigned == 0, rep.problems
    assert len(rep.quarantined) == (1 if half else 0)
    assert ws.audit_path.stat().st_size > before


LOOPER = """
import sys
from pdbg.policy.workspace import Workspace
from pdbg.ledger.audit import AuditLog
log = AuditLog(Workspace(sys.argv[1]))
i = 0
while True:
    log.append("looper", "query", i=i, text="y" * 500)
    i += 1
"""


def test_killed_at_random_points_in_a_loop(ws):
    rng = random.Random(1234)
    for round_ in range(6):
        p = run_child(LOOPER, str(ws.root))
        time.sleep(0.3 + rng.random() * 0.4)
        p.send_signal(signal.SIGKILL)
        assert p.wait(timeout=30) == -signal.SIGKILL
        rep = verify(ws)
        assert rep.ok, (round_, rep.problems)
    AuditLog(ws).append("alice", "after")
    rep = verify(ws, all_signatures=True)
    assert rep.ok and rep.unsigned == 0 and rep.torn_tail_bytes == 0, rep.problems
    assert rep.records == len(read_lines(ws.audit_path)) > 6
