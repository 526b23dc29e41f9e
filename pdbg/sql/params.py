"""Bind ``$name`` / ``:name`` parameters as typed literal AST nodes (never pasted into the SQL text)."""

from __future__ import annotations

import datetime as dt
import math

from sqlglot import exp

from pdbg.sql.reject import reject

RULE = "parameter"


def _literal(name: str, value):
    if value is None:
        return exp.Null()
    if isinstance(value, bool):
        return exp.Boolean(this=value)
    if isinstance(value, int):
        return exp.Literal.number(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            reject(RULE, f"parameter {name!r} must be a finite number", "Pass a finite number.")
        return exp.Literal.number(repr(value))
    if isinstance(value, str):
        return exp.Literal.string(value)
    if isinstance(value, dt.datetime):
        return exp.cast(exp.Literal.string(value.isoformat(sep=" ")), exp.DataType.build("TIMESTAMP"))
    if isinstance(value, dt.date):
        return exp.cast(exp.Literal.string(value.isoformat()), exp.DataType.build("DATE"))
    reject(RULE, f"parameter {name!r} has unsupported type {type(value).__name__}",
           "Pass str, int, float, bool, None, date, datetime, or a list of those inside IN (...).")


def bind(tree, params: dict | None):
    params = dict(params or {})
    used: set[str] = set()
    for ph in list(tree.find_all(exp.Placeholder)):
        name = ph.name or ""
        if not name or name == "?":
            reject(RULE, "positional '?' parameters are not supported", "Name them: $service, and pass params={'service': …}.")
        if name not in params:
            reject(RULE, f"parameter {name!r} has no value", f"Pass params={{{name!r}: …}}.")
        used.add(name)
        value = params[name]
        if isinstance(value, (list, tuple)):
            parent = ph.parent
            if not isinstance(parent, exp.In) or ph not in parent.expressions or not value:
                reject(RULE, f"list parameter {name!r} can only be used as IN (${name}) and must not be empty",
                       "Use a scalar, or write col IN ($name).")
            idx = parent.expressions.index(ph)
            new = parent.expressions[:idx] + [_literal(name, v) for v in value] + parent.expressions[idx + 1:]
            parent.set("expressions", new)
        else:
            ph.replace(_literal(name, value))
    extra = sorted(set(params) - used)
    if extra:
        reject(RULE, f"unknown parameter(s): {', '.join(map(repr, extra))}",
               "Remove them or reference them in the SQL as $name.")
    return tree
