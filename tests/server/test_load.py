"""The broker under load (slow): 50 clients for 60 s on loopback, via benchmarks/serve.py.

Passes when nothing but deliberate BudgetExceeded refusals went wrong, the ledger
reconciles with the audit log, the audit log verifies, and the broker's log holds no
token and no unexpected exception. Latencies are printed (-s), not asserted: the goal
(broker p99 < 2x embedded p99 at 10 clients) is reported by the benchmark itself.
"""

from __future__ import annotations

import importlib.util

import pytest

from .helpers import REPO


@pytest.mark.slow
def test_fifty_clients_for_a_minute(tmp_path):
    spec = importlib.util.spec_from_file_location("pdbg_bench_serve", REPO / "benchmarks" / "serve.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    r = bench.run(rows=20_000, clients=50, seconds=60, compare_seconds=10, workdir=tmp_path)
    bench.print_report(r)
    assert r["unexpected_errors"] == []
    assert set(r["load_outcomes"]) <= {"cached", "fresh", "BudgetExceeded"}
    assert r["load_outcomes"].get("cached", 0) > 0 and r["load_outcomes"].get("fresh", 0) > 0
    assert r["reconcile_ok"] and r["audit_verify_ok"]
    assert not r["token_in_log"] and not r["traceback_in_log"]
