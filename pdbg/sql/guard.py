"""Make row expressions unable to fail on data: anything not obviously safe is wrapped in TRY(…).

A DuckDB error raised by one row's value (a failed cast, an overflow) would tell the investigator
that such a row exists, even with the message sanitized. Simple comparisons of a column with a
literal of its own type cannot fail, and stay unwrapped so filters still push down into scans.
"""

from __future__ import annotations

from sqlglot import exp

from pdbg.policy.model import ColumnType

_CMP = (exp.EQ, exp.NEQ, exp.GT, exp.GTE, exp.LT, exp.LTE, exp.NullSafeEQ, exp.NullSafeNEQ)
_NUM = {ColumnType.integer, ColumnType.float}


def _col_type(e, types):
    if isinstance(e, exp.Column):
        return types.get((e.table, e.name))
    return None


def _lit_ok(lit, typ) -> bool:
    if isinstance(lit, exp.Null):
        return True
    if isinstance(lit, exp.Paren):
        return _lit_ok(lit.this, typ)
    if isinstance(lit, exp.Neg):
        return _lit_ok(lit.this, typ)
    if isinstance(lit, exp.Boolean):
        return typ == ColumnType.boolean
    if isinstance(lit, exp.Literal):
        if lit.is_string:
            return typ in (ColumnType.string, ColumnType.timestamp)
        return typ in _NUM
    if isinstance(lit, exp.Cast) and isinstance(lit.this, exp.Literal):
        return typ == ColumnType.timestamp and lit.to.is_type("timestamp", "timestampntz", "datetime", "date")
    return False


def _operand_ok(a, b, types) -> bool:
    ta, tb = _col_type(a, types), _col_type(b, types)
    if ta is not None and tb is not None:
        return ta == tb or (ta in _NUM and tb in _NUM)
    if ta is not None:
        return _lit_ok(b, ta)
    if tb is not None:
        return _lit_ok(a, tb)
    return False


def safe(e, types) -> bool:
    if isinstance(e, (exp.Column, exp.Literal, exp.Null, exp.Boolean)):
        return True
    if isinstance(e, exp.Paren):
        return safe(e.this, types)
    if isinstance(e, (exp.And, exp.Or)):
        return safe(e.this, types) and safe(e.expression, types)
    if isinstance(e, exp.Not):
        return safe(e.this, types)
    if isinstance(e, exp.Is):
        return isinstance(e.this, exp.Column) and isinstance(e.expression, (exp.Null, exp.Boolean))
    if isinstance(e, _CMP):
        return _operand_ok(e.this, e.expression, types)
    if isinstance(e, exp.Between):
        return _operand_ok(e.this, e.args["low"], types) and _operand_ok(e.this, e.args["high"], types)
    if isinstance(e, exp.In):
        return (not e.args.get("query") and bool(e.expressions)
                and all(_operand_ok(e.this, x, types) for x in e.expressions))
    if isinstance(e, (exp.Like, exp.ILike)):
        return (_col_type(e.this, types) == ColumnType.string and isinstance(e.expression, exp.Literal)
                and e.expression.is_string and not e.args.get("escape"))
    if isinstance(e, exp.Case):
        return all(safe(i.this, types) and safe(i.args["true"], types) for i in e.args.get("ifs") or []) and (
            e.args.get("default") is None or safe(e.args["default"], types)) and e.this is None
    if isinstance(e, exp.DateBin):
        return isinstance(e.this, exp.Interval) and isinstance(e.this.this, exp.Literal) \
            and _col_type(e.expression, types) == ColumnType.timestamp \
            and not e.args.get("origin")
    if isinstance(e, exp.TimestampTrunc):
        return _col_type(e.this, types) == ColumnType.timestamp
    return False


def guard(e, types):
    """``e`` itself if it cannot fail on any row, else ``TRY(e)`` (NULL on error)."""
    if safe(e, types):
        return e
    return exp.Anonymous(this="TRY", expressions=[e])
