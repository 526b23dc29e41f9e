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


def use_accounting(ws, accounting: str, dataset_cap: float) -> None:
    """Re-register the run workspace's policy with another accounting (same bounds, keys, δ).

    ``pure`` makes pdbg's releases pure ε-DP (discrete Laplace), the guarantee SmartNoise and
    OpenDP Polars give their noise at the same ε; ``zcdp`` (the demo policy's default) makes each
    release (ε, δ)-DP through a Gaussian, which composes better over many queries but is less
    accurate for one query at small δ. Comparing accuracy "at equal ε" needs the same definition.
    Pure accounting composes by adding ε, so the variant's dataset cap is raised to what the
    benchmark's releases add up to (``dataset_cap``); nothing else changes.
    """
    import yaml

    from pdbg.governance import admin, principals
    from pdbg.policy.workspace import Workspace

    import query as Q

    doc = yaml.safe_load(Q.policy_file().read_text())   # the policy the template was built with
    if doc.get("accounting", "zcdp") == accounting:
        return
    doc["accounting"] = accounting
    doc["epsilon"]["dataset_cap"] = max(float(doc["epsilon"]["dataset_cap"]), dataset_cap)
    variant = Path(ws).parent / f".{Path(ws).name}.{accounting}.policy.yaml"
    variant.write_text(yaml.safe_dump(doc, sort_keys=False))
    admin.add_dataset(Workspace(ws), variant, principals.os_actor(), replace=True)


def run_pdbg(rows: int, reps: int, epsilon: float, accounting: str | None = None) -> None:
    import pdbg
    import query as Q

    Q.ensure_template(rows)
    t0 = time.perf_counter()
    ws = Q.fresh_run_workspace(rows, tag=f"peers-{accounting or 'policy'}")
    need = max(20.0, epsilon * (reps + 1) * len(spec.PDBG_SQL) * 1.01)   # what the run spends, under pure
    if accounting:
        use_accounting(ws, accounting, need)
    case = Q.open_bench_case(ws, epsilon=need)
    s = pdbg.connect(str(ws), user=Q.INVESTIGATOR, case=case)
    from importlib.metadata import version

    from pdbg.ingest.datasets import get_policy
    from pdbg.policy.workspace import Workspace

    acc = get_policy(Workspace(ws), "requests").accounting
    spec.emit({"header": True, "system": "pdbg", "accounting": str(getattr(acc, "value", acc)),
               "version": f"pdbg {pdbg.__version__}, opendp {version('opendp')}",
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
    ap.add_argument("--accounting", choices=["zcdp", "pure"], default=None,
                    help="pdbg: re-register the policy with this accounting (default: the policy's own)")
    args = ap.parse_args()
    if args.system == "duckdb":
        run_duckdb(args.rows, args.reps)
    else:
        run_pdbg(args.rows, args.reps, args.epsilon, args.accounting)


if __name__ == "__main__":
    main()
