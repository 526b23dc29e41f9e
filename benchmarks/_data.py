"""Cached raw demo files for the benchmarks (1M and 10M rows of the `requests` log).

Why: generating 10M rows takes ~20 s and every benchmark wants the same input, so files are
written once under ``benchmarks/.data/`` (gitignored) and reused. Generation is chunked by time
(:func:`pdbg.demo.generate.iter_batches`), so memory stays bounded by one ~1M-row chunk no matter
how large the file, and the file holds exactly the rows ``generate(n_rows, seed=seed)`` would.
Seeding the *data* is fine here; DP noise is never seeded.

    from benchmarks._data import demo_parquet
    path, truth = demo_parquet(1_000_000)

or ``python benchmarks/_data.py 1000000 10000000`` to prebuild.
"""

from __future__ import annotations

import json
import os
import sys
import time
from datetime import datetime
from pathlib import Path

DATA_DIR = Path(__file__).resolve().parent / ".data"
SEED = 7
FORMAT_VERSION = 1          # bump when the generator changes shape, to invalidate caches


def _label(n: int) -> str:
    return f"{n // 1_000_000}M" if n % 1_000_000 == 0 else f"{n // 1000}k" if n % 1000 == 0 else str(n)


def demo_parquet(n_rows: int, *, seed: int = SEED, data_dir: Path = DATA_DIR, log=print) -> tuple[Path, dict]:
    """Path of a Parquet file with ``n_rows`` raw demo rows (built on first use) and its truth.

    The truth (injected incident) is stored next to the file as JSON: service, region, start, end
    (ISO, UTC), error_rate, latency_factor.
    """
    import pyarrow.parquet as pq

    from pdbg.demo.generate import SCHEMA, iter_batches

    data_dir.mkdir(parents=True, exist_ok=True)
    name = f"requests-raw-{_label(n_rows)}-s{seed}-v{FORMAT_VERSION}"
    path, meta_path = data_dir / f"{name}.parquet", data_dir / f"{name}.json"
    if path.is_file() and meta_path.is_file():
        return path, json.loads(meta_path.read_text())
    t0 = time.perf_counter()
    truth, batches = iter_batches(n_rows, seed=seed)
    tmp = path.with_suffix(f".tmp-{os.getpid()}")
    try:
        with pq.ParquetWriter(tmp, SCHEMA, compression="zstd") as w:
            for table in batches:
                w.write_table(table, row_group_size=256_000)
        os.replace(tmp, path)                    # atomic: a crash never leaves a half file cached
    finally:
        tmp.unlink(missing_ok=True)
    meta = dict(
        n_rows=n_rows, seed=seed, service=truth.service, region=truth.region,
        start=truth.start.isoformat(), end=truth.end.isoformat(),
        error_rate=truth.error_rate, latency_factor=truth.latency_factor,
        generate_s=round(time.perf_counter() - t0, 2), created=datetime.now().isoformat(timespec="seconds"),
    )
    meta_path.write_text(json.dumps(meta, indent=1))
    if log:
        log(f"generated {n_rows:,} demo rows in {meta['generate_s']} s -> {path}")
    return path, meta


if __name__ == "__main__":
    for arg in sys.argv[1:] or ["1000000", "10000000"]:
        demo_parquet(int(arg))
