"""Cached vs fresh release latency on a demo workspace (issue 13 item 7).

    python tests/session/bench_cache_hit.py /tmp/x [--n 40] [--threads 1]

Builds nothing: run `pdbg demo /tmp/x --rows 200000 --no-investigate` first. Fresh
releases use a new ε each time (a new cache key); cached ones repeat one query.
With --threads N, N threads issue cache hits at once (the broker's case).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from concurrent.futures import ThreadPoolExecutor


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("ws")
    ap.add_argument("--n", type=int, default=40)
    ap.add_argument("--threads", type=int, default=1)
    a = ap.parse_args()
    from pdbg.demo.build import APPROVER, INVESTIGATOR
    from pdbg.governance import access, cases
    from pdbg.policy.workspace import Workspace
    from pdbg.session import Session

    a.ws = Workspace(a.ws)

    case = f"BENCH-{time.time_ns()}"
    cases.open_case(a.ws, APPROVER, case, "bench")
    access.approve(a.ws, access.request(a.ws, INVESTIGATOR, case, "requests", 5.0, 4, "bench").id, APPROVER)
    s = Session(a.ws, user=INVESTIGATOR, case=case)
    q = "SELECT service, COUNT(*) AS n FROM requests WHERE status >= 500 GROUP BY service"
    fresh = []
    for i in range(a.n):
        t = time.perf_counter()
        s.sql(q, epsilon=0.002 + i * 1e-5)
        fresh.append(time.perf_counter() - t)

    def hit(_):
        t = time.perf_counter()
        assert s.sql(q, epsilon=0.002).cached
        return time.perf_counter() - t

    with ThreadPoolExecutor(a.threads) as pool:
        cached = list(pool.map(hit, range(a.n * a.threads)))
    p50f, p50c = statistics.median(fresh) * 1e3, statistics.median(cached) * 1e3
    print(f"fresh p50 {p50f:.1f} ms   cached p50 {p50c:.1f} ms ({a.threads} thread(s))   ratio {p50c / p50f:.2f}")


if __name__ == "__main__":
    sys.exit(main())
