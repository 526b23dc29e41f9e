"""OpenDP Polars API runner, run inside benchmarks/.opendp-polars-venv by benchmarks/peers/run.py.

    run_opendp_polars.py PARQUET --epsilon 1.0 --reps 5

User-level DP as OpenDP documents it: ``dp.unit_of(contributions=1, identifier="user_id")``,
then per query ``truncate_per_group(k)`` and ``truncate_num_groups(g, by=[key])`` (the same
k and g as pdbg's policy), public keys through ``with_keys`` (services, regions), private
keys (error_code) by OpenDP's own threshold. One Context per query with the full --epsilon
(δ = spec.DELTA), so every query costs what pdbg's query costs. Time per query includes
measurement building (resolve) and the release; data loading is reported separately.
Prints one JSON object on the last stdout line; answers are DP outputs only.
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


# keep="sample" (OpenDP's default) fails on polars 1.36.1 with "multiple fields with name
# '<key>' found" (pl.struct(struct.hash(), struct) duplicates the field); "first" keeps the
# g smallest keys per user, which is still a valid (data-independent) group bound.
KEEP = "first"


def _epoch_us(text: str) -> int:
    import datetime as dtm

    return int(dtm.datetime.fromisoformat(text).replace(tzinfo=dtm.timezone.utc).timestamp() * 1_000_000)


def build(name, dp, pl, df, epsilon):
    ctx = dp.Context.compositor(
        data=df.lazy(),
        privacy_unit=dp.unit_of(contributions=1, identifier="user_id"),
        privacy_loss=dp.loss_of(epsilon=epsilon, delta=spec.DELTA),
        split_evenly_over=1,
        # max_length: OpenDP's float-sum sensitivity grows with max_length^2 * ulp, so a loose
        # bound (1e9) made the means useless (errors ~1e4-1e5 ms); the table's row count is the
        # tightest bound an analyst would treat as public.
        margins=[dp.polars.Margin(by=[], max_length=df.height)],
    )
    k, g = spec.K_ROWS, spec.G_GROUPS
    q = ctx.query()
    services = pl.DataFrame({"service": list(spec.SERVICES)})
    regions = pl.DataFrame({"region": list(spec.REGIONS)})
    lo, hi = spec.LAT_BOUNDS
    if name == "count_5xx_by_service":
        return (q.filter(pl.col("status") >= 500).truncate_per_group(k, by=["service"])
                .truncate_num_groups(g, by=["service"], keep=KEEP).group_by("service")
                .agg(dp.len().alias("errors")).with_keys(services))
    if name == "avg_latency_1h_window":
        t0, t1 = (_epoch_us(w) for w in spec.WINDOW)
        return (q.filter((pl.col("ts_us") >= t0) & (pl.col("ts_us") < t1)).truncate_per_group(k, by=["service"])
                .truncate_num_groups(g, by=["service"], keep=KEEP).group_by("service")
                .agg(pl.col("latency_ms").fill_null(0.0).dp.mean((lo, hi)).alias("mean_latency"))
                .with_keys(services))
    if name == "latency_p50_p95_p99_by_service":
        cands = spec.Q_CANDIDATES
        return (q.truncate_per_group(k, by=["service"]).truncate_num_groups(g, by=["service"], keep=KEEP)
                .group_by("service")
                .agg(*[pl.col("latency_ms").fill_null(0.0).dp.quantile(a, cands).alias(n)
                       for a, n in zip(spec.ALPHAS, ("p50", "p95", "p99"))])
                .with_keys(services))
    if name == "distinct_users_5xx_by_region":
        return (q.filter(pl.col("status") >= 500).truncate_per_group(1, by=["region"])
                .truncate_num_groups(g, by=["region"], keep=KEEP).group_by("region")
                .agg(dp.len().alias("users")).with_keys(regions))
    if name == "count_by_error_code":
        return (q.filter(pl.col("error_code").is_not_null()).truncate_per_group(k, by=["error_code"])
                .truncate_num_groups(g, by=["error_code"], keep=KEEP).group_by("error_code")
                .agg(dp.len().alias("n")))
    raise KeyError(name)


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

    t0 = time.perf_counter()
    import opendp.prelude as dp
    import polars as pl

    dp.enable_features("contrib")
    import_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    df = pl.read_parquet(args.parquet, columns=["ts", "user_id", "service", "region", "status", "error_code",
                                                "latency_ms"])
    # OpenDP 0.16 rejects datetime literals in filters ("unsupported literal value: DatetimeOwned"):
    # add the timestamp as integer microseconds, a public row-wise transformation.
    df = df.with_columns(pl.col("ts").dt.epoch("us").alias("ts_us")).drop("ts")
    load_s = time.perf_counter() - t0
    out = {"system": "opendp-polars", "version": _version(), "load_s": load_s, "import_s": import_s, "queries": {}}
    spec.emit({"header": True, "system": out["system"], "version": out["version"], "load_s": load_s, "import_s": import_s})
    for name in args.queries.split(","):
        q = {"supported": True, "times_s": [], "resolve_s": [], "answers": []}
        try:
            started = time.perf_counter()
            for i in range(args.reps + 1):                     # first run is warm-up
                if i >= 1 and time.perf_counter() - started > args.query_budget:
                    break
                t1 = time.perf_counter()
                query = build(name, dp, pl, df, args.epsilon)
                m = query.resolve()
                t2 = time.perf_counter()
                res = query.release().collect()
                t3 = time.perf_counter()
                q["times_s"].append(t3 - t1)
                q["resolve_s"].append(t2 - t1)
                q["answers"].append(res.to_dicts())
                del m
            q["warmup_s"] = q["times_s"][0]
            if len(q["times_s"]) > 1:        # keep the warm-up only when the budget allowed nothing else
                q["times_s"], q["resolve_s"], q["answers"] = q["times_s"][1:], q["resolve_s"][1:], q["answers"][1:]
            q["query_epsilon"] = args.epsilon
        except Exception as exc:  # noqa: BLE001 - report what the peer cannot do
            q = {"supported": False, "reason": f"{type(exc).__name__}: {str(exc)[:300]}"}
        out["queries"][name] = q
        spec.emit({"query": name, **q})
    out["maxrss"] = spec.peak_rss()
    spec.emit({"done": True, "maxrss": out["maxrss"]})


def _version() -> str:
    from importlib.metadata import version

    return f"opendp {version('opendp')}, polars {version('polars')}"


if __name__ == "__main__":
    main()
