"""Writer starvation: does an admin ingest or purge get data.duckdb while notebooks query in a loop?

Issue 13 item 6: with six notebook kernels querying in a loop, 3 of 6 admin operations failed
after 15 s (DuckDB lets a process write the file only when no other process has it open).
Goal: every admin operation completes within 15 s under that load.

One demo workspace; ``--readers`` reader *processes* (each one `pdbg.session.Session`, like a
notebook kernel) query it in a loop: half fresh releases (a new threshold literal, tiny ε, so
the engine reads the data), half cached answers (planning still reads the registry). Meanwhile
this process runs ``--trials`` admin operations, alternating `pdbg.governance.admin.ingest` of
a small file and `pdbg.governance.retention.purge`, each timed from call to return, with a
pause between trials. Readers report how many queries they finished and how many were refused
as busy (a free refusal while the writer waited or wrote) or failed otherwise.

    python benchmarks/writer_starvation.py [--readers 6] [--trials 8] [--rows 50000] [--json FILE]

Exit code 0 when every admin operation completed within --goal seconds and no reader hit an
unexpected error; 1 otherwise.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

FRESH = "SELECT service, COUNT(*) AS slow FROM requests WHERE latency_ms > {t} GROUP BY service"
CACHED = "SELECT region, COUNT(*) AS n FROM requests GROUP BY region"


def reader(ws_path: str, stop_file: str, out: str) -> None:
    """One notebook kernel: query in a loop until ``stop_file`` exists; write counts to ``out``."""
    from pdbg.demo.build import DEMO_CASE, INVESTIGATOR
    from pdbg.errors import BudgetExceeded, PdbgError, StorageBusy
    from pdbg.session import Session

    s = Session(ws_path, user=INVESTIGATOR, case=DEMO_CASE)
    rng = random.Random(os.getpid())
    done = busy = budget = 0
    other: dict[str, int] = {}
    lat: list[float] = []
    while not os.path.exists(stop_file):
        sql = FRESH.format(t=rng.randrange(1, 10**9)) if rng.random() < 0.5 else CACHED
        t0 = time.perf_counter()
        try:
            s.sql(sql, epsilon=0.001)
            done += 1
            lat.append(time.perf_counter() - t0)
        except StorageBusy:
            busy += 1
        except BudgetExceeded:
            budget += 1
        except PdbgError as err:
            key = f"{type(err).__name__}: {err.message}"
            other[key] = other.get(key, 0) + 1
    Path(out).write_text(json.dumps({"done": done, "busy": busy, "budget": budget, "other": other,
                                     "p50_ms": 1000 * statistics.median(lat) if lat else None}))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--readers", type=int, default=6)
    ap.add_argument("--trials", type=int, default=8)
    ap.add_argument("--rows", type=int, default=50_000)
    ap.add_argument("--ingest-rows", type=int, default=2_000)
    ap.add_argument("--pause", type=float, default=2.0, help="seconds between admin operations")
    ap.add_argument("--goal", type=float, default=15.0)
    ap.add_argument("--json", help="write the results here too")
    ap.add_argument("--reader", nargs=3, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.reader:
        reader(*args.reader)
        return 0

    from pdbg.demo.build import build_demo
    from pdbg.demo.generate import DEMO_START, generate, write
    from pdbg.errors import PdbgError
    from pdbg.governance import admin, principals, retention

    tmp = Path(tempfile.mkdtemp(prefix="pdbg-starve-"))
    t0 = time.perf_counter()
    demo = build_demo(tmp / "ws", n_rows=args.rows, seed=3, progress=False)
    ws = demo.ws
    extra = tmp / "extra.jsonl"
    write(generate(args.ingest_rows, seed=4, start=DEMO_START, hours=4).table, extra, fmt="jsonl")
    print(f"demo workspace: {args.rows:,} rows, built in {time.perf_counter() - t0:.1f} s; "
          f"load average {os.getloadavg()[0]:.2f}", flush=True)

    stop = tmp / "stop"
    outs = [tmp / f"reader-{i}.json" for i in range(args.readers)]
    procs = [subprocess.Popen([sys.executable, __file__, "--reader", str(ws.root), str(stop), str(o)])
             for o in outs]
    owner = principals.os_actor()
    results = []
    try:
        time.sleep(3.0)   # let every reader start its loop
        for i in range(args.trials):
            op = "ingest" if i % 2 == 0 else "purge"
            t = time.perf_counter()
            try:
                if op == "ingest":
                    admin.ingest(ws, "requests", [extra], owner, progress=False)
                else:
                    retention.purge(ws, owner)
                outcome = "ok"
            except PdbgError as err:
                outcome = f"{type(err).__name__}: {err.message}"
            took = time.perf_counter() - t
            results.append({"trial": i + 1, "op": op, "seconds": round(took, 3), "outcome": outcome})
            print(f"trial {i + 1}: {op:<6} {took:6.2f} s  {outcome}", flush=True)
            time.sleep(args.pause)
    finally:
        stop.write_text("stop")
        for p in procs:
            try:
                p.wait(timeout=60)
            except subprocess.TimeoutExpired:
                p.send_signal(signal.SIGKILL)
                p.wait()
    readers = [json.loads(o.read_text()) if o.exists() else {"missing": True} for o in outs]
    secs = [r["seconds"] for r in results]
    ok = [r for r in results if r["outcome"] == "ok" and r["seconds"] <= args.goal]
    unexpected = sum(sum(r.get("other", {}).values()) + (1 if r.get("missing") else 0) for r in readers)
    summary = {
        "readers": args.readers, "trials": len(results), "within_goal": len(ok), "goal_s": args.goal,
        "admin_seconds": {"min": min(secs), "median": statistics.median(secs), "max": max(secs)},
        "reader_queries": sum(r.get("done", 0) for r in readers),
        "reader_busy_refusals": sum(r.get("busy", 0) for r in readers),
        "reader_unexpected_errors": unexpected,
        "load_average": os.getloadavg()[0],
    }
    print(f"\n{len(ok)}/{len(results)} admin operations completed within {args.goal:g} s "
          f"(min {min(secs):.2f}, median {statistics.median(secs):.2f}, max {max(secs):.2f} s); "
          f"readers: {summary['reader_queries']} queries, {summary['reader_busy_refusals']} busy refusals, "
          f"{unexpected} unexpected errors; load average {summary['load_average']:.2f}")
    for r in readers:
        if r.get("other"):
            print("  reader errors:", r["other"])
    if args.json:
        Path(args.json).write_text(json.dumps({"summary": summary, "trials": results, "readers": readers}, indent=1))
    return 0 if len(ok) == len(results) and unexpected == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
