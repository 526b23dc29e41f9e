"""SmartNoise SQL runner (pandas reader), run inside benchmarks/.peers-venv by benchmarks/peers/run.py.

    run_smartnoise.py PARQUET --epsilon 1.0 --reps 5

Prints one JSON object on the last stdout line: load time, per query supported / error /
times / noisy answers (DP outputs only; never exact values). Peak RSS is the process's
ru_maxrss (includes the in-memory SQLite copy the pandas reader makes).

Budget: SmartNoise charges ε per mechanism (an AVG is a SUM and a COUNT), so the ε passed
to it is scaled to make each *query's* total cost equal to --epsilon, as in pdbg.
Contribution bound: max_ids = k*g rows per user (SmartNoise has no per-group bound).
"""

from __future__ import annotations

import argparse
import sys
import time
import warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import spec  # noqa: E402

warnings.filterwarnings("ignore")


def metadata() -> dict:
    lo, hi = spec.LAT_BOUNDS
    return {"requests": {"requests": {"requests": {
        "max_ids": spec.MAX_ROWS_PER_USER,
        "row_privacy": False,
        "sample_max_ids": True,
        "censor_dims": True,
        "user_id": {"type": "string", "private_id": True},
        "ts": {"type": "string"},
        "service": {"type": "string"},
        "region": {"type": "string"},
        "endpoint": {"type": "string"},
        "error_code": {"type": "string"},
        "status": {"type": "int"},
        "latency_ms": {"type": "float", "lower": lo, "upper": hi},
    }}}}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("parquet")
    ap.add_argument("--epsilon", type=float, default=1.0)
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--queries", default=",".join(spec.QUERIES))
    ap.add_argument("--query-budget", type=float, default=120.0,
                    help="stop repeating a query once it has used this many seconds (after one run)")
    ap.add_argument("--k", type=int, default=spec.K_ROWS, help="rows per user and group (policy k)")
    ap.add_argument("--g", type=int, default=spec.G_GROUPS, help="groups per user (policy g)")
    args = ap.parse_args()
    spec.K_ROWS, spec.G_GROUPS, spec.MAX_ROWS_PER_USER = args.k, args.g, args.k * args.g

    import pandas as pd
    import snsql
    from snsql import Privacy
    from snsql.sql.private_reader import PrivateReader

    t0 = time.perf_counter()
    df = pd.read_parquet(args.parquet, columns=["ts", "user_id", "service", "region", "endpoint", "status",
                                                "error_code", "latency_ms"])
    df["ts"] = df["ts"].dt.strftime("%Y-%m-%d %H:%M:%S.%f")      # ISO text sorts like time in SQLite
    meta = metadata()
    probe = snsql.from_df(df, privacy=Privacy(epsilon=1.0, delta=spec.DELTA), metadata=meta)
    load_s = time.perf_counter() - t0
    out = {"system": "smartnoise-sql", "version": _version(), "load_s": load_s, "queries": {}}
    spec.emit({"header": True, "system": out["system"], "version": out["version"], "load_s": load_s})
    for name in args.queries.split(","):
        sql = spec.SMARTNOISE_SQL[name]
        q = {"supported": True, "times_s": [], "answers": []}
        try:
            unit = PrivateReader(probe.reader, meta, privacy=Privacy(epsilon=1.0, delta=spec.DELTA))
            eps_cost, _ = unit.get_privacy_cost(sql)
            scale = args.epsilon / eps_cost                     # make the query's total ε equal --epsilon
            reader = PrivateReader(probe.reader, meta, privacy=Privacy(epsilon=scale, delta=spec.DELTA))
            cost, _ = reader.get_privacy_cost(sql)
            q["query_epsilon"] = cost
            reader.execute(sql)                                  # warm (parsing caches)
            started = time.perf_counter()
            for i in range(args.reps):
                if i >= 1 and time.perf_counter() - started > args.query_budget:
                    break
                t1 = time.perf_counter()
                res = reader.execute(sql)
                q["times_s"].append(time.perf_counter() - t1)
                header, rows = res[0], res[1:]
                q["answers"].append([dict(zip(header, r)) for r in rows])
        except Exception as exc:  # noqa: BLE001 - report what the peer cannot do
            q = {"supported": False, "reason": f"{type(exc).__name__}: {str(exc)[:200]}"}
        out["queries"][name] = q
        spec.emit({"query": name, **q})
    out["maxrss"] = spec.peak_rss()
    spec.emit({"done": True, "maxrss": out["maxrss"]})


def _version() -> str:
    from importlib.metadata import version

    return f"smartnoise-sql {version('smartnoise-sql')}, opendp {version('opendp')}"


if __name__ == "__main__":
    main()
