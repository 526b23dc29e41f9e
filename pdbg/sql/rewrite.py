"""Render the bounded SQL (measures) and the quantile SQL from a checked, flat query.

Shape of ``bounded_sql`` (one GROUP BY over (unit, keys), REFERENCE.md)::

    WITH <public tables as VALUES>,
    __base AS (SELECT <unit id> AS __unit, <keys>, <per-row inputs> FROM <table> AS __r [JOIN …] WHERE …),
    __per_unit AS (SELECT __unit, <keys>, <capped per-unit aggregates> FROM __base
                   WHERE <keys in their public domain> GROUP BY __unit, <keys>),
    __capped AS (… row_number() OVER (PARTITION BY __unit ORDER BY hash(__unit, $salt, <keys>)) <= g …)
    SELECT <keys>, SUM(__m0) AS __m0, …, COUNT(*) AS __units FROM __capped GROUP BY <keys> ORDER BY <keys>

The window is skipped when a unit cannot reach more than g groups anyway (no GROUP BY, or a
public domain no larger than g). ``$salt`` is a DuckDB named parameter bound by the engine.

Performance notes (DuckDB 2.0, 1M rows; these shapes were measured, not guessed):

* The unit is grouped as a UBIGINT, never as the VARCHAR token: the integer unit id stored at
  ingest when the caller passes its column (``plan_query(unit_column=…)``; then the token
  column is not even read), else ``hash(<unit>)``. Grouping by either is ~1.5x faster than by
  the token; the stored id also saves reading the token (~6 ms per 1M rows).
  Collisions: two units with one 64-bit id become one unit, which the caps bound together, so
  every bound holds per id and each person contributes no more than before; the two people
  share one unit's protection (group privacy: 2ε for that pair). Token-derived ids (HMAC) and
  DuckDB hashes of tokens collide among n units with probability ≈ n²/2⁶⁵ (3·10⁻⁸ at 10⁶
  units); COUNT(DISTINCT unit) undercounts by as little. Only for a unit column that is neither
  tokenized nor given a stored id could someone who inserts rows with chosen unit values aim a
  collision at a known unit value (``hash`` is not cryptographic).
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


def unit_sql(policy: DatasetPolicy, unit_column: str | None = None) -> str:
    """The UBIGINT unit every bound groups by: a stored integer unit id, else the hash of the unit."""
    if unit_column is not None:
        return f"{PRIVATE_ALIAS}.{ident(unit_column)}"
    return f"hash({PRIVATE_ALIAS}.{ident(policy.privacy_unit)})"


def base_cte(policy: DatasetPolicy, fq: FlatQuery, keys: list[KeyInfo], inputs: list[tuple[str, str]],
             unit: str) -> str:
    cols = [f"{unit} AS __unit"]
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


def bounded_sql(policy: DatasetPolicy, fq: FlatQuery, keys: list[KeyInfo], b: Builder, g: int,
                unit: str) -> str:
    knames = [ident(k.name) for k in keys]
    inputs = [(d.measure.id, d.row_sql) for d in b.defs]
    parts = public_ctes(policy, fq) + [base_cte(policy, fq, keys, inputs, unit)]
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


def quantile_sql(policy: DatasetPolicy, fq: FlatQuery, keys: list[KeyInfo], b: Builder, g: int,
                 unit: str) -> str | None:
    """Per-group, per-candidate-bin row counts with at most k rows per (unit, group) and g groups per unit.

    Rows are first counted per (unit, group, bin) — one hash aggregation, no window over
    raw rows (a row_number() over every row made quantiles ~20x slower than plain DuckDB).
    A unit with more than k rows in a group then keeps exactly k of them, allotted to its
    bins in proportion to its counts by systematic allocation: walking its bins in a keyed
    pseudo-random order with running total C, a bin keeps floor(C·k/T) − floor(C_prev·k/T)
    rows (T the unit's total). Each bin keeps at most its own count, the kept rows sum to
    k, so a unit still changes each of at most g groups' histograms by at most k rows.
    """
    if not b.quants:
        return None
    knames = [ident(k.name) for k in keys]
    inputs = [(f"__v{i}", q.value_sql) for i, q in enumerate(b.quants)]
    parts = public_ctes(policy, fq) + [base_cte(policy, fq, keys, inputs, unit)]
    dom = _domain_filter(keys)
    branches = []
    for i, q in enumerate(b.quants):
        cond = f"__v{i} IS NOT NULL"
        where = f"{dom} AND {cond}" if dom else f" WHERE {cond}"
        branches.append(
            f"SELECT __unit, {''.join(k + ', ' for k in knames)}'{q.spec.id}' AS __qid, "
            f"{q.bin_sql.format(v=f'__v{i}')} AS __bin FROM __base{where}")
    parts.append("__vals AS (" + " UNION ALL ".join(branches) + ")")
    cell = ", ".join(["__unit", *knames, "__qid"])
    parts.append(f"__cells AS (SELECT {cell}, __bin, COUNT(*) AS __c FROM __vals GROUP BY {cell}, __bin)")
    parts.append(
        f"__alloc AS (SELECT *, SUM(__c) OVER (PARTITION BY {cell} ORDER BY hash(__unit, $salt, __qid, __bin) "
        f"ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW) AS __cum, "
        f"SUM(__c) OVER (PARTITION BY {cell}) AS __tot FROM __cells)")
    k = b.k
    kept = (f"CASE WHEN __tot <= {k} THEN __c "
            f"ELSE (__cum * {k}) // __tot - ((__cum - __c) * {k}) // __tot END")
    src = f"(SELECT *, {kept} AS __n FROM __alloc)"
    keep = ""
    if needs_cap(keys, policy.max_groups_per_unit):
        src = (f"(SELECT *, dense_rank() OVER (PARTITION BY __unit ORDER BY hash(__unit, $salt, {', '.join(knames)}), "
               f"{', '.join(knames)}) AS __gr FROM {src})")
        keep = f" WHERE __gr <= {g}"
    parts.append(f"__kept AS (SELECT * FROM {src}{keep})")
    cols = [*knames, "__qid", "__bin"]
    return (_with(parts) + f"\nSELECT {', '.join([*cols, 'SUM(__n) AS __n'])} FROM __kept "
            f"GROUP BY {', '.join(cols)} HAVING SUM(__n) > 0 ORDER BY {', '.join(cols)}")
