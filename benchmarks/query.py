"""Query benchmark: pdbg end-to-end DP releases vs plain DuckDB on the same data file, same run.

Goals (issue 4): pdbg <= 2x plain DuckDB (+50 ms planning) for counts, sums and averages;
<= 4x for quantiles and partition selection; peak RSS <= 2 GiB at 10M rows.

Data: the demo generator's synthetic request log (``pdbg.demo.generate.iter_batches``, seed 7)
written as Parquet chunks and ingested through pdbg's real minimizing ingestion
(``pdbg.governance.admin.ingest``: HMAC tokens, redaction, generalization) into a *template*
workspace cached under ``benchmarks/.data/ws-<rows>.template``. Each run copies the template
to a fresh run workspace (governance state, ledger and audit log start empty, so the dataset's
ε/δ cap never runs out across benchmark runs), opens a dedicated case ``BENCH-…`` and has a
second person approve an access grant for it, exactly as an investigator would get one.

Per query we measure, in this process:
  * plain  - the same non-private query (as an investigator would write it without pdbg,
             clamping the averaged metric to the policy bounds) on the *same* data.duckdb,
             read-only, warm, median of --runs runs;
  * pdbg   - ``pdbg.connect(ws).sql(q, epsilon=e)`` end to end, each run a *fresh* release
             (ε varied by a tiny amount per run so the release cache cannot answer), median;
             broken down into planning, bounded SQL (engine) and noise/selection (dp release);
  * floor  - plain DuckDB grouping the same rows by (user, group) only (``FLOORS``): the least
             work any user-level bound needs, so a goal below it shows up as such;
  * cached - the same call repeated (served from the release cache, zero cost), median;
  * rss    - peak RSS of a separate subprocess that runs only that query (plain or pdbg),
             so the numbers are not polluted by the other queries or by the builder.

    python benchmarks/query.py [--rows 1000000,10000000] [--runs 5] [--epsilon 0.1] [--json FILE]
    python benchmarks/query.py --build-only --rows 10000000   # just build/cache the workspaces

Exit code 0 whether or not goals are met (the table says which); non-zero only on errors.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
DATA_DIR = HERE / ".data"
BENCH_POLICY = HERE / "peers" / "requests.bench.policy.yaml"
SEED = 7                      # seeds the synthetic *data*, never DP noise
DATA_FORMAT = 2               # bump to invalidate cached workspaces when the build changes

INVESTIGATOR, APPROVER, ADMIN = "alice", "bob", "carol"

WINDOW = ("2026-11-20 14:00:00", "2026-11-20 15:00:00")

# name -> (kind, pdbg SQL, plain DuckDB SQL for the same non-private question)
QUERIES: dict[str, tuple[str, str, str]] = {
    "count_5xx_by_service": (
        "count",
        "SELECT service, COUNT(*) AS errors FROM requests WHERE status >= 500 GROUP BY service",
        "SELECT service, COUNT(*) AS errors FROM requests WHERE status >= 500 GROUP BY service",
    ),
    "avg_latency_1h_window": (
        "avg",
        "SELECT service, AVG(latency_ms) AS mean_latency FROM requests "
        f"WHERE ts >= TIMESTAMP '{WINDOW[0]}' AND ts < TIMESTAMP '{WINDOW[1]}' GROUP BY service",
        "SELECT service, AVG(LEAST(GREATEST(latency_ms, {lo}), {hi})) AS mean_latency FROM requests "
        f"WHERE ts >= TIMESTAMP '{WINDOW[0]}' AND ts < TIMESTAMP '{WINDOW[1]}' GROUP BY service",
    ),
    "latency_p50_p95_p99_by_service": (
        "quantile",
        "SELECT service, quantile_cont(latency_ms, 0.5) AS p50, quantile_cont(latency_ms, 0.95) AS p95, "
        "quantile_cont(latency_ms, 0.99) AS p99 FROM requests GROUP BY service",
        "SELECT service, quantile_cont(latency_ms, 0.5) AS p50, quantile_cont(latency_ms, 0.95) AS p95, "
        "quantile_cont(latency_ms, 0.99) AS p99 FROM requests GROUP BY service",
    ),
    "distinct_users_5xx_by_region": (
        "count_units",
        "SELECT region, COUNT(DISTINCT user_id) AS users FROM requests WHERE status >= 500 GROUP BY region",
        "SELECT region, COUNT(DISTINCT user_id) AS users FROM requests WHERE status >= 500 GROUP BY region",
    ),
    "count_by_error_code": (
        "selection",
        "SELECT error_code, COUNT(*) AS n FROM requests WHERE error_code IS NOT NULL GROUP BY error_code",
        "SELECT error_code, COUNT(*) AS n FROM requests WHERE error_code IS NOT NULL GROUP BY error_code",
    ),
}
# The least work any user-level DP answer needs, in plain DuckDB on the same file: group the rows
# by (unit, group) — one row per user and group, no clamping, no group cap, no noise, no ledger
# (for quantiles: collect each user's values per group, which a k-rows-per-user bound needs). It
# shows when a goal sits below what bounding each user's contribution costs on this machine.
_W = f"ts >= TIMESTAMP '{WINDOW[0]}' AND ts < TIMESTAMP '{WINDOW[1]}'"
FLOORS: dict[str, str] = {
    "count_5xx_by_service": "SELECT service, COUNT(*) FROM (SELECT _pdbg_unit, service, COUNT(*) AS n FROM requests "
                            "WHERE status >= 500 GROUP BY ALL) GROUP BY service",
    "avg_latency_1h_window": "SELECT service, SUM(n), SUM(s) FROM (SELECT _pdbg_unit, service, COUNT(latency_ms) AS n, "
                             f"SUM(latency_ms) AS s FROM requests WHERE {_W} GROUP BY ALL) GROUP BY service",
    "latency_p50_p95_p99_by_service": "SELECT service, SUM(len(l)) FROM (SELECT _pdbg_unit, service, "
                                      "list(latency_ms) AS l FROM requests GROUP BY ALL) GROUP BY service",
    "distinct_users_5xx_by_region": "SELECT region, COUNT(*) FROM (SELECT DISTINCT _pdbg_unit, region FROM requests "
                                    "WHERE status >= 500) GROUP BY region",
    "count_by_error_code": "SELECT error_code, COUNT(*) FROM (SELECT _pdbg_unit, error_code, COUNT(*) AS n "
                           "FROM requests WHERE error_code IS NOT NULL GROUP BY ALL) GROUP BY error_code",
}
assert FLOORS.keys() == QUERIES.keys()
# kind -> (ratio goal, slack in seconds added to the plain time)
GOALS = {"count": (2.0, 0.050), "avg": (2.0, 0.050), "count_units": (2.0, 0.050),
         "quantile": (4.0, 0.050), "selection": (4.0, 0.050)}
RSS_GOAL_BYTES = 2 * 1024**3


# ---------------------------------------------------------------------------------------------
# data / workspaces


def policy_file() -> Path:
    """The packaged demo policy when it exists (the demo's own bounds), else the benchmark copy."""
    try:
        from pdbg.demo.build import policy_path

        p = policy_path()
        if p.is_file():
            return p
    except Exception:  # noqa: BLE001 - the demo package may not ship a policy yet
        pass
    return BENCH_POLICY


def rows_label(n: int) -> str:
    return f"{n // 1_000_000}M" if n % 1_000_000 == 0 else f"{n // 1000}k" if n % 1000 == 0 else str(n)


def template_dir(n_rows: int) -> Path:
    return DATA_DIR / f"ws-{rows_label(n_rows)}.template"


def _meta_path(n_rows: int) -> Path:
    return DATA_DIR / f"ws-{rows_label(n_rows)}.json"


def _wanted_meta(n_rows: int) -> dict:
    import hashlib

    pol = policy_file()
    return {"rows": n_rows, "seed": SEED, "format": DATA_FORMAT, "policy": pol.name,
            "policy_sha256": hashlib.sha256(pol.read_bytes()).hexdigest()}


def ensure_template(n_rows: int, log=print) -> dict:
    """Build (once) the ingested template workspace for ``n_rows`` and return its metadata."""
    meta_p, tdir = _meta_path(n_rows), template_dir(n_rows)
    want = _wanted_meta(n_rows)
    if meta_p.is_file() and tdir.is_dir():
        meta = json.loads(meta_p.read_text())
        if all(meta.get(k) == v for k, v in want.items()):
            return meta
    for p in (tdir, tdir.parent / f".{tdir.name}.audit-mirror", meta_p):
        if p.is_dir():
            shutil.rmtree(p)
        elif p.exists():
            p.unlink()
    DATA_DIR.mkdir(parents=True, exist_ok=True)

    import pyarrow.parquet as pq

    from pdbg.demo.generate import iter_batches
    from pdbg.governance import admin, principals
    from pdbg.governance.init import init_workspace

    log(f"[build {rows_label(n_rows)}] generating + ingesting {n_rows:,} rows (seed {SEED}); cached afterwards")
    ws = init_workspace(tdir)
    owner = principals.os_actor()
    admin.add_dataset(ws, policy_file(), owner)
    for name, role in ((ADMIN, "admin"), (INVESTIGATOR, "investigator"), (APPROVER, "approver")):
        principals.add_user(ws, owner, name, role)          # tokens are not needed in embedded mode
    with tempfile.TemporaryDirectory(prefix="pdbg-bench-raw-", dir=DATA_DIR) as tmp:
        t0 = time.perf_counter()
        truth, batches = iter_batches(n_rows, seed=SEED)
        files = []
        for i, table in enumerate(batches):
            f = Path(tmp) / f"raw-{i:04d}.parquet"
            pq.write_table(table, f, compression="zstd", row_group_size=256_000)
            files.append(f)
        gen_s = time.perf_counter() - t0
        log(f"[build {rows_label(n_rows)}] generated {len(files)} raw Parquet chunks in {gen_s:.1f} s")
        t0 = time.perf_counter()
        report = admin.ingest(ws, "requests", files, owner, progress=False)
        ingest_s = time.perf_counter() - t0
    log(f"[build {rows_label(n_rows)}] ingested {report.rows_out:,} rows in {ingest_s:.1f} s "
        f"({report.rows_in / ingest_s:,.0f} rows/s)")
    # A Parquet export of the minimized table, for the peer systems (benchmarks/peers/).
    t0 = time.perf_counter()
    export = DATA_DIR / f"requests-{rows_label(n_rows)}.parquet"
    _export_parquet(tdir / "data.duckdb", export)
    meta = dict(want, generate_s=round(gen_s, 2), ingest_s=round(ingest_s, 2), rows_out=report.rows_out,
                ingest_rows_per_s=round(report.rows_in / ingest_s), export_s=round(time.perf_counter() - t0, 2),
                parquet=str(export.relative_to(HERE)),
                data_bytes=(tdir / "data.duckdb").stat().st_size, built=time.strftime("%Y-%m-%dT%H:%M:%S"))
    meta_p.write_text(json.dumps(meta, indent=2, sort_keys=True))
    return meta


def _export_parquet(db: Path, out: Path) -> None:
    import duckdb

    con = duckdb.connect(str(db), read_only=True)
    try:
        con.execute("COPY (SELECT ts, user_id, service, endpoint, region, status, error_code, latency_ms, bytes_out "
                    "FROM requests) TO ? (FORMAT parquet, COMPRESSION zstd)", [str(out)])
    finally:
        con.close()


def fresh_run_workspace(n_rows: int, tag: str = "run") -> Path:
    """Copy the template to a new run workspace (empty ledger/audit history continues from the template).

    The audit mirror location is per workspace: the copy gets its own mirror (a copy of the
    template's), so the run's signed checkpoints never touch the template.
    """
    tdir = template_dir(n_rows)
    run = DATA_DIR / f"ws-{rows_label(n_rows)}.{tag}"
    run_mirror = run.parent / f".{run.name}.audit-mirror"
    for p in (run, run_mirror):
        if p.exists():
            shutil.rmtree(p)
    shutil.copytree(tdir, run)
    cfg_p = run / "workspace.json"
    cfg = json.loads(cfg_p.read_text())
    old_mirror = Path(cfg["audit_mirror"])
    if old_mirror.is_dir():
        shutil.copytree(old_mirror, run_mirror)
    cfg["audit_mirror"] = str(run_mirror.resolve())
    cfg_p.write_text(json.dumps(cfg, indent=2))
    return run


def open_bench_case(ws_path: Path, epsilon: float) -> str:
    """A dedicated benchmark case with an approved grant (requested by alice, approved by bob)."""
    from pdbg.governance import access, cases
    from pdbg.ingest.datasets import get_policy
    from pdbg.policy.workspace import Workspace

    ws = Workspace(ws_path)
    case = f"BENCH-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}"
    cases.open_case(ws, APPROVER, case, "query benchmark", severity="SEV4")
    pol = get_policy(ws, "requests")
    eps = min(epsilon, pol.epsilon.dataset_cap)
    req = access.request(ws, INVESTIGATOR, case, "requests", eps, min(24, pol.grant_max_hours),
                         "benchmarks/query.py: performance of DP releases on synthetic data")
    access.approve(ws, req.id, APPROVER)
    return case


# ---------------------------------------------------------------------------------------------
# measuring


def plain_sql(name: str, policy) -> str:
    lo, hi = policy.columns["latency_ms"].bounds
    return QUERIES[name][2].format(lo=lo, hi=hi)


def time_plain(db: Path, sql: str, runs: int) -> tuple[float, list]:
    import duckdb

    from pdbg.ingest.readers import POOL

    POOL.close(db)   # pdbg's shared instance has a locked config; plain DuckDB opens the file its own way
    con = duckdb.connect(str(db), read_only=True)
    try:
        con.execute(sql).fetchall()                 # warm
        ts = []
        for _ in range(runs):
            t0 = time.perf_counter()
            con.execute(sql).fetchall()
            ts.append(time.perf_counter() - t0)
    finally:
        con.close()
    return statistics.median(ts), ts


class StageTimer:
    """Attributes pdbg's time to pipeline stages by wrapping the functions the session calls.

    Pure measurement in this benchmark process (module attributes are wrapped; no privacy code
    is changed). Stages: plan = Session._plan (policy lookup + parse/check/plan), cost =
    dp.release.cost_of (ε -> ρ accounting, called before reserving), sql = DuckDBEngine.execute
    (bounded SQL), noise = dp.release.release (noise, partition selection, CIs), audit =
    AuditLog.append, budget = the budget view attached to each result; other = the rest
    (grant lookup, data-version read, ledger reserve/commit, cache, post-processing).
    """

    STAGES = ("plan", "cost", "sql", "noise", "audit", "budget")

    def __init__(self) -> None:
        self.acc = dict.fromkeys(self.STAGES, 0.0)
        self.depth = 0

    def _wrap(self, stage: str, fn):
        def inner(*a, **kw):
            t0 = time.perf_counter()
            try:
                return fn(*a, **kw)
            finally:
                self.acc[stage] += time.perf_counter() - t0
        inner.__wrapped__ = fn
        return inner

    def install(self) -> None:
        import pdbg.dp.release as rel
        import pdbg.session as sess
        from pdbg.engine.duckdb import DuckDBEngine
        from pdbg.ledger.audit import AuditLog

        sess.Session._plan = self._wrap("plan", sess.Session._plan)
        rel.cost_of = self._wrap("cost", rel.cost_of)
        rel.release = self._wrap("noise", rel.release)
        DuckDBEngine.execute = self._wrap("sql", DuckDBEngine.execute)
        AuditLog.append = self._wrap("audit", AuditLog.append)
        sess._budget_view = self._wrap("budget", sess._budget_view)

    def reset(self) -> dict:
        out = dict(self.acc)
        self.acc = dict.fromkeys(self.STAGES, 0.0)
        return out


def time_pdbg(session, sql: str, eps: float, runs: int, timer: StageTimer) -> dict:
    """Fresh releases (ε nudged per run so the cache never answers), then cache hits."""
    fresh, stages = [], []
    # warm-up release (imports, OpenDP, first DuckDB open of the file) is not counted
    session.sql(sql, epsilon=round(eps * 0.999, 9))
    timer.reset()
    for i in range(runs):
        e = round(eps * (1.0 - 1e-4 * (i + 1)), 9)
        t0 = time.perf_counter()
        r = session.sql(sql, epsilon=e)
        fresh.append(time.perf_counter() - t0)
        stages.append(timer.reset())
        if r.cached:
            raise RuntimeError("a fresh release was answered by the cache; the benchmark is wrong")
    hits = []
    for _ in range(runs):
        t0 = time.perf_counter()
        r = session.sql(sql, epsilon=round(eps * (1.0 - 1e-4), 9))
        hits.append(time.perf_counter() - t0)
        if not r.cached:
            raise RuntimeError("expected a cache hit")
    timer.reset()
    med = statistics.median(fresh)
    stage_med = {s: statistics.median(x[s] for x in stages) for s in StageTimer.STAGES}
    stage_med["other"] = max(0.0, med - sum(stage_med.values()))
    return {"fresh_s": med, "fresh_all": fresh, "cached_s": statistics.median(hits), "stages": stage_med}


def rss_subprocess(mode: str, ws: Path, name: str, case: str, eps: float) -> int | None:
    """Peak RSS (bytes) of a child that runs one query once (after imports)."""
    cmd = [sys.executable, str(Path(__file__).resolve()), "--_child", mode, str(ws), name, case, repr(eps)]
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=600, check=True)
    except subprocess.CalledProcessError as err:
        sys.stderr.write(f"[rss {mode} {name}] child failed:\n{err.stderr[-2000:]}\n")
        return None
    return json.loads(out.stdout.strip().splitlines()[-1])["maxrss"]


def _child(mode: str, ws: str, name: str, case: str, eps: str) -> None:
    import resource

    if mode == "plain":
        import duckdb

        from pdbg.ingest.datasets import get_policy
        from pdbg.ingest.readers import POOL
        from pdbg.policy.workspace import Workspace

        sql = plain_sql(name, get_policy(Workspace(ws), "requests"))
        POOL.close(Path(ws) / "data.duckdb")   # reading the policy opened pdbg's locked-down instance
        con = duckdb.connect(str(Path(ws) / "data.duckdb"), read_only=True)
        con.execute(sql).fetchall()
        con.close()
    else:
        import pdbg

        s = pdbg.connect(ws, user=INVESTIGATOR, case=case)
        s.sql(QUERIES[name][1], epsilon=float(eps))
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    with open("/proc/self/status") as f:       # VmHWM: not inherited from the (large) parent, unlike ru_maxrss
        peak = next((int(ln.split()[1]) * 1024 for ln in f if ln.startswith("VmHWM:")), peak)
    print(json.dumps({"maxrss": peak}))


# ---------------------------------------------------------------------------------------------
# main


def bench_size(n_rows: int, runs: int, eps: float, log=print, with_rss: bool = True) -> list[dict]:
    import pdbg
    from pdbg.ingest.datasets import get_policy
    from pdbg.policy.workspace import Workspace

    meta = ensure_template(n_rows, log=log)
    ws = fresh_run_workspace(n_rows)
    case = open_bench_case(ws, epsilon=10.0)
    policy = get_policy(Workspace(ws), "requests")
    timer = StageTimer()
    timer.install()
    session = pdbg.connect(str(ws), user=INVESTIGATOR, case=case)
    out = []
    for qi, (name, (kind, q, _)) in enumerate(QUERIES.items()):
        plain_med, plain_all = time_plain(ws / "data.duckdb", plain_sql(name, policy), runs)
        floor_med, _ = time_plain(ws / "data.duckdb", FLOORS[name], runs)
        # a distinct ε per query and size keeps every release fresh
        p = time_pdbg(session, q, eps * (1.0 - 0.01 * qi), runs, timer)
        goal_ratio, slack = GOALS[kind]
        row = {
            "rows": n_rows, "query": name, "kind": kind,
            "plain_ms": plain_med * 1e3, "pdbg_ms": p["fresh_s"] * 1e3, "cached_ms": p["cached_s"] * 1e3,
            "floor_ms": floor_med * 1e3,
            "ratio": p["fresh_s"] / plain_med,
            "goal": f"<= {goal_ratio:g}x +{slack * 1e3:.0f}ms",
            "goal_met": p["fresh_s"] <= goal_ratio * plain_med + slack,
            "stages_ms": {k: v * 1e3 for k, v in p["stages"].items()},
            "plain_all_ms": [t * 1e3 for t in plain_all], "pdbg_all_ms": [t * 1e3 for t in p["fresh_all"]],
        }
        if with_rss:
            row["plain_rss"] = rss_subprocess("plain", ws, name, case, eps)
            row["pdbg_rss"] = rss_subprocess("pdbg", ws, name, case, round(eps * 0.5 * (1.0 - 0.01 * qi), 9))
            row["rss_goal_met"] = (row["pdbg_rss"] or 0) <= RSS_GOAL_BYTES if n_rows >= 10_000_000 else None
        out.append(row)
        log(f"  {rows_label(n_rows):>4} {name:32} plain {row['plain_ms']:8.1f} ms  pdbg {row['pdbg_ms']:8.1f} ms  "
            f"x{row['ratio']:5.2f}  cached {row['cached_ms']:6.1f} ms")
    b = session.budget()
    log(f"  [{rows_label(n_rows)}] benchmark case spent ε={b.spent_epsilon:.3f} of {b.granted_epsilon:g} "
        f"(build: ingest {meta.get('ingest_s')} s)")
    return out


def _mib(b):
    return "-" if b is None else f"{b / 2**20:,.0f}"


def print_table(rows: list[dict]) -> None:
    hdr = (f"{'rows':>4} {'query':32} {'plain ms':>9} {'floor ms':>9} {'pdbg ms':>9} {'ratio':>6} {'goal':>14} {'met':>4} "
           f"{'plan':>6} {'cost':>6} {'sql':>8} {'noise':>6} {'audit':>6} {'budget':>6} {'other':>6} {'cached':>7} "
           f"{'RSS plain':>9} {'RSS pdbg':>9}")
    print(hdr)
    print("-" * len(hdr))
    for r in rows:
        s = r["stages_ms"]
        print(f"{rows_label(r['rows']):>4} {r['query']:32} {r['plain_ms']:9.1f} {r.get('floor_ms', math.nan):9.1f} "
              f"{r['pdbg_ms']:9.1f} {r['ratio']:6.2f} "
              f"{r['goal']:>14} {'yes' if r['goal_met'] else 'NO':>4} {s['plan']:6.1f} {s['cost']:6.1f} {s['sql']:8.1f} "
              f"{s['noise']:6.1f} {s['audit']:6.1f} {s['budget']:6.1f} {s['other']:6.1f} {r['cached_ms']:7.1f} "
              f"{_mib(r.get('plain_rss')):>9} {_mib(r.get('pdbg_rss')):>9}")
    print("floor = plain DuckDB grouping the same rows by (user, group) only, the least work a user-level bound "
          "needs (no clamping, cap, noise or ledger); a goal below floor + pdbg's fixed ~25 ms cannot be met by "
          "bounding at query time on this machine")
    print("times are medians of fresh releases (cached = cache hits); stage columns split the pdbg median: "
          "plan = policy lookup + parse/check/plan, cost = ε->ρ accounting, sql = bounded SQL in DuckDB, "
          "noise = DP release (noise, partition selection, CIs), audit = audit append, budget = budget view, "
          "other = grant, data version, ledger, cache, post-processing; RSS = peak of a child running one query, MiB")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", default="1000000,10000000", help="comma-separated row counts")
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--epsilon", type=float, default=0.1, help="ε per release (nudged per run to avoid the cache)")
    ap.add_argument("--no-rss", action="store_true", help="skip the per-query RSS subprocesses")
    ap.add_argument("--build-only", action="store_true")
    ap.add_argument("--json", metavar="FILE", help="also write the results as JSON")
    ap.add_argument("--_child", nargs=5, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args._child:
        _child(*args._child)
        return 0
    sizes = [int(float(x)) for x in args.rows.split(",") if x.strip()]
    if args.build_only:
        for n in sizes:
            print(json.dumps(ensure_template(n), sort_keys=True))
        return 0
    print(f"load average at start: {os.getloadavg()[0]:.2f} (other processes on the machine skew timings)")
    print(f"pdbg query benchmark: {os.cpu_count()} cores, policy {policy_file().name}, ε≈{args.epsilon} per release, "
          f"{args.runs} runs")
    results = []
    for n in sizes:
        results += bench_size(n, args.runs, args.epsilon, with_rss=not args.no_rss)
    if args.json:
        Path(args.json).write_text(json.dumps({"results": results, "cores": os.cpu_count(),
                                               "date": time.strftime("%Y-%m-%d")}, indent=1, default=float))
    print()
    print_table(results)
    print(f"load average at end: {os.getloadavg()[0]:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
