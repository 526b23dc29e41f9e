"""Quantile candidates from policy bounds, and the SQL that bins a value into them analytically.

Bins follow QuantileSpec: bin 0 holds v < c[0], bin i holds c[i-1] <= v < c[i], the last bin
v >= c[-1]. Log spacing (policy ``scale: log``) uses floor(ln(v/a)/ln(r)) so DuckDB computes
the bin in one expression; no per-row Python. Values exactly on a candidate may land one bin
off through floating-point rounding, which moves accuracy, never privacy (a row's bin depends
on that row alone).
"""

from __future__ import annotations

import math

N_CANDIDATES = 200


def _fmt(x: float) -> str:
    return repr(float(x))


def candidates(lo: float, hi: float, log: bool, n: int = N_CANDIDATES) -> tuple[tuple[float, ...], str]:
    """(candidates, SQL template with ``{v}`` for the clamped value) for bounds [lo, hi]."""
    lo, hi = float(lo), float(hi)
    if log and hi > 0 and lo >= 0:
        if lo > 0:
            a, prefix = lo, 0
        else:
            a, prefix = hi * 1e-5, 1      # 0 is its own first candidate; log spacing starts at hi/1e5
        m = n - prefix
        step = math.log(hi / a) / (m - 1)
        cands = ([0.0] if prefix else []) + [math.exp(math.log(a) + i * step) for i in range(m)]
        cands[-1] = hi
        inner = f"CAST(floor(ln({{v}} / {_fmt(a)}) / {_fmt(step)}) AS BIGINT) + {1 + prefix}"
        if prefix:
            sql = f"CASE WHEN {{v}} < {_fmt(a)} THEN 1 ELSE LEAST(GREATEST({inner}, 2), {n}) END"
        else:
            sql = f"LEAST(GREATEST({inner}, 1), {n})"
        return tuple(cands), sql
    width = (hi - lo) / (n - 1)
    cands = [lo + i * width for i in range(n)]
    cands[-1] = hi
    sql = f"LEAST(GREATEST(CAST(floor(({{v}} - {_fmt(lo)}) / {_fmt(width)}) AS BIGINT) + 1, 1), {n})"
    return tuple(cands), sql
