"""benchmarks/serve.py reports what issue 13 asks for, in a short run (the 60 s run is test_load.py, slow)."""

from __future__ import annotations

import importlib.util

from .helpers import REPO


def test_serve_benchmark_reports_cached_vs_fresh_p50_and_load_errors(tmp_path, capsys):
    spec = importlib.util.spec_from_file_location("pdbg_bench_serve_quick", REPO / "benchmarks" / "serve.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    r = bench.run(rows=2_000, clients=4, seconds=2, compare_seconds=2, compare_clients=2, workdir=tmp_path,
                  cache_clients=3)
    bench.print_report(r)
    out = capsys.readouterr().out
    assert "cached p50 at 3 clients" in out and "fresh p50" in out and "goal <= 0.5" in out
    assert "4 clients × 2 s, unexpected errors: 0" in out
    assert r["cached_at_30"]["n"] > 0 and r["fresh_at_30"]["n"] > 0 and r["cached_vs_fresh_p50"] > 0
    assert r["unexpected_errors"] == [] and r["clean"]
