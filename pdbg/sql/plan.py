"""The plan of a DP query: what the engine computes exactly and what dp/ releases noisily.

A :class:`Plan` is pure data (no sqlglot objects), so dp/, engine/ and session.py
can use it without importing sqlglot. It is produced by ``pdbg.sql.plan_query``.

Contribution model (DESIGN.md section 2): after bounding, one privacy unit
contributes to at most ``g`` groups, and to each group's measure ``m`` by at most
``m.c`` (an absolute bound, in the measure's integer units). From that dp/
derives L1 = g·c and L2 = sqrt(g)·c for every measure.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

KeyKind = Literal["public", "time", "private"]
MeasureKind = Literal["count", "sum", "count_units"]
OutputKind = Literal["key", "count", "count_units", "sum", "avg", "variance", "stddev", "quantile"]


@dataclass(frozen=True)
class KeySpec:
    """One GROUP BY key. ``domain`` lists every group released when the key is public/time."""

    name: str                       # output column name (also the column name in bounded_sql's result)
    kind: KeyKind
    domain: tuple[Any, ...] | None  # None for private keys (partition selection decides)


@dataclass(frozen=True)
class Measure:
    """One exact per-group aggregate computed by bounded_sql (an integer column named ``id``).

    kind: count (rows, capped at k per unit and group), count_units (distinct units,
    1 per unit and group), sum (fixed-point integer sum of clamped values:
    true value = column / scale).
    c: the most one unit can change this measure in one group, in integer units.
    """

    id: str
    kind: MeasureKind
    c: int
    scale: int = 1


@dataclass(frozen=True)
class QuantileSpec:
    """Quantiles of one clamped column, per group, from per-bin counts.

    quantile_sql returns, per group, the count of rows (≤ k per unit and group) in
    each bin ``b`` (0..len(candidates)), where bin 0 holds values < candidates[0],
    bin i holds candidates[i-1] <= v < candidates[i], and the last bin values >= the last
    candidate. Column names: key columns, ``__qid`` (= id), ``__bin``, ``__n``.
    """

    id: str
    column: str
    alphas: tuple[float, ...]
    candidates: tuple[float, ...]   # sorted ascending, from policy bounds (never from data)
    k: int                          # rows per unit and group that reach the counts


@dataclass(frozen=True)
class OutputSpec:
    """How one output column is derived from measures or quantiles.

    key: copied from the key column; count/count_units/sum: the measure itself;
    avg: mid + sum(centered)/count; variance/stddev: from count, centered sum,
    centered sum of squares; quantile: one alpha of a QuantileSpec.
    ``bounds`` (value range of the output) lets dp/ clamp post-processed results.
    """

    name: str
    kind: OutputKind
    measures: tuple[str, ...] = ()
    quantile: str | None = None
    alpha: float | None = None
    mid: float = 0.0
    bounds: tuple[float, float] | None = None
    hidden: bool = False            # needed by HAVING/ORDER BY only; dropped after post_sql


@dataclass(frozen=True)
class Plan:
    dataset: str
    table: str
    keys: tuple[KeySpec, ...]
    measures: tuple[Measure, ...]
    quantiles: tuple[QuantileSpec, ...]
    outputs: tuple[OutputSpec, ...]
    g: int                          # groups per unit after bounding (min(policy g, |domain|), 1 without GROUP BY)
    k: int                          # rows per unit and group
    bounded_sql: str                # uses $salt; result: key columns + measure ids + __units (no rows when
                                    # the plan has only quantiles and public keys: nothing reads it)
    quantile_sql: str | None        # uses $salt; see QuantileSpec
    post_sql: str | None            # over the DataFrame `released` (HAVING / ORDER BY / LIMIT)
    normalized: str                 # canonical form of the query after parameter binding (cache key)
    notes: tuple[str, ...] = field(default=())   # clamping / bounding caveats shown to the user

    @property
    def needs_selection(self) -> bool:
        return any(k.kind == "private" for k in self.keys)
