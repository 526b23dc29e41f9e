"""Real processes: concurrent kernels racing for one grant, and kernels killed mid-release.

Each worker follows the session's protocol: reserve -> AuditLog.append(query record)
-> commit. This file is also the worker program (run as a script), so the child
processes import nothing from the test suite.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

HERE = Path(__file__).resolve()
N_PROCS = 8


def _worker(ws_path: str, accounts: list[str], accounting: str, epsilon: float, grant_delta: float, go: str) -> None:
    from pdbg.dp.accounting import query_cost
    from pdbg.errors import BudgetExceeded
    from pdbg.ledger.audit import AuditLog
    from pdbg.ledger.budget import Ledger
    from pdbg.policy.workspace import Workspace

    ws = Workspace(ws_path)
    cost = query_cost(accounting, epsilon, grant_delta=grant_delta)
    ledger, audit = Ledger(ws), AuditLog(ws)
    while not os.path.exists(go):  # start together
        time.sleep(0.005)
    ok = refused = 0
    negative = False
    while True:
        try:
            res = ledger.reserve(accounts, cost, holder=f"worker-{os.getpid()}")
        except BudgetExceeded:
            refused += 1
            break
        audit.append(f"worker-{os.getpid()}", "query", case="INC-1", **res.audit_fields())
        ledger.commit(res)
        ok += 1
        for a in accounts:
            b = ledger.balance(a)
            negative |= b.remaining_units < 0 or b.delta_remaining_units < 0
    print(json.dumps({"ok": ok, "refused": refused, "negative": negative}), flush=True)


def _crasher(ws_path: str, account: str, stage: str) -> None:
    """Reserve, optionally audit, then report and wait to be killed before committing."""
    from pdbg.dp.accounting import query_cost
    from pdbg.ledger.audit import AuditLog
    from pdbg.ledger.budget import Ledger
    from pdbg.policy.workspace import Workspace

    ws = Workspace(ws_path)
    res = Ledger(ws).reserve([account], query_cost("pure", 0.25, grant_delta=0.0), holder="crasher")
    if stage == "after-audit":
        AuditLog(ws).append("crasher", "query", case="INC-1", **res.audit_fields())
    print(json.dumps({"reservation": res.id}), flush=True)
    time.sleep(120)


# -- tests -------------------------------------------------------------------------------


def _env() -> dict:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(HERE.parents[2]) + os.pathsep + env.get("PYTHONPATH", "")
    return env


def _race(tmp_path, ws, accounts: list[str], accounting: str, epsilon: float, grant_delta: float) -> list[dict]:
    go = tmp_path / "go"
    procs = [
        subprocess.Popen(
            [sys.executable, str(HERE), "worker", str(ws.root), json.dumps(accounts), accounting,
             repr(epsilon), repr(grant_delta), str(go)],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=_env(),
        )
        for _ in range(N_PROCS)
    ]
    time.sleep(0.5)
    go.touch()
    results = []
    for p in procs:
        out, err = p.communicate(timeout=120)
        assert p.returncode == 0, err[-2000:]
        results.append(json.loads(out.strip().splitlines()[-1]))
    return results


@pytest.mark.parametrize("accounting", ["pure", "zcdp"])
def test_eight_processes_spend_a_grant_exactly(tmp_path, ws, accounting):
    from pdbg.dp.accounting import capacity, query_cost
    from pdbg.ledger.budget import Ledger
    from pdbg.ledger.reconcile import reconcile

    grant_eps, delta, query_eps = (1.0, 1e-6, 0.05) if accounting == "pure" else (1.0, 1e-6, 0.2)
    with Ledger(ws) as ledger:
        ledger.open_account("grant:g", accounting=accounting, epsilon=grant_eps, delta=delta)
        ledger.open_account("dataset:requests", accounting=accounting, epsilon=5.0, delta=delta)
    expected = capacity(accounting, grant_eps, delta).privacy_units // query_cost(
        accounting, query_eps, grant_delta=delta
    ).privacy_units
    assert expected >= N_PROCS  # enough work for every process to race
    results = _race(tmp_path, ws, ["grant:g", "dataset:requests"], accounting, query_eps, delta)

    assert sum(r["ok"] for r in results) == expected
    assert all(r["refused"] == 1 and not r["negative"] for r in results)
    with Ledger(ws) as ledger:
        b = ledger.balance("grant:g")
        assert b.reserved_units == 0 and 0 <= b.remaining_units < query_cost(accounting, query_eps, grant_delta=delta).privacy_units
        assert ledger.balance("dataset:requests").committed_units == b.committed_units
    report = reconcile(ws)
    assert report.ok, report.message
    assert report.per_account["grant:g"] == (b.committed_units, b.committed_units)
    assert report.committed_reservations == expected


def _start_crasher(ws, stage: str) -> tuple[subprocess.Popen, str]:
    p = subprocess.Popen(
        [sys.executable, str(HERE), "crasher", str(ws.root), "grant:g", stage],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=_env(),
    )
    line = p.stdout.readline()
    if not line:
        _, err = p.communicate(timeout=30)
        raise AssertionError(err[-2000:])
    return p, json.loads(line)["reservation"]


def _kill(p: subprocess.Popen) -> None:
    p.send_signal(signal.SIGKILL)
    p.communicate(timeout=30)  # reaps the child and closes its pipes


@pytest.mark.parametrize("stage,expect", [("after-audit", "committed"), ("after-reserve", "released")])
def test_a_killed_kernel_is_recovered_from_the_audit_log(ws, stage, expect):
    from pdbg.ledger.audit import AuditLog
    from pdbg.ledger.budget import Ledger
    from pdbg.ledger.reconcile import reconcile

    with Ledger(ws) as ledger:
        ledger.open_account("grant:g", accounting="pure", epsilon=1.0, delta=0.0)
        p, rid = _start_crasher(ws, stage)
        try:
            # while the holder lives, recovery leaves its reservation alone
            assert ledger.recover().skipped_alive == (rid,)
            assert ledger.state_of(rid) == "reserved"
        finally:
            _kill(p)
        report = ledger.recover()
        assert ledger.state_of(rid) == expect
        assert (report.committed, report.released) == (((rid,), ()) if expect == "committed" else ((), (rid,)))
        b = ledger.balance("grant:g")
        assert b.reserved_units == 0
        assert b.committed_units == (250 * 10**12 if expect == "committed" else 0)
        assert ledger.recover().committed == ()  # nothing left to do
    recs = AuditLog(ws).records()
    assert recs[-1]["action"] == "budget.recover" and rid in recs[-1][expect]
    assert reconcile(ws).ok


def test_reconcile_reports_a_dead_holder_as_pending_until_recovered(ws):
    from pdbg.ledger.budget import Ledger
    from pdbg.ledger.reconcile import reconcile

    with Ledger(ws) as ledger:
        ledger.open_account("grant:g", accounting="pure", epsilon=1.0, delta=0.0)
        p, rid = _start_crasher(ws, "after-audit")
        _kill(p)
        report = reconcile(ws)
        assert not report.ok and report.pending == (rid,) and "recover" in report.message
        ledger.recover()
    assert reconcile(ws).ok


def test_an_unreaped_killed_holder_counts_as_dead(ws):
    from pdbg.ledger.budget import Ledger

    with Ledger(ws) as ledger:
        ledger.open_account("grant:g", accounting="pure", epsilon=1.0, delta=0.0)
        p, rid = _start_crasher(ws, "after-reserve")
        p.send_signal(signal.SIGKILL)
        deadline = time.time() + 10
        while time.time() < deadline and b" Z " not in Path(f"/proc/{p.pid}/stat").read_bytes():
            time.sleep(0.01)  # now a zombie: kill(pid, 0) still succeeds
        assert ledger.recover().released == (rid,)
        p.communicate(timeout=30)


def test_recover_with_nothing_stranded_reads_no_audit_log(ws):
    from pdbg.dp.accounting import query_cost
    from pdbg.ledger.budget import Ledger

    class Untouchable:
        def __iter__(self):
            raise AssertionError("the audit log was read")

    with Ledger(ws) as ledger:
        ledger.open_account("grant:g", accounting="pure", epsilon=1.0, delta=0.0)
        mine = ledger.reserve(["grant:g"], query_cost("pure", 0.1, grant_delta=0.0), holder="me")
        report = ledger.recover(Untouchable())
        assert report.skipped_alive == (mine.id,) and report.committed == report.released == ()
        assert not ws.audit_path.exists() or "budget.recover" not in ws.audit_path.read_text()


if __name__ == "__main__":
    if sys.argv[1] == "worker":
        _, _, ws_path, accounts, accounting, eps, gdelta, go = sys.argv
        _worker(ws_path, json.loads(accounts), accounting, float(eps), float(gdelta), go)
    elif sys.argv[1] == "crasher":
        _crasher(*sys.argv[2:5])
