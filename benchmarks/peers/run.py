"""Peers side by side (issue 7, item 3): pdbg, plain DuckDB, SmartNoise SQL and OpenDP Polars
on the same five investigation queries and the same 1M / 10M-row data, in one run.

    bash benchmarks/peers/setup.sh                     # once: the two peer venvs
    .venv/bin/python benchmarks/peers/run.py [--rows 1000000,10000000] [--epsilon 1.0] [--reps 5]

Every system runs as a subprocess with a wall-clock timeout (--timeout per query, plus load)
and a memory guard (the driver polls the child's RSS and kills it above --mem-limit-gib).
SmartNoise SQL at a size is skipped, with a note, when its measured load time or peak memory
at the previous size, scaled by the row ratio, would exceed the timeout or the memory limit.

Columns: ms = median time per query (fresh release; peers: measurement building + release,
data loading excluded and shown in the load line); ratio = system / plain DuckDB (same run);
RSS = peak resident memory of the system's process (includes loading the data); err =
median absolute error against the exact answer over reps x groups x outputs (groups the
system released; `rel` = groups released / groups in the exact answer). Exact values are
never printed.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))
import spec  # noqa: E402

PY_MAIN = ROOT / ".venv" / "bin" / "python"
PY_SN = HERE.parent / ".peers-venv" / "bin" / "python"
PY_ODP = HERE.parent / ".opendp-polars-venv" / "bin" / "python"


def run_child(cmd: list[str], timeout: float, mem_limit: int) -> dict:
    """Run a runner; collect its JSON lines; kill it on timeout or when RSS exceeds mem_limit."""
    import psutil

    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=str(ROOT))
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(proc.stdout), daemon=True)
    reader.start()
    err_chunks: list[str] = []
    threading.Thread(target=lambda: err_chunks.extend(proc.stderr), daemon=True).start()
    peak, killed = 0, None
    ps = psutil.Process(proc.pid)
    while proc.poll() is None:
        try:
            rss = ps.memory_info().rss + sum(c.memory_info().rss for c in ps.children(recursive=True))
            peak = max(peak, rss)
        except psutil.Error:
            pass
        if peak > mem_limit:
            killed = f"killed: RSS above {mem_limit / 2**30:.0f} GiB"
        elif time.perf_counter() - t0 > timeout:
            killed = f"killed: timeout after {timeout:.0f} s"
        if killed:
            proc.kill()
            break
        time.sleep(0.1)
    proc.wait()
    reader.join(timeout=5)
    out = {"header": {}, "queries": {}, "done": None, "killed": killed, "wall_s": time.perf_counter() - t0,
           "polled_peak": peak, "rc": proc.returncode}
    for line in lines:
        try:
            obj = json.loads(line)
        except json.JSONDecodeError:
            continue
        peak = max(peak, obj.get("maxrss_so_far", 0), obj.get("maxrss", 0))
        if obj.get("header"):
            out["header"] = obj
        elif obj.get("done"):
            out["done"] = obj
        elif "query" in obj:
            out["queries"][obj["query"]] = obj
    out["peak_rss"] = peak
    if proc.returncode not in (0, None) and not killed:
        out["error"] = "".join(err_chunks)[-1500:]
    return out


# ---------------------------------------------------------------------------------------------
# accuracy


def _num(v):
    try:
        f = float(v)
    except (TypeError, ValueError):
        return None
    return f if f == f else None


def errors(name: str, exact: list[dict], answers: list[list[dict]]) -> dict:
    """Median |noisy - exact| over reps x released groups x value columns, and the released share."""
    key, vals = spec.QUERIES[name]["key"], spec.QUERIES[name]["values"]
    truth = {str(r[key]): r for r in exact}
    errs, released = [], []
    for ans in answers:
        got = {str(r.get(key)): r for r in ans}
        released.append(sum(1 for k in truth if k in got) / max(1, len(truth)))
        for k, t in truth.items():
            if k not in got:
                continue
            for v in vals:
                a, b = _num(got[k].get(v)), _num(t.get(v))
                if a is not None and b is not None:
                    errs.append(abs(a - b))
    mean = statistics.fmean(errs) if errs else None
    se = statistics.stdev(errs) / len(errs) ** 0.5 if len(errs) > 1 else None
    return {"median_abs_err": statistics.median(errs) if errs else None, "mean_abs_err": mean, "se_abs_err": se,
            "released": statistics.mean(released) if released else None, "groups": len(truth)}


# ---------------------------------------------------------------------------------------------


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", default="1000000,10000000")
    ap.add_argument("--epsilon", type=float, default=1.0, help="ε of every query, every system")
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--timeout", type=float, default=300.0, help="seconds per query per system (plus load)")
    ap.add_argument("--mem-limit-gib", type=float, default=None,
                    help="kill a system above this RSS (default: 70%% of RAM)")
    ap.add_argument("--systems", default="duckdb,pdbg,pdbg-pure,smartnoise,opendp-polars",
                    help="pdbg = the demo policy (zCDP: each release (ε, δ)-DP, Gaussian); pdbg-pure = the same "
                         "policy with pure accounting (ε-DP, discrete Laplace), the guarantee the peers' noise gives")
    ap.add_argument("--json", metavar="FILE")
    args = ap.parse_args()

    import psutil

    import query as Q

    total = psutil.virtual_memory().total
    mem_limit = int(args.mem_limit_gib * 2**30) if args.mem_limit_gib else int(total * 0.7)
    sizes = [int(float(x)) for x in args.rows.split(",") if x.strip()]
    systems = args.systems.split(",")
    nq = len(spec.QUERIES)
    print("contribution bounds: the policy's k (rows per user and group) and g (groups per user) for pdbg and "
          "OpenDP (truncate_per_group / truncate_num_groups); SmartNoise has only a per-user row bound: max_ids = k*g")
    print(f"peers benchmark: {os.cpu_count()} cores, {total / 2**30:.0f} GiB RAM, ε={args.epsilon} per query "
          f"(δ={spec.DELTA}), {args.reps} reps, timeout {args.timeout:.0f} s/query, memory guard "
          f"{mem_limit / 2**30:.1f} GiB, load average {os.getloadavg()[0]:.2f}", flush=True)
    for py, what in ((PY_SN, "smartnoise"), (PY_ODP, "opendp-polars")):
        if what in systems and not py.exists():
            print(f"  {what}: venv missing ({py.parent.parent.name}); run `bash benchmarks/peers/setup.sh`")
            systems.remove(what)

    results: dict = {}
    sn_prev = None      # (rows, load_s, peak) of the last SmartNoise run, to predict the next
    for n in sizes:
        Q.ensure_template(n)
        from pdbg.ingest.datasets import get_policy
        from pdbg.policy.workspace import Workspace

        pol = get_policy(Workspace(Q.template_dir(n)), "requests")
        kg = ["--k", str(pol.max_rows_per_unit), "--g", str(pol.max_groups_per_unit)]
        parquet = str(Q.DATA_DIR / f"requests-{Q.rows_label(n)}.parquet")
        res_n = results.setdefault(n, {})
        for system in systems:
            common = ["--reps", str(args.reps)]
            if system == "duckdb":
                cmd = [str(PY_MAIN), str(HERE / "run_local.py"), "duckdb", str(n), *common]
            elif system in ("pdbg", "pdbg-pure"):
                acc = ["--accounting", "pure"] if system == "pdbg-pure" else []
                cmd = [str(PY_MAIN), str(HERE / "run_local.py"), "pdbg", str(n), "--epsilon", str(args.epsilon),
                       *acc, *common]
            elif system == "smartnoise":
                if sn_prev is not None:
                    scale = n / sn_prev[0]
                    pred_load, pred_mem = sn_prev[1] * scale, sn_prev[2] * scale
                    if pred_load > args.timeout or pred_mem > mem_limit:
                        res_n[system] = {"skipped": (
                            f"skipped: scaling the {Q.rows_label(sn_prev[0])} run predicts ~{pred_load:.0f} s to load "
                            f"(pandas -> in-memory SQLite) and ~{pred_mem / 2**30:.1f} GiB peak; limits "
                            f"{args.timeout:.0f} s / {mem_limit / 2**30:.1f} GiB")}
                        print(f"  {Q.rows_label(n)} smartnoise: {res_n[system]['skipped']}", flush=True)
                        continue
                cmd = [str(PY_SN), str(HERE / "run_smartnoise.py"), parquet, "--epsilon", str(args.epsilon),
                       "--query-budget", str(args.timeout / 2), *kg, *common]
            elif system == "opendp-polars":
                cmd = [str(PY_ODP), str(HERE / "run_opendp_polars.py"), parquet, "--epsilon", str(args.epsilon),
                       "--query-budget", str(args.timeout / 2), *kg, *common]
            else:
                raise SystemExit(f"unknown system {system}")
            timeout = args.timeout * nq + args.timeout        # per query, plus one for loading
            print(f"  {Q.rows_label(n)} {system}: running (timeout {timeout:.0f} s)...", flush=True)
            r = run_child(cmd, timeout, mem_limit)
            res_n[system] = r
            if system == "smartnoise" and r.get("header"):
                sn_prev = (n, r["header"].get("load_s", 0.0), r["peak_rss"])
            note = r.get("killed") or (r.get("error", "").strip().splitlines() or [""])[-1]
            print(f"  {Q.rows_label(n)} {system}: {r['wall_s']:.0f} s wall, load {r['header'].get('load_s', 0):.1f} s, "
                  f"peak {r['peak_rss'] / 2**20:,.0f} MiB {note}", flush=True)

    rows_out = summarize(results, systems, sizes)
    print_table(rows_out, results, sizes, systems)
    print_verdict(rows_out, sizes)
    if args.json:
        Path(args.json).write_text(json.dumps({"rows": rows_out, "epsilon": args.epsilon, "reps": args.reps,
                                               "cores": os.cpu_count()}, indent=1, default=str))
    return 0


def summarize(results: dict, systems: list[str], sizes: list[int]) -> list[dict]:
    out = []
    for n in sizes:
        plain = results[n].get("duckdb", {}).get("queries", {})
        for name in spec.QUERIES:
            p = plain.get(name, {})
            plain_ms = statistics.median(p["times_s"]) * 1e3 if p.get("times_s") else None
            exact = p.get("exact") or []
            for system in systems:
                r = results[n].get(system, {})
                row = {"rows": n, "query": name, "system": system, "peak_rss": r.get("peak_rss")}
                if "skipped" in r:
                    row["status"] = r["skipped"]
                    out.append(row)
                    continue
                q = r.get("queries", {}).get(name)
                if q is None:
                    row["status"] = r.get("killed") or "did not finish" if r else "not run"
                elif not q.get("supported"):
                    row["status"] = "unsupported: " + q.get("reason", "")[:120]
                else:
                    ms = statistics.median(q["times_s"]) * 1e3
                    row.update(status="ok", ms=ms, ratio=(ms / plain_ms) if plain_ms else None, runs=len(q["times_s"]))
                    if system != "duckdb" and exact:
                        row.update(errors(name, exact, q.get("answers", [])))
                out.append(row)
    return out


def print_table(rows: list[dict], results: dict, sizes: list[int], systems: list[str]) -> None:
    import query as Q

    print()
    hdr = (f"{'rows':>4} {'query':31} {'system':14} {'ms':>10} {'ratio':>8} {'RSS MiB':>8} {'med |err|':>10} "
           f"{'rel':>5}  note")
    print(hdr)
    print("-" * len(hdr))
    for r in rows:
        ms = f"{r['ms']:10.1f}" if "ms" in r else f"{'-':>10}"
        ratio = f"{r['ratio']:8.1f}" if r.get("ratio") is not None else f"{'-':>8}"
        rss = f"{r['peak_rss'] / 2**20:8,.0f}" if r.get("peak_rss") else f"{'-':>8}"
        err = f"{r['median_abs_err']:10.3g}" if r.get("median_abs_err") is not None else f"{'-':>10}"
        rel = (f"{r['released'] * 100:4.0f}%" if r.get("released") is not None else f"{'-':>5}")
        note = "" if r.get("status") == "ok" else r.get("status", "")
        if r.get("status") == "ok" and r.get("runs", 0) < 2 and r["system"] != "duckdb":
            note = f"{r['runs']} run(s) within the time budget"
        print(f"{Q.rows_label(r['rows']):>4} {r['query']:31} {r['system']:14} {ms} {ratio} {rss} {err} {rel}  {note}")
    print()
    for n in sizes:
        for s in systems:
            h = results[n].get(s, {}).get("header") or {}
            if h:
                print(f"{Q.rows_label(n):>4} {s:14} load {h.get('load_s', 0):7.1f} s   {h.get('version', '')}")
    print("ms = median per query (fresh release; peers: building the measurement + release, data load excluded); "
          "ratio = / plain DuckDB in this run; RSS = peak of the system's process incl. its data; "
          "med |err| = median absolute error vs the exact answer over reps x released groups x outputs "
          "(counts in rows/users, averages and quantiles in ms); rel = share of true groups released.")


PEERS = ("smartnoise", "opendp-polars")


def _accuracy_verdict(mine: dict, peer: dict) -> str:
    """Compare mean absolute errors with their standard errors (reps x groups x outputs draws).

    "no worse" when pdbg's mean error is below the peer's, or above it by less than two standard
    errors of the difference (the same mechanism at the same ε differs only by sampling noise);
    "WORSE" otherwise. Medians are shown too; they are what the table prints.
    """
    a, b = mine["mean_abs_err"], peer["mean_abs_err"]
    se = ((mine.get("se_abs_err") or 0.0) ** 2 + (peer.get("se_abs_err") or 0.0) ** 2) ** 0.5
    word = "better" if a < b else "no worse (within noise)" if a - b <= 2 * se else "WORSE"
    return (f"{word}: mean |err| {a:.3g} vs {b:.3g} (2·SE {2 * se:.2g}), "
            f"median {mine['median_abs_err']:.3g} vs {peer['median_abs_err']:.3g}")


def print_verdict(rows: list[dict], sizes: list[int]) -> None:
    """Issue 7's goal per query: pdbg faster than every peer it shares the query with, and no
    less accurate at equal ε (pdbg-pure against the peers, whose noise is pure ε-DP)."""
    import query as Q

    ok = {(r["rows"], r["query"], r["system"]): r for r in rows if r.get("status") == "ok"}
    print("goal: faster than every peer on every shared query; no less accurate at equal ε (pdbg-pure, whose noise "
          "is pure ε-DP like the peers'), judged on mean |error| ± 2 standard errors")
    for n in sizes:
        for name in spec.QUERIES:
            parts = []
            for peer in PEERS:
                p = ok.get((n, name, peer))
                if p is None:
                    continue
                for mine in ("pdbg", "pdbg-pure"):
                    m = ok.get((n, name, mine))
                    if m is not None:
                        parts.append(f"{mine} {'faster' if m['ms'] < p['ms'] else 'SLOWER'} than {peer} "
                                     f"({m['ms']:.0f} vs {p['ms']:.0f} ms)")
                m = ok.get((n, name, "pdbg-pure"))
                if m is not None and m.get("mean_abs_err") is not None and p.get("mean_abs_err") is not None:
                    parts.append(f"error vs {peer}: {_accuracy_verdict(m, p)}")
            if parts:
                print(f"  {Q.rows_label(n):>4} {name}: " + "; ".join(parts))


if __name__ == "__main__":
    sys.exit(main())
