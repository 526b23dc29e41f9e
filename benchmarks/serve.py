"""Broker load test: many concurrent investigators against `pdbg serve`, loopback only, bounded in time.

Issue 6 goal: broker p99 < 2x the embedded p99 of the same query at 10 concurrent clients,
and under load (50 clients, 60 s, cached + fresh queries) no errors except deliberate
BudgetExceeded refusals; afterwards the ledger reconciles with the audit log and the audit
log verifies.

Phases, all in one run on one freshly built demo workspace:

  1. embedded-10 - 10 threads, each with its own embedded Session, replaying the same cached
                   query for --compare-seconds (threads: see embedded_phase for why not processes);
  2. broker-10   - 10 concurrent RemoteSession clients (threads of this process) doing the same
                   against the broker for --compare-seconds;
  3. cache-30    - --cache-clients clients for --compare-seconds, 80% cached replays / 20% fresh
                   releases: "cached p50 at 30 clients" vs "fresh p50" and their ratio (issue 13
                   goal: cached at most half of fresh);
  4. load-50     - --clients clients for --seconds: 10 cases with a grant each (clients share
                   cases, so concurrent spending on one grant is exercised), each call is a cached
                   replay with probability 0.8, else a fresh release (a new threshold literal, tiny
                   ε) until the case's budget refuses it.

Latency is measured at the client, end to end (HTTP + JSON + DataFrame decode for the broker;
the Session call including its DataFrame decode for embedded).

    python benchmarks/serve.py [--clients 50] [--seconds 60] [--compare-seconds 15] [--cache-clients 30]
                               [--rows 20000] [--json FILE]

Exit code 0 when the run was clean (goal met or not: the report says); 1 on unexpected errors
or a failed reconcile/verify.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

QUERY = "SELECT service, COUNT(*) AS errors FROM requests WHERE status >= 500 GROUP BY service"
CACHED_POOL = [
    QUERY,
    "SELECT region, COUNT(*) AS n FROM requests GROUP BY region",
    "SELECT service, AVG(latency_ms) AS lat FROM requests GROUP BY service",
    "SELECT region, COUNT(DISTINCT user_id) AS users FROM requests WHERE status >= 500 GROUP BY region",
]
FRESH = "SELECT service, COUNT(*) AS slow FROM requests WHERE latency_ms > {t} GROUP BY service"
INVESTIGATOR, APPROVER = "alice", "bob"


def pct(xs: list[float], p: float) -> float:
    if not xs:
        return float("nan")
    xs = sorted(xs)
    return xs[min(len(xs) - 1, max(0, round(p / 100 * len(xs) + 0.5) - 1))]


def summary(lat: list[float]) -> dict:
    return {"n": len(lat), "p50_ms": pct(lat, 50) * 1000, "p99_ms": pct(lat, 99) * 1000,
            "mean_ms": (statistics.fmean(lat) * 1000) if lat else float("nan")}


# -- workspace and broker ------------------------------------------------------------------

def build_workspace(root: Path, rows: int):
    from pdbg.demo.build import build_demo

    return build_demo(root / "ws", n_rows=rows, seed=11, progress=False)


def open_cases(ws, n: int, epsilon: float, prefix: str) -> list[str]:
    from pdbg.governance import access, cases

    out = []
    for i in range(n):
        case = f"{prefix}-{i}"
        cases.open_case(ws, APPROVER, case, "load test")
        req = access.request(ws, INVESTIGATOR, case, "requests", epsilon, 4, "load test")
        access.approve(ws, req.id, APPROVER)
        out.append(case)
    return out


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_broker(ws_root: Path, log_path: Path) -> tuple[subprocess.Popen, str]:
    import httpx

    port = free_port()
    env = {k: v for k, v in os.environ.items() if k not in ("PDBG_TOKEN", "PDBG_AUDIT_MIRROR")}
    log = open(log_path, "wb")
    proc = subprocess.Popen([sys.executable, "-c", "from pdbg.cli.main import entry; entry()", "serve",
                             str(ws_root), "--host", "127.0.0.1", "--port", str(port)],
                            stdout=log, stderr=subprocess.STDOUT, env=env, cwd=str(REPO))
    log.close()
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError("pdbg serve exited:\n" + log_path.read_text())
        try:
            if httpx.get(url + "/v1/health", timeout=1).status_code == 200:
                return proc, url
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    proc.terminate()
    raise RuntimeError("pdbg serve did not start:\n" + log_path.read_text())


# -- phases ----------------------------------------------------------------------------------

def embedded_phase(ws_root: Path, case: str, workers: int, seconds: float) -> list[float]:
    """`workers` threads, each with its own embedded Session, replaying the cached QUERY.

    Every reader on the query path uses one read-only, locked-down DuckDB configuration,
    so sessions in threads (and processes) run side by side, as in the broker.
    """
    from pdbg.session import Session

    lat: list[float] = []

    lock = threading.Lock()
    barrier = threading.Barrier(workers)

    def worker() -> None:
        s = Session(ws_root, user=INVESTIGATOR, case=case)
        mine = []
        barrier.wait()
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            t0 = time.perf_counter()
            s.sql(QUERY, epsilon=0.1)
            mine.append(time.perf_counter() - t0)
        with lock:
            lat.extend(mine)

    threads = [threading.Thread(target=worker) for _ in range(workers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(seconds + 120)
    return lat


def broker_phase(url: str, token: str, cases: list[str], clients: int, seconds: float,
                 fresh_share: float = 0.0, seed: int = 1, fresh_epsilon: float = 0.02) -> dict:
    """`clients` threads with their own RemoteSession; returns latencies and outcome counts.

    ``lat`` splits by what was asked (a cached-pool query or a fresh one, refusals included);
    ``by_outcome`` by what happened (``cached`` hits, ``fresh`` releases, refusals by class).
    """
    import pdbg
    from pdbg.errors import BudgetExceeded, PdbgError

    lat = {"cached": [], "fresh": []}
    by_outcome: dict[str, list[float]] = {}
    outcomes: Counter = Counter()
    unexpected: list[str] = []
    lock = threading.Lock()
    barrier = threading.Barrier(clients)

    def client(i: int) -> None:
        rng = random.Random(seed * 1000 + i)
        case = cases[i % len(cases)]
        with pdbg.connect(url, user=INVESTIGATOR, case=case, token=token) as s:
            barrier.wait()
            end = time.monotonic() + seconds
            while time.monotonic() < end:
                fresh = rng.random() < fresh_share
                sql = FRESH.format(t=rng.randrange(1, 10**9)) if fresh else rng.choice(CACHED_POOL)
                if not fresh_share:
                    sql = QUERY
                t0 = time.perf_counter()
                try:
                    r = s.sql(sql, epsilon=fresh_epsilon if fresh else 0.1)
                    kind = "cached" if r.cached else "fresh"
                    outcome = kind
                except BudgetExceeded:
                    kind, outcome = "fresh", "BudgetExceeded"
                except PdbgError as err:
                    kind, outcome = "fresh" if fresh else "cached", type(err).__name__
                    with lock:
                        unexpected.append(f"{type(err).__name__}: {err.message}")
                dt = time.perf_counter() - t0
                with lock:
                    lat[kind].append(dt)
                    by_outcome.setdefault(outcome, []).append(dt)
                    outcomes[outcome] += 1

    threads = [threading.Thread(target=client, args=(i,)) for i in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(seconds + 300)
    return {"lat": lat, "by_outcome": by_outcome, "outcomes": dict(outcomes), "unexpected": unexpected}


def warm(url: str, token: str, ws_root: Path, cases: list[str]) -> None:
    """Release every cached-pool query once per case (so later calls are cache hits)."""
    import pdbg

    for case in cases:
        with pdbg.connect(url, user=INVESTIGATOR, case=case, token=token) as s:
            for sql in CACHED_POOL:
                s.sql(sql, epsilon=0.1)


# -- the run ----------------------------------------------------------------------------------

def run(rows: int = 20_000, clients: int = 50, seconds: float = 60.0, compare_seconds: float = 15.0,
        compare_clients: int = 10, workdir: Path | None = None, cache_clients: int = 30) -> dict:
    from pdbg.ledger.audit import verify
    from pdbg.ledger.reconcile import reconcile

    tmp = tempfile.TemporaryDirectory(prefix="pdbg-serve-bench-") if workdir is None else None
    root = Path(tmp.name) if tmp else Path(workdir)
    os.environ.pop("PDBG_AUDIT_MIRROR", None)
    demo = build_workspace(root, rows)
    ws = demo.ws
    token = json.loads((ws.keys_dir / "demo-tokens.json").read_text())[INVESTIGATOR]
    # 10 load cases x 0.8 + 1 compare case x 0.5 stays inside the dataset's lifetime cap.
    compare_case = open_cases(ws, 1, 0.5, "CMP")[0]
    load_cases = open_cases(ws, 10, 0.8, "LOAD")
    proc, url = start_broker(ws.root, root / "broker.log")
    try:
        warm(url, token, ws.root, [compare_case])
        emb1 = embedded_phase(ws.root, compare_case, 1, min(compare_seconds, 5))
        b1 = broker_phase(url, token, [compare_case], 1, min(compare_seconds, 5))
        emb = embedded_phase(ws.root, compare_case, compare_clients, compare_seconds)
        b10 = broker_phase(url, token, [compare_case], compare_clients, compare_seconds)
        warm(url, token, ws.root, load_cases)
        # cache-30: cached replays and fresh releases side by side under the same load, so the two
        # p50s are comparable (tiny fresh ε: the engine's work does not depend on it, the budget does)
        c30 = broker_phase(url, token, load_cases, cache_clients, compare_seconds, fresh_share=0.2, seed=2,
                           fresh_epsilon=0.005)
        load = broker_phase(url, token, load_cases, clients, seconds, fresh_share=0.2)
    finally:
        proc.terminate()
        proc.wait(30)
    log = (root / "broker.log").read_text(errors="replace")
    rec, ver = reconcile(ws), verify(ws)
    report = {
        "rows": rows, "clients": clients, "seconds": seconds, "compare_clients": compare_clients,
        "embedded_1": summary(emb1), "broker_1": summary(b1["lat"]["cached"]),
        "embedded_10": summary(emb),
        "broker_10": summary(b10["lat"]["cached"]),
        "load_cached": summary(load["lat"]["cached"]),
        "load_fresh": summary(load["lat"]["fresh"]),
        "load_outcomes": load["outcomes"],
        "load_unexpected": load["unexpected"],
        "cache_clients": cache_clients,
        "cached_at_30": summary(c30["by_outcome"].get("cached", [])),
        "fresh_at_30": summary(c30["by_outcome"].get("fresh", [])),
        "cache_outcomes": c30["outcomes"],
        "unexpected_errors": load["unexpected"] + b10["unexpected"] + c30["unexpected"],
        "reconcile_ok": rec.ok, "reconcile": rec.message,
        "audit_verify_ok": ver.ok, "audit_records": getattr(ver, "records", None),
        "token_in_log": token in log, "traceback_in_log": "Traceback" in log or "unexpected " in log,
    }
    e99, b99 = report["embedded_10"]["p99_ms"], report["broker_10"]["p99_ms"]
    report["p99_ratio_broker_vs_embedded"] = b99 / e99 if e99 else float("nan")
    report["goal_met"] = report["p99_ratio_broker_vs_embedded"] < 2.0
    c50, f50 = report["cached_at_30"]["p50_ms"], report["fresh_at_30"]["p50_ms"]
    report["cached_vs_fresh_p50"] = c50 / f50 if f50 and f50 == f50 else float("nan")
    report["cache_goal_met"] = report["cached_vs_fresh_p50"] <= 0.5     # issue 13: at most half
    report["clean"] = (not report["unexpected_errors"] and rec.ok and ver.ok and not report["token_in_log"]
                       and not report["traceback_in_log"])
    if tmp:
        tmp.cleanup()
    return report


def print_report(r: dict) -> None:
    def line(name, s):
        return f"  {name:<26} n={s['n']:>7}  p50 {s['p50_ms']:8.1f} ms  p99 {s['p99_ms']:8.1f} ms"

    print(f"pdbg broker load test ({r['rows']} rows; loopback)")
    print(" same cached query, 1 client (the broker's own overhead):")
    print(line("embedded", r["embedded_1"]))
    print(line("broker", r["broker_1"]))
    print(f" same cached query, {r['compare_clients']} concurrent clients:")
    print(line("embedded (threads)", r["embedded_10"]))
    print(line("broker (HTTP clients)", r["broker_10"]))
    print(f"  p99 broker / embedded = {r['p99_ratio_broker_vs_embedded']:.2f}  "
          f"(goal < 2: {'met' if r['goal_met'] else 'NOT met'})")
    print(f" cache vs fresh, {r['cache_clients']} concurrent clients, 80% cached / 20% fresh:")
    print(line(f"cached p50 at {r['cache_clients']} clients", r["cached_at_30"]))
    print(line("fresh p50", r["fresh_at_30"]))
    print(f"  cached p50 at {r['cache_clients']} clients {r['cached_at_30']['p50_ms']:.1f} ms / "
          f"fresh p50 {r['fresh_at_30']['p50_ms']:.1f} ms = {r['cached_vs_fresh_p50']:.2f}  "
          f"(goal <= 0.5: {'met' if r['cache_goal_met'] else 'NOT met'}); outcomes {r['cache_outcomes']}")
    print(f" load: {r['clients']} clients for {r['seconds']:g} s, 80% cached / 20% fresh:")
    print(line("cached replays", r["load_cached"]))
    print(line("fresh releases + refusals", r["load_fresh"]))
    print(f"  outcomes: {r['load_outcomes']}")
    total = sum(r["load_outcomes"].values())
    print(f"  throughput: {total / r['seconds']:.0f} requests/s")
    print(f" {r['clients']} clients × {r['seconds']:g} s, unexpected errors: {len(r['load_unexpected'])} "
          f"{r['load_unexpected'][:3]}")
    print(f" unexpected errors, all phases: {len(r['unexpected_errors'])} {r['unexpected_errors'][:3]}")
    print(f" ledger reconciles with audit: {r['reconcile_ok']} ({r['reconcile']}); "
          f"audit verify: {r['audit_verify_ok']} ({r['audit_records']} records)")
    print(f" token in broker log: {r['token_in_log']}; unexpected exception in log: {r['traceback_in_log']}")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=20_000)
    ap.add_argument("--clients", type=int, default=50)
    ap.add_argument("--seconds", type=float, default=60.0)
    ap.add_argument("--compare-seconds", type=float, default=15.0)
    ap.add_argument("--compare-clients", type=int, default=10)
    ap.add_argument("--cache-clients", type=int, default=30, help="clients of the cached-vs-fresh phase")
    ap.add_argument("--json", type=Path)
    a = ap.parse_args(argv)
    r = run(a.rows, a.clients, a.seconds, a.compare_seconds, a.compare_clients, cache_clients=a.cache_clients)
    print_report(r)
    if a.json:
        a.json.write_text(json.dumps(r, indent=2, default=str))
    return 0 if r["clean"] else 1


if __name__ == "__main__":
    sys.exit(main())
