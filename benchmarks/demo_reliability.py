"""How often the demo investigation locates the injected incident (issue: ≥ 95 of 100 seeded datasets).

Each run builds a fresh demo workspace from a different seed (so a different
service, region and start minute), runs the five-release investigation of
`pdbg.demo.investigate` under the demo grant (ε = 1), and checks the service, the
region and the start minute (within 5 minutes). Noise is real (never seeded); the
seed only picks the synthetic data.

    python benchmarks/demo_reliability.py [--runs 100] [--rows 500000] [--jobs 2]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path


def one(seed: int, rows: int) -> dict:
    from pdbg.demo.build import build_demo
    from pdbg.demo.investigate import investigate, within
    from pdbg.session import Session

    with tempfile.TemporaryDirectory(prefix=f"pdbg-rel-{seed}-") as tmp:
        d = build_demo(Path(tmp) / "ws", n_rows=rows, seed=seed)
        f = investigate(Session(d.ws, user=d.investigator, case=d.case), d.window)
        t = d.truth
        return {
            "seed": seed, "service": f.service == t.service, "region": f.region == t.region,
            "start": within(f.start, t.start), "start_error_min": (f.start.replace(tzinfo=None) - t.start.replace(tzinfo=None)).total_seconds() / 60,
            "spent_epsilon": f.spent_epsilon,
        }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=100)
    ap.add_argument("--rows", type=int, default=500_000)
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--first-seed", type=int, default=1000)
    args = ap.parse_args()
    t0 = time.perf_counter()
    seeds = range(args.first_seed, args.first_seed + args.runs)
    with ProcessPoolExecutor(args.jobs) as pool:
        results = list(pool.map(one, seeds, [args.rows] * args.runs))
    located = [r for r in results if r["service"] and r["region"] and r["start"]]
    for r in results:
        if r not in located:
            print("missed:", json.dumps(r))
    worst = max(r["spent_epsilon"] for r in results)
    print(f"located {len(located)}/{len(results)} incidents (service, region, start within 5 min); "
          f"max total ε spent {worst:.3f}; {time.perf_counter() - t0:.0f} s")
    ok = len(located) >= 0.95 * len(results) and worst <= 1.0
    print("PASS" if ok else "FAIL")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
