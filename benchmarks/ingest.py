"""Ingest benchmark: minimizing ingestion vs a plain DuckDB load of the same file, same run.

Goal (issue 2): minimization costs at most 3x a plain load, and 1M rows ingest in < 30 s
on 2 cores. The input is the demo generator's raw request log (messages leak e-mails,
IPs, tokens, cards in a few % of rows) written once to Parquet and to JSON Lines;
"plain" is `CREATE TABLE AS SELECT * FROM read_…` into a fresh data file, "minimized"
is `pdbg.ingest.load.ingest` with the full requests policy (HMAC tokens, redaction with
all detectors, IP/user-agent generalization, allowlist) into a fresh workspace.

    python benchmarks/ingest.py [--rows 1000000] [--format parquet|jsonl|both] [--json]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import duckdb

POLICY = """
dataset: requests
table: requests
privacy_unit: user_id
time_column: ts
columns:
  ts: {class: time, type: timestamp}
  user_id: {class: identifier, transform: tokenize}
  session_id: {class: identifier, transform: tokenize}
  service: {class: dimension}
  endpoint: {class: dimension}
  region: {class: dimension}
  status: {class: dimension, type: integer}
  error_code: {class: dimension}
  latency_ms: {class: metric, type: float, bounds: [0, 10000]}
  bytes_out: {class: metric, type: integer, bounds: [0, 10000000]}
  user_agent: {class: quasi_identifier, transform: generalize, generalize: {kind: user_agent}}
  client_ip: {class: pii, transform: generalize, generalize: {kind: ip_prefix}}
  message: {class: free_text, transform: redact}
"""


def make_input(rows: int, tmp: Path, fmts: list[str]) -> dict[str, Path]:
    from pdbg.demo.generate import generate, write

    t0 = time.perf_counter()
    data = generate(rows, seed=7)  # the benchmark may seed its *data*
    out = {f: write(data.table, tmp / f"requests.{f}", fmt=f) for f in fmts}
    print(f"generated {rows:,} rows in {time.perf_counter() - t0:.1f} s")
    return out


def plain_load(path: Path, fmt: str, tmp: Path) -> float:
    db = tmp / f"plain-{fmt}.duckdb"
    reader = {"parquet": "read_parquet(?)", "jsonl": "read_json(?, format = 'newline_delimited')"}[fmt]
    t0 = time.perf_counter()
    con = duckdb.connect(str(db))
    con.execute(f"CREATE TABLE requests AS SELECT * FROM {reader}", [str(path)])
    con.close()
    return time.perf_counter() - t0


def minimized_load(path: Path, fmt: str, tmp: Path) -> tuple[float, dict]:
    from pdbg.ingest import datasets, load
    from pdbg.policy.model import parse_policy
    from pdbg.policy.workspace import create_layout

    import yaml

    ws = create_layout(tmp / f"ws-{fmt}")
    datasets.register(ws, parse_policy(yaml.safe_load(POLICY)))
    t0 = time.perf_counter()
    report = load.ingest(ws, "requests", [path], progress=False)
    return time.perf_counter() - t0, report.to_dict()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--format", choices=["parquet", "jsonl", "both"], default="both")
    ap.add_argument("--json", action="store_true", help="print one JSON object with the results")
    args = ap.parse_args()
    fmts = ["parquet", "jsonl"] if args.format == "both" else [args.format]
    results = []
    with tempfile.TemporaryDirectory(prefix="pdbg-bench-") as d:
        tmp = Path(d)
        inputs = make_input(args.rows, tmp, fmts)
        for fmt, path in inputs.items():
            plain = plain_load(path, fmt, tmp)
            mini, rep = minimized_load(path, fmt, tmp)
            r = {
                "format": fmt,
                "rows": rep["rows_in"],
                "plain_s": round(plain, 3),
                "plain_rows_per_s": round(rep["rows_in"] / plain),
                "minimized_s": round(mini, 3),
                "minimized_rows_per_s": round(rep["rows_in"] / mini),
                "ratio": round(mini / plain, 2),
                "detectors": rep["detectors"],
                "goal_ratio_le_3": mini / plain <= 3,
                "goal_under_30s": mini < 30 or args.rows < 1_000_000,
            }
            results.append(r)
            print(f"{fmt:8} plain {plain:6.2f} s ({r['plain_rows_per_s']:>10,} rows/s)   "
                  f"minimized {mini:6.2f} s ({r['minimized_rows_per_s']:>10,} rows/s)   ratio {r['ratio']:.2f}x")
            print(f"         detector hits: {rep['detectors']}")
    if args.json:
        print(json.dumps({"results": results}, sort_keys=True))


if __name__ == "__main__":
    main()
