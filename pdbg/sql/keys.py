"""Group keys: public (a domain known without looking at data), time (buckets of a bounded window) or private.

Public domains come from the policy (column ``domain``, public tables) or from the query itself
(CASE with literal branches, boolean predicates). Time buckets are public only when WHERE bounds
the time column on both sides with literals: then every bucket start is computable in advance.
Everything else is private, and released groups are chosen by DP partition selection.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass

from sqlglot import exp

from pdbg.policy.model import ColumnType, DatasetPolicy
from pdbg.sql.flatten import PRIVATE_ALIAS, FlatQuery
from pdbg.sql.reject import reject

_US = dt.timedelta(microseconds=1)
_TD_ORIGIN = dt.datetime(2000, 1, 3)      # DuckDB time_bucket origin for day/hour/minute-width buckets
_MONTH_ORIGIN = 2000 * 12                 # … and 2000-01-01 for month-width buckets

_UNITS = {
    "microsecond": ("td", dt.timedelta(microseconds=1)), "us": ("td", dt.timedelta(microseconds=1)),
    "millisecond": ("td", dt.timedelta(milliseconds=1)), "ms": ("td", dt.timedelta(milliseconds=1)),
    "second": ("td", dt.timedelta(seconds=1)), "sec": ("td", dt.timedelta(seconds=1)), "s": ("td", dt.timedelta(seconds=1)),
    "minute": ("td", dt.timedelta(minutes=1)), "min": ("td", dt.timedelta(minutes=1)), "m": ("td", dt.timedelta(minutes=1)),
    "hour": ("td", dt.timedelta(hours=1)), "h": ("td", dt.timedelta(hours=1)), "hr": ("td", dt.timedelta(hours=1)),
    "day": ("td", dt.timedelta(days=1)), "d": ("td", dt.timedelta(days=1)),
    "week": ("td", dt.timedelta(days=7)), "w": ("td", dt.timedelta(days=7)),
    "month": ("mo", 1), "mon": ("mo", 1), "quarter": ("mo", 3), "year": ("mo", 12), "y": ("mo", 12),
}


@dataclass
class KeyInfo:
    name: str
    expr: object                 # qualified sqlglot expression
    kind: str                    # public | time | private
    domain: tuple | None
    in_domain: str | None        # SQL predicate over the key column, True for in-domain rows
    note: str | None = None


def _unit(text: str):
    t = text.strip().lower()
    if t not in _UNITS and t.endswith("s"):
        t = t[:-1]
    return _UNITS.get(t)


def parse_interval(node):
    """(kind, width) for INTERVAL '5 minutes' / INTERVAL 5 MINUTE / INTERVAL '1' HOUR, else None."""
    if not isinstance(node, exp.Interval) or not isinstance(node.this, exp.Literal):
        return None
    text = str(node.this.this).strip()
    unit = node.args.get("unit")
    if unit is not None:
        text = f"{text} {unit.name if hasattr(unit, 'name') else unit}"
    m = re.fullmatch(r"(\d+)\s*([a-zA-Z]+)", text.strip())
    if not m:
        return None
    n, u = int(m.group(1)), _unit(m.group(2))
    if u is None or n <= 0:
        return None
    kind, w = u
    return kind, w * n


def _ts_literal(node):
    if isinstance(node, exp.Cast) and node.to.is_type("timestamp", "timestampntz", "datetime", "date"):
        node = node.this
    if isinstance(node, exp.Literal) and node.is_string:
        try:
            return dt.datetime.fromisoformat(node.this.strip())
        except ValueError:
            return None
    return None


def _conjuncts(e):
    if e is None:
        return []
    if isinstance(e, exp.Paren):
        return _conjuncts(e.this)
    if isinstance(e, exp.And):
        return _conjuncts(e.this) + _conjuncts(e.expression)
    return [e]


def time_window(where, col: exp.Column):
    """Inclusive [low, high] of ``col`` implied by top-level AND conjuncts of WHERE, or None per side."""
    low = high = None
    same = lambda x: isinstance(x, exp.Column) and x.table == col.table and x.name == col.name  # noqa: E731
    for c in _conjuncts(where):
        pairs = []
        if isinstance(c, exp.Between) and same(c.this):
            lo, hi = _ts_literal(c.args["low"]), _ts_literal(c.args["high"])
            if lo:
                pairs.append(("lo", lo))
            if hi:
                pairs.append(("hi", hi))
        elif isinstance(c, (exp.GT, exp.GTE, exp.LT, exp.LTE)):
            a, b = c.this, c.expression
            op = type(c)
            if same(b) and _ts_literal(a):
                a, b = b, a
                op = {exp.GT: exp.LT, exp.GTE: exp.LTE, exp.LT: exp.GT, exp.LTE: exp.GTE}[op]
            v = _ts_literal(b) if same(a) else None
            if v is not None:
                pairs.append({exp.GT: ("lo", v + _US), exp.GTE: ("lo", v),
                              exp.LT: ("hi", v - _US), exp.LTE: ("hi", v)}[op])
        for side, v in pairs:
            if side == "lo":
                low = v if low is None else max(low, v)
            else:
                high = v if high is None else min(high, v)
    return low, high


def _floor(t: dt.datetime, kind, width):
    if kind == "td":
        n = (t - _TD_ORIGIN) // width
        return _TD_ORIGIN + n * width
    idx = t.year * 12 + t.month - 1 - _MONTH_ORIGIN
    idx = (idx // width) * width + _MONTH_ORIGIN
    return dt.datetime(idx // 12, idx % 12 + 1, 1)


def _step(t: dt.datetime, kind, width):
    if kind == "td":
        return t + width
    idx = t.year * 12 + t.month - 1 + width
    return dt.datetime(idx // 12, idx % 12 + 1, 1)


def _count(first, last, kind, width) -> int:
    if kind == "td":
        return (last - first) // width + 1
    return ((last.year - first.year) * 12 + last.month - first.month) // width + 1


def time_key(expr, fq: FlatQuery, policy: DatasetPolicy):
    """(kind, width, ts column) if ``expr`` buckets a timestamp column, else None."""
    col = spec = None
    if isinstance(expr, exp.DateBin) and not expr.args.get("origin") and len(expr.args.get("expressions") or []) == 0:
        spec, col = parse_interval(expr.this), expr.expression
    elif isinstance(expr, exp.TimestampTrunc) and not expr.args.get("zone"):
        unit = expr.args.get("unit")
        spec = _unit(unit.name) if unit is not None else None
        col = expr.this
        if spec and spec[0] == "td" and spec[1] > dt.timedelta(days=1) and spec[1] != dt.timedelta(days=7):
            spec = None
    if spec is None or not isinstance(col, exp.Column) or fq.types.get((col.table, col.name)) != ColumnType.timestamp:
        return None
    return spec[0], spec[1], col


def _literal_value(e):
    if isinstance(e, exp.Null):
        return None, True
    if isinstance(e, exp.Boolean):
        return e.this, True
    if isinstance(e, exp.Literal):
        if e.is_string:
            return e.this, True
        text = e.this.strip()
        if text.lstrip("+-").isdigit():          # exactly, never through a float (2^63 - 1 is not 2^63)
            return int(text), True
        v = float(text)
        return (int(v) if v.is_integer() and "." not in text and "e" not in text.lower() else v), True
    if isinstance(e, exp.Neg) and isinstance(e.this, exp.Literal) and not e.this.is_string:
        v, ok = _literal_value(e.this)
        return -v, ok
    if isinstance(e, exp.Paren):
        return _literal_value(e.this)
    return None, False


def _sorted(values) -> tuple:
    uniq = list(dict.fromkeys(values))
    nonnull = sorted((v for v in uniq if v is not None), key=lambda v: (type(v).__name__, v))
    return tuple(nonnull + ([None] if None in uniq else []))


def sql_value(v) -> str:
    if v is None:
        return "NULL"
    if isinstance(v, bool):
        return "TRUE" if v else "FALSE"
    if isinstance(v, (int, float)):
        return repr(v)
    if isinstance(v, dt.datetime):
        return f"TIMESTAMP '{v.isoformat(sep=' ')}'"
    if isinstance(v, dt.date):
        return f"DATE '{v.isoformat()}'"
    return exp.Literal.string(str(v)).sql(dialect="duckdb")


def membership(col_sql: str, domain: tuple) -> str:
    vals = [v for v in domain if v is not None]
    parts = []
    if vals:
        parts.append(f"{col_sql} IN ({', '.join(sql_value(v) for v in vals)})")
    if None in domain:
        parts.append(f"{col_sql} IS NULL")
    return " OR ".join(parts) if len(parts) > 1 else (parts[0] if parts else "FALSE")


def classify(name: str, expr, fq: FlatQuery, policy: DatasetPolicy, col_sql: str) -> KeyInfo:
    e = expr.this if isinstance(expr, exp.Paren) else expr
    if isinstance(e, exp.Column):
        if e.table == PRIVATE_ALIAS:
            col = policy.columns.get(e.name)
            if col is not None and col.domain is not None:
                dom = _sorted(col.domain)
                return KeyInfo(name, expr, "public", dom, membership(col_sql, dom),
                               f"rows whose {e.name} is outside the policy's domain are dropped")
            if col is not None and col.type == ColumnType.boolean:
                return KeyInfo(name, expr, "public", (False, True), f"{col_sql} IS NOT NULL")
        else:
            for j in fq.joins:
                if j.alias == e.table:
                    rows = policy.public_tables[j.table].rows
                    dom = _sorted([r.get(e.name) for r in rows] + ([None] if j.left else []))
                    return KeyInfo(name, expr, "public", dom, membership(col_sql, dom))
    if isinstance(e, exp.Case) and e.this is None:
        branches = [i.args["true"] for i in e.args.get("ifs") or []]
        default = e.args.get("default")
        vals = [_literal_value(b) for b in branches + ([default] if default is not None else [])]
        if all(ok for _, ok in vals):
            dom = _sorted([v for v, _ in vals] + ([None] if default is None else []))
            return KeyInfo(name, expr, "public", dom, membership(col_sql, dom))
    if isinstance(e, (exp.Predicate, exp.Not, exp.And, exp.Or)) and not isinstance(e, exp.Column):
        return KeyInfo(name, expr, "public", (False, True), f"{col_sql} IS NOT NULL")
    tk = time_key(e, fq, policy)
    if tk is not None:
        kind, width, col = tk
        low, high = time_window(fq.where, col)
        if low is None or high is None:
            return KeyInfo(name, expr, "private", None, None,
                           f"{name}: bound {col.name} on both sides in WHERE (>= … AND < …) to make the "
                           "time buckets public and skip partition selection")
        if high < low:
            reject("too-many-buckets", "the time window in WHERE is empty", "Check the lower and upper time bounds.")
        first, last = _floor(low, kind, width), _floor(high, kind, width)
        n = _count(first, last, kind, width)
        if n > policy.max_time_buckets:
            reject("too-many-buckets",
                   f"the time window has {n} buckets; the policy allows at most {policy.max_time_buckets}",
                   "Narrow the WHERE time window or use a wider bucket.")
        dom, t = [], first
        for _ in range(n):
            dom.append(t)
            t = _step(t, kind, width)
        return KeyInfo(name, expr, "time", tuple(dom),
                       f"{col_sql} BETWEEN {sql_value(dom[0])} AND {sql_value(dom[-1])}")
    return KeyInfo(name, expr, "private", None, None)
