"""Small hand-built plans and policies for the dp/ tests (no SQL planner needed)."""

from __future__ import annotations

import bisect
from types import SimpleNamespace

from pdbg.sql.plan import KeySpec, Measure, OutputSpec, Plan, QuantileSpec


def policy(accounting: str = "zcdp", delta: float = 1e-6, partition_delta: float = 1e-8):
    return SimpleNamespace(accounting=accounting, delta=delta, partition_delta=partition_delta)


def plan(keys=(), measures=(), quantiles=(), outputs=(), g=1, k=1) -> Plan:
    return Plan(dataset="requests", table="requests", keys=tuple(keys), measures=tuple(measures),
                quantiles=tuple(quantiles), outputs=tuple(outputs), g=g, k=k, bounded_sql="",
                quantile_sql=None, post_sql=None, normalized="test")


def count_plan(domain=("api", "db", "web"), kind="public", c=1, g=1) -> Plan:
    return plan(keys=[KeySpec("service", kind, tuple(domain) if kind != "private" else None)],
                measures=[Measure("n", "count", c)],
                outputs=[OutputSpec("service", "key"), OutputSpec("errors", "count", ("n",))], g=g, k=c)


def bins_of(values, candidates) -> list[int]:
    """B+1 bin counts as the engine computes them (bin i: c[i-1] <= v < c[i])."""
    out = [0] * (len(candidates) + 1)
    for v in values:
        out[bisect.bisect_right(candidates, v)] += 1
    return out


def quantile_plan(candidates, alphas=(0.5,), domain=("a",), k=1, g=1, bounds=None) -> Plan:
    q = QuantileSpec("q", "latency_ms", tuple(alphas), tuple(candidates), k)
    outs = [OutputSpec("service", "key")]
    outs += [OutputSpec(f"p{int(round(a * 100))}", "quantile", quantile="q", alpha=a, bounds=bounds) for a in alphas]
    return plan(keys=[KeySpec("service", "public", tuple(domain))], quantiles=[q], outputs=outs, g=g, k=k)
