"""Turn each supported aggregate into measures (bounded integer per-group sums) and quantile specs.

Every measure is computed in three steps (rendered by :mod:`pdbg.sql.rewrite`): a per-row input
in ``__base``, a per-(unit, group) aggregate that caps the unit's contribution, and a final SUM.
``c`` is derived from the cap itself, so a bounds mistake can cost accuracy, never privacy.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from sqlglot import exp

from pdbg.policy.model import DatasetPolicy
from pdbg.sql.aggs import QUANTILE_NODES, VARIANCE_NODES, name_of, unwrap
from pdbg.sql.bounds import Bounds, bounds_of
from pdbg.sql.candidates import candidates
from pdbg.sql.flatten import PRIVATE_ALIAS
from pdbg.sql.guard import guard
from pdbg.sql.parse import render
from pdbg.sql.plan import Measure, OutputSpec, QuantileSpec
from pdbg.sql.reject import reject

FLOAT_SCALE = 1000
FIXED_POINT_LIMIT = 2**62 - 1   # a unit's contribution, and each final sum, fit BIGINT and the noise step (|v| < 2^62)


def value_ceiling(policy: DatasetPolicy) -> float:
    """The largest magnitude a summed or averaged value may have: the policy's widest metric bound (at least 1).

    Literals in aggregates (``SUM(1)``, ``CASE … THEN 5 END``) are values the query chose; above
    this ceiling they would widen the clamp beyond anything the data owner allowed.
    """
    widest = [abs(v) for c in policy.columns.values() if c.bounds is not None for v in c.bounds]
    return float(max([1.0, *widest]))


def _num(v: float) -> str:
    if isinstance(v, int) or float(v).is_integer():
        return str(int(v))
    return repr(float(v))


@dataclass
class MeasureDef:
    measure: Measure
    row_sql: str        # per-row input in __base
    unit_sql: str       # per-(unit, group) aggregate of the input column (``{c}`` = column name)


@dataclass
class QuantDef:
    spec: QuantileSpec
    value_sql: str      # clamped value in __base (NULL when the row does not count)
    bin_sql: str        # template with {v}


@dataclass
class Builder:
    policy: DatasetPolicy
    types: dict
    k: int
    defs: list[MeasureDef] = field(default_factory=list)
    quants: list[QuantDef] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    # -- registry -------------------------------------------------------------

    def _measure(self, kind: str, row_sql: str, unit_sql: str, c: int, scale: int = 1) -> str:
        if c > FIXED_POINT_LIMIT:
            # A unit's contribution would not fit the BIGINT it is computed in: the cast would fail on
            # the units whose values reach the bounds, i.e. only when such a unit exists.
            reject("unbounded-value", "the policy's bounds times max_rows_per_unit are too wide for this aggregate "
                   "in exact fixed point", "Clamp the column tighter in the query, e.g. "
                   "VARIANCE(LEAST(GREATEST(x, lo), hi)), or use AVG or a quantile.")
        for d in self.defs:
            if d.measure.kind == kind and d.row_sql == row_sql and d.unit_sql == unit_sql:
                return d.measure.id
        mid = f"__m{len(self.defs)}"
        self.defs.append(MeasureDef(Measure(mid, kind, int(c), int(scale)), row_sql, unit_sql))
        return mid

    def _cond(self, filt, value=None) -> str | None:
        parts = []
        if filt is not None:
            parts.append(f"({render(guard(filt, self.types))})")
        if value is not None:
            parts.append(f"({value}) IS NOT NULL")
        return " AND ".join(parts) if parts else None

    def _indicator(self, cond: str | None) -> str:
        return "1" if cond is None else f"CASE WHEN {cond} THEN 1 ELSE 0 END"

    def _bounded(self, arg, what: str) -> tuple[str, Bounds]:
        b = bounds_of(arg, self.policy)
        if b is None:
            reject("unbounded-value", f"{what}: {render(arg).replace(PRIVATE_ALIAS + '.', '')!r} has no bounds in the dataset policy",
                   "Aggregate a metric column that has policy bounds, a CASE whose branches are literals or "
                   "bounded columns, or LEAST(GREATEST(col, lo), hi) inside the policy bounds; COUNT needs no bounds.")
        ceiling = value_ceiling(self.policy)
        if max(abs(b.lo), abs(b.hi)) > ceiling:
            # A constant the query picks would set the clamp (and the fixed-point range) itself:
            # 1e17 overflows BIGINT only when enough rows match, an exact count by binary search.
            reject("unbounded-value", f"{what}: a constant in {render(arg).replace(PRIVATE_ALIAS + '.', '')!r} exceeds {_num(ceiling)}, the largest "
                   "bound the dataset policy allows", f"Use constants within ±{_num(ceiling)} (e.g. 1 for an "
                   "indicator), or aggregate a metric column directly.")
        return render(guard(arg, self.types)), b

    def _note_clamp(self, arg_sql: str, b: Bounds) -> None:
        note = f"values of {arg_sql.replace('__r.', '')} are clamped to [{_num(b.lo)}, {_num(b.hi)}] (policy bounds)"
        if note not in self.notes:
            self.notes.append(note)

    # -- measures -----------------------------------------------------------

    def count(self, filt, arg=None) -> str:
        # NULL (not 0) for rows that do not count: COUNT of the column is a cheaper aggregate than SUM.
        value = render(guard(arg, self.types)) if arg is not None else None
        cond = self._cond(filt, value)
        row = "1" if cond is None else f"CASE WHEN {cond} THEN 1 END"
        return self._measure("count", row, f"LEAST(COUNT({{c}}), {self.k})", self.k)

    def count_units(self, filt) -> str:
        return self._measure("count_units", self._indicator(self._cond(filt)), "MAX({c})", 1)

    def _clamped(self, v: str, b: Bounds) -> str:
        return f"LEAST(GREATEST({v}, {_num(b.lo)}), {_num(b.hi)})"

    def _fixed(self, v: str, integral: bool, scale: int) -> str:
        return f"CAST({v} AS BIGINT)" if integral and scale == 1 else f"CAST(round(({v}) * {scale}) AS BIGINT)"

    def sum(self, filt, v: str, b: Bounds) -> str:
        scale = 1 if b.integral else FLOAT_SCALE
        cond = self._cond(filt, v)
        row = f"CASE WHEN {cond} THEN {self._fixed(self._clamped(v, b), b.integral, scale)} ELSE 0 END"
        lo_t = math.floor(self.k * min(b.lo, 0) * scale)
        hi_t = math.ceil(self.k * max(b.hi, 0) * scale)
        return self._measure("sum", row, f"LEAST(GREATEST(SUM({{c}}), {lo_t}), {hi_t})", max(-lo_t, hi_t), scale)

    def centered(self, filt, v: str, b: Bounds, power: int) -> tuple[str, float]:
        mid = (b.lo + b.hi) / 2
        half = (b.hi - b.lo) / 2
        integral = b.integral and float(mid).is_integer()
        scale = 1 if integral else FLOAT_SCALE
        cond = self._cond(filt, v)
        centered = f"{self._clamped(v, b)} - {_num(mid)}"
        if power == 1:
            value, lo_t, hi_t = centered, -math.ceil(self.k * half * scale), math.ceil(self.k * half * scale)
        else:
            value, lo_t, hi_t = f"power({centered}, 2)", 0, math.ceil(self.k * half * half * scale)
        # Rows that do not count are NULL here (not 0) so AVG/COUNT see only counted rows.
        # A unit's contribution is its mean times min(rows, k): the same rows the count
        # measure caps at k, so avg = mid + S/N stays an average of values even for units
        # with far more than k rows (clamping the raw total instead would drag it to a bound).
        row = f"CASE WHEN {cond} THEN {self._fixed(value, integral, scale)} END"
        unit = (f"LEAST(GREATEST(COALESCE(CAST(round(AVG({{c}}) * LEAST(COUNT({{c}}), {self.k})) AS BIGINT), 0), "
                f"{lo_t}), {hi_t})")
        mid_id = self._measure("sum", row, unit, max(-lo_t, hi_t), scale)
        return mid_id, mid

    # -- one aggregate → outputs --------------------------------------------

    def outputs(self, name: str, e) -> list[OutputSpec]:
        agg, filt, order = unwrap(e)
        if isinstance(agg, exp.Count):
            arg = agg.this
            if isinstance(arg, exp.Distinct):
                return [OutputSpec(name, "count_units", (self.count_units(filt),), bounds=(0, math.inf))]
            if arg is None or isinstance(arg, exp.Star):
                return [OutputSpec(name, "count", (self.count(filt),), bounds=(0, math.inf))]
            return [OutputSpec(name, "count", (self.count(filt, arg),), bounds=(0, math.inf))]
        if isinstance(agg, exp.Sum):
            v, b = self._bounded(agg.this, "SUM")
            self._note_clamp(v, b)
            return [OutputSpec(name, "sum", (self.sum(filt, v, b),))]
        if isinstance(agg, exp.Avg):
            v, b = self._bounded(agg.this, "AVG")
            self._note_clamp(v, b)
            n = self.count(filt, agg.this)
            s, mid = self.centered(filt, v, b, 1)
            return [OutputSpec(name, "avg", (n, s), mid=mid, bounds=(b.lo, b.hi))]
        if isinstance(agg, VARIANCE_NODES):
            v, b = self._bounded(agg.this, name_of(agg).upper())
            self._note_clamp(v, b)
            n = self.count(filt, agg.this)
            s1, mid = self.centered(filt, v, b, 1)
            s2, _ = self.centered(filt, v, b, 2)
            half = (b.hi - b.lo) / 2
            kind = "stddev" if "std" in name_of(agg) else "variance"
            return [OutputSpec(name, kind, (n, s1, s2), mid=mid,
                               bounds=(0.0, half if kind == "stddev" else half * half))]
        if isinstance(agg, QUANTILE_NODES):
            return self.quantile(name, agg, filt, order)
        reject("unsupported-aggregate", f"aggregate {name_of(agg).upper()}() is not supported",
               "Use COUNT, SUM, AVG, STDDEV, VARIANCE or a quantile.")

    def quantile(self, name, agg, filt, order) -> list[OutputSpec]:
        if order is not None:
            if len(order.expressions) != 1:
                reject("unsupported-aggregate", "WITHIN GROUP needs exactly one ORDER BY column",
                       "Write percentile_cont(0.95) WITHIN GROUP (ORDER BY latency_ms).")
            o = order.expressions[0]
            arg, alpha_node, desc = o.this, agg.this, bool(o.args.get("desc"))
        elif isinstance(agg, exp.Median):
            arg, alpha_node, desc = agg.this, exp.Literal.number(0.5), False
        else:
            arg = agg.this
            alpha_node = agg.args.get("quantile") if isinstance(agg, (exp.ApproxQuantile, exp.Quantile)) \
                else agg.args.get("expression")
            desc = False
        if arg is None or alpha_node is None:
            reject("unsupported-aggregate", f"{name_of(agg)}() needs a column and a quantile",
                   "Write quantile_cont(latency_ms, 0.99) or quantile_cont(latency_ms, [0.5, 0.95, 0.99]).")
        alphas = self._alphas(alpha_node)
        if desc:
            alphas = [1 - a for a in alphas]
        v, b = self._bounded(arg, "quantile")
        self._note_clamp(v, b)
        cond = self._cond(filt, v)
        value_sql = self._clamped(v, b) if cond is None else f"CASE WHEN {cond} THEN {self._clamped(v, b)} END"
        qd = next((q for q in self.quants if q.value_sql == value_sql), None)
        if qd is None:
            cands, bin_sql = candidates(b.lo, b.hi, b.log)
            qd = QuantDef(QuantileSpec(f"__q{len(self.quants)}", v, (), cands, self.k), value_sql, bin_sql)
            self.quants.append(qd)
        new = tuple(a for a in alphas if a not in qd.spec.alphas)
        qd.spec = QuantileSpec(qd.spec.id, qd.spec.column, qd.spec.alphas + new, qd.spec.candidates, qd.spec.k)
        bounds = (float(b.lo), float(b.hi))
        if len(alphas) == 1 and not isinstance(alpha_node, exp.Array):
            return [OutputSpec(name, "quantile", quantile=qd.spec.id, alpha=alphas[0], bounds=bounds)]
        return [OutputSpec(f"{name}_{alpha_suffix(a)}", "quantile", quantile=qd.spec.id, alpha=a, bounds=bounds)
                for a in alphas]

    def _alphas(self, node) -> list[float]:
        items = node.expressions if isinstance(node, (exp.Array, exp.Tuple)) else [node]
        out = []
        for it in items:
            lit = it.this if isinstance(it, exp.Paren) else it
            if not (isinstance(lit, exp.Literal) and not lit.is_string):
                reject("unsupported-aggregate", "quantiles must be number literals in [0, 1]",
                       "Write quantile_cont(x, 0.99) or quantile_cont(x, [0.5, 0.95]).")
            a = float(lit.this)
            if not 0 <= a <= 1:
                reject("unsupported-aggregate", "quantiles must be in [0, 1]", "Use e.g. 0.5, 0.95, 0.99.")
            out.append(a)
        if not out:
            reject("unsupported-aggregate", "the quantile list is empty", "List at least one quantile.")
        return out


def alpha_suffix(a: float) -> str:
    """0.5 → p50, 0.95 → p95, 0.999 → p99_9, 0 → p0, 1 → p100 (the output-name rule for quantile lists)."""
    pct = round(a * 100, 6)
    text = f"{pct:.6f}".rstrip("0").rstrip(".")
    return "p" + text.replace(".", "_")
