"""pdbg and plain-DuckDB runner for the peer comparison, run in pdbg's own venv (.venv).

    run_local.py pdbg   ROWS --epsilon 1.0 --reps 5
    run_local.py duckdb ROWS --reps 5

pdbg: a fresh copy of the cached benchmark workspace (benchmarks/query.py), a dedicated
case with an approved grant, and ``pdbg.connect(ws).sql(q, epsilon=ε)`` per run; every run
is a fresh release (ε nudged by 1e-6 relative so the release cache cannot answer).
duckdb: the same non-private question on the same data.duckdb, warm, plus the exact answer
(handed to the driver to compute errors; the driver never prints it).
One JSON object per line on stdout (header, one per query, done).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))
import spec  # noqa: E402


def run_duckdb(rows: int, reps: int) -> None:
    import duckdb

    import query as Q

    Q.ensure_template(rows)
    db = Q.template_dir(rows) / "data.duckdb"
    t0 = time.perf_counter()
    con = duckdb.connect(str(db), read_only=True)
    spec.emit({"header": True, "system": "duckdb", "version": f"duckdb {duckdb.__version__}",
           "load_s": time.perf_counter() - t0})
    for name, sql in spec.PLAIN_SQL.items():
        cur = con.execute(sql)
        cols = [d[0] for d in cur.description]
        exact = [dict(zip(cols, r)) for r in cur.fetchall()]
        times = []
        for _ in range(reps):
            t1 = time.perf_counter()
            con.execute(sql).fetchall()
            times.append(time.perf_counter() - t1)
        spec.emit({"query": name, "supported": True, "times_s": times, "exact": exact})
    con.close()
    spec.emit({"done": True})


def run_pdbg(rows: int, reps: int, epsilon: float) -> None:
    import pdbg
    import query as Q

    Q.ensure_template(rows)
    t0 = time.perf_counter()
    ws = Q.fresh_run_workspace(rows, tag="peers")
    case = Q.open_bench_case(ws, epsilon=20.0)
    s = pdbg.connect(str(ws), user=Q.INVESTIGATOR, case=case)
    from importlib.metadata import version

    spec.emit({"header": True, "system": "pdbg", "version": f"pdbg {pdbg.__version__}, opendp {version('opendp')}",
           "load_s": time.perf_counter() - t0})
    n = 0
    for name, sql in spec.PDBG_SQL.items():
        q = {"supported": True, "times_s": [], "answers": []}
        try:
            cols = [spec.QUERIES[name]["key"], *spec.QUERIES[name]["values"]]
            n += 1
            s.sql(sql, epsilon=epsilon * (1 - 1e-6 * n))        # warm-up release (not timed)
            for _ in range(reps):
                n += 1
                t1 = time.perf_counter()
                r = s.sql(sql, epsilon=epsilon * (1 - 1e-6 * n))
                q["times_s"].append(time.perf_counter() - t1)
                assert not r.cached
                q["answers"].append(r.df[cols].to_dict(orient="records"))
            q["query_epsilon"] = epsilon
        except Exception as exc:  # noqa: BLE001
            q = {"supported": False, "reason": f"{type(exc).__name__}: {str(exc)[:200]}"}
        spec.emit({"query": name, **q})
    b = s.budget()
    spec.emit({"done": True, "spent_epsilon": b.spent_epsilon})


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("system", choices=["pdbg", "duckdb"])
    ap.add_argument("rows", type=int)
    ap.add_argument("--epsilon", type=float, default=1.0)
    ap.add_argument("--reps", type=int, default=5)
    args = ap.parse_args()
    if args.system == "duckdb":
        run_duckdb(args.rows, args.reps)
    else:
        run_pdbg(args.rows, args.reps, args.epsilon)


if __name__ == "__main__":
    main()
