"""Render the bounded SQL (measures) and the quantile SQL from a checked, flat query.

Shape of ``bounded_sql`` (one GROUP BY over (unit, keys), REFERENCE.md)::

    WITH <public tables as VALUES>,
    __base AS (SELECT <unit> AS __unit, <keys>, <per-row inputs> FROM <table> AS __r [JOIN …] WHERE …),
    __per_unit AS (SELECT __unit, <keys>, <capped per-unit aggregates> FROM __base
                   WHERE <keys in their public domain> GROUP BY __unit, <keys>),
    __capped AS (… row_number() OVER (PARTITION BY __unit ORDER BY hash(__unit, $salt, <keys>)) <= g …)
    SELECT <keys>, SUM(__m0) AS __m0, …, COUNT(*) AS __units FROM __capped GROUP BY <keys> ORDER BY <keys>

The window is skipped when a unit cannot reach more than g groups anyway (no GROUP BY, or a
public domain no larger than g). ``$salt`` is a DuckDB named parameter bound by the engine.
"""

from __future__ import annotations

import re

from sqlglot.tokens import Tokenizer

from pdbg.policy.model import DatasetPolicy
from pdbg.sql.flatten import PRIVATE_ALIAS, FlatQuery
from pdbg.sql.guard import guard
from pdbg.sql.keys import KeyInfo, sql_value
from pdbg.sql.measures import Builder
from pdbg.sql.parse import render

_TYPES = {"string": "VARCHAR", "integer": "BIGINT", "float": "DOUBLE", "timestamp": "TIMESTAMP", "boolean": "BOOLEAN"}
_KEYWORDS = {k.lower() for k in Tokenizer.KEYWORDS} | {"order", "group", "select", "from", "where", "limit", "user"}


def ident(name: str) -> str:
    """A name as a DuckDB identifier, quoted only when needed."""
    if re.fullmatch(r"[a-z_][a-z0-9_]*", name) and name not in _KEYWORDS:
        return name
    return '"' + name.replace('"', '""') + '"'


def public_ctes(policy: DatasetPolicy, fq: FlatQuery) -> list[str]:
    out = []
    for table in dict.fromkeys(j.table for j in fq.joins):
        pt = policy.public_tables[table]
        cols = list(pt.columns)
        sel = ", ".join(f"CAST(__v{i} AS {_TYPES[pt.columns[c].value]}) AS {ident(c)}" for i, c in enumerate(cols))
        if pt.rows:
            rows = ", ".join("(" + ", ".join(sql_value(r.get(c)) for c in cols) + ")" for r in pt.rows)
            body = f"SELECT {sel} FROM (VALUES {rows}) AS __v({', '.join(f'__v{i}' for i in range(len(cols)))})"
        else:
            body = "SELECT " + ", ".join(f"CAST(NULL AS {_TYPES[pt.columns[c].value]}) AS {ident(c)}" for c in cols) \
                + " WHERE FALSE"
        out.append(f"{ident(table)} AS ({body})")
    return out


def base_cte(policy: DatasetPolicy, fq: FlatQuery, keys: list[KeyInfo], inputs: list[tuple[str, str]]) -> str:
    cols = [f"{PRIVATE_ALIAS}.{ident(policy.privacy_unit)} AS __unit"]
    cols += [f"{render(guard(k.expr, fq.types))} AS {ident(k.name)}" for k in keys]
    cols += [f"{sql} AS {name}" for name, sql in inputs]
    frm = f"{ident(policy.table)} AS {PRIVATE_ALIAS}"
    for j in fq.joins:
        frm += (f" {'LEFT ' if j.left else ''}JOIN {ident(j.table)} AS {j.alias}"
                f" ON {render(j.private_expr)} = {j.alias}.{ident(j.key)}")
    where = f" WHERE {render(guard(fq.where, fq.types))}" if fq.where is not None else ""
    return f"__base AS (SELECT {', '.join(cols)} FROM {frm}{where})"


def _domain_filter(keys: list[KeyInfo]) -> str:
    conds = [f"({k.in_domain})" for k in keys if k.in_domain]
    return f" WHERE {' AND '.join(conds)}" if conds else ""


def needs_cap(keys: list[KeyInfo], g_policy: int) -> bool:
    if not keys:
        return False
    if any(k.domain is None for k in keys):
        return True
    size = 1
    for k in keys:
        size *= len(k.domain)
    return size > g_policy


def _with(parts: list[str]) -> str:
    return "WITH " + ",\n".join(parts)


def bounded_sql(policy: DatasetPolicy, fq: FlatQuery, keys: list[KeyInfo], b: Builder, g: int) -> str:
    knames = [ident(k.name) for k in keys]
    inputs = [(d.measure.id, d.row_sql) for d in b.defs]
    parts = public_ctes(policy, fq) + [base_cte(policy, fq, keys, inputs)]
    per_unit = ", ".join(["__unit", *knames, *(d.unit_sql.format(c=d.measure.id) + f" AS {d.measure.id}" for d in b.defs)])
    parts.append(f"__per_unit AS (SELECT {per_unit} FROM __base{_domain_filter(keys)} "
                 f"GROUP BY {', '.join(['__unit', *knames])})")
    source = "__per_unit"
    if needs_cap(keys, policy.max_groups_per_unit):
        parts.append("__capped AS (SELECT * FROM (SELECT *, row_number() OVER (PARTITION BY __unit ORDER BY __h) AS __rn "
                     f"FROM (SELECT *, hash(__unit, $salt, {', '.join(knames)}) AS __h FROM __per_unit)) "
                     f"WHERE __rn <= {g})")
        source = "__capped"
    else:
        # the engine always binds $salt; DuckDB refuses an unused named parameter, so reference it
        source += " WHERE $salt IS NOT NULL"
    sums = [f"COALESCE(SUM({d.measure.id}), 0) AS {d.measure.id}" for d in b.defs]
    final = f"SELECT {', '.join([*knames, *sums, 'COUNT(*) AS __units'])} FROM {source}"
    if keys:
        final += f" GROUP BY {', '.join(knames)} ORDER BY {', '.join(knames)}"
    return _with(parts) + "\n" + final


def quantile_sql(policy: DatasetPolicy, fq: FlatQuery, keys: list[KeyInfo], b: Builder, g: int) -> str | None:
    if not b.quants:
        return None
    knames = [ident(k.name) for k in keys]
    inputs = [(f"__v{i}", q.value_sql) for i, q in enumerate(b.quants)]
    parts = public_ctes(policy, fq) + [base_cte(policy, fq, keys, inputs)]
    dom = _domain_filter(keys)
    branches = []
    for i, q in enumerate(b.quants):
        cond = f"__v{i} IS NOT NULL"
        where = f"{dom} AND {cond}" if dom else f" WHERE {cond}"
        branches.append(
            f"SELECT __unit, {''.join(k + ', ' for k in knames)}'{q.spec.id}' AS __qid, "
            f"{q.bin_sql.format(v=f'__v{i}')} AS __bin, hash(__unit, $salt, '{q.spec.id}', __v{i}) AS __rh "
            f"FROM __base{where}")
    parts.append("__vals AS (" + " UNION ALL ".join(branches) + ")")
    cap = needs_cap(keys, policy.max_groups_per_unit)
    windows = [f"row_number() OVER (PARTITION BY {', '.join(['__unit', *knames, '__qid'])} ORDER BY __rh) AS __rn"]
    keep = [f"__rn <= {b.k}"]
    src = "__vals"
    if cap:
        src = f"(SELECT *, hash(__unit, $salt, {', '.join(knames)}) AS __gh FROM __vals)"
        windows.append(f"dense_rank() OVER (PARTITION BY __unit ORDER BY __gh, {', '.join(knames)}) AS __gr")
        keep.append(f"__gr <= {g}")
    parts.append(f"__ranked AS (SELECT *, {', '.join(windows)} FROM {src})")
    cols = [*knames, "__qid", "__bin"]
    return (_with(parts) + f"\nSELECT {', '.join([*cols, 'COUNT(*) AS __n'])} FROM __ranked "
            f"WHERE {' AND '.join(keep)} GROUP BY {', '.join(cols)} ORDER BY {', '.join(cols)}")
