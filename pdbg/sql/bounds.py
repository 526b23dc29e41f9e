"""Value bounds of an aggregate input, from the policy only (never from data).

Supported inputs: a column with policy ``bounds``; a literal; CASE whose branches are
bounded (literals, bounded columns, NULL); LEAST(GREATEST(x, a), b) which may only
tighten x's policy bounds. Anything else has no bound and is refused by the planner.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlglot import exp

from pdbg.policy.model import ColumnType, DatasetPolicy
from pdbg.sql.flatten import PRIVATE_ALIAS


@dataclass(frozen=True)
class Bounds:
    lo: float
    hi: float
    integral: bool       # every possible value is an integer (fixed-point scale 1 is exact)
    log: bool = False    # policy says the column is log-scaled (latency-like)

    def union(self, other: "Bounds") -> "Bounds":
        return Bounds(min(self.lo, other.lo), max(self.hi, other.hi), self.integral and other.integral,
                      self.log and other.log)


def _number(e):
    if isinstance(e, exp.Paren):
        return _number(e.this)
    if isinstance(e, exp.Neg):
        v = _number(e.this)
        return None if v is None else -v
    if isinstance(e, exp.Literal) and not e.is_string:
        try:
            v = float(e.this)
        except ValueError:
            return None
        return int(v) if v.is_integer() and "." not in e.this and "e" not in e.this.lower() else v
    return None


def _is_int(v) -> bool:
    return isinstance(v, int) or float(v).is_integer()


def bounds_of(e, policy: DatasetPolicy) -> Bounds | None:
    if isinstance(e, exp.Paren):
        return bounds_of(e.this, policy)
    if isinstance(e, (exp.Cast, exp.TryCast)) and e.to.is_type("double", "float", "bigint", "int", "decimal"):
        return bounds_of(e.this, policy)
    v = _number(e)
    if v is not None:
        return Bounds(v, v, isinstance(v, int))
    if isinstance(e, exp.Column) and e.table == PRIVATE_ALIAS:
        col = policy.columns.get(e.name)
        if col is None or col.bounds is None:
            return None
        lo, hi = col.bounds
        integral = col.type == ColumnType.integer and _is_int(lo) and _is_int(hi)
        if integral:
            lo, hi = int(lo), int(hi)
        return Bounds(lo, hi, integral, col.scale == "log")
    if isinstance(e, exp.Case) and e.this is None:
        branches = [i.args["true"] for i in e.args.get("ifs") or []]
        if e.args.get("default") is not None:
            branches.append(e.args["default"])
        out = None
        for b in branches:
            if isinstance(b, exp.Null):
                continue
            bb = bounds_of(b, policy)
            if bb is None:
                return None
            out = bb if out is None else out.union(bb)
        return out
    if isinstance(e, (exp.Least, exp.Greatest)) and len(e.expressions) == 1:
        inner, limit = e.this, _number(e.expressions[0])
        if limit is None:
            inner, limit = e.expressions[0], _number(e.this)
        if limit is None:
            return None
        b = bounds_of(inner, policy)
        if b is None:
            return None
        if isinstance(e, exp.Least):
            hi = min(b.hi, limit)
            lo = min(b.lo, hi)
        else:
            lo = max(b.lo, limit)
            hi = max(b.hi, lo)
        if lo >= hi:
            return None
        return Bounds(lo, hi, b.integral and _is_int(limit), b.log)
    return None
