"""Render the bounded SQL (measures) and the quantile SQL from a checked, flat query.

Shape of ``bounded_sql`` (one GROUP BY over (unit, keys), REFERENCE.md)::

    WITH <public tables as VALUES>,
    __base AS (SELECT <unit id> AS __unit, <keys>, <per-row inputs> FROM <table> AS __r [JOIN …] WHERE …),
    __per_unit AS (SELECT __unit, <keys>, hash(__unit, $salt, <keys>) AS __h, <capped per-unit aggregates>
                   FROM __base WHERE <keys in their public domain> GROUP BY __unit, <keys>),
    <group cap: __heavy, __cut, __capped — at most g rows of __per_unit per unit, smallest __h first>
    SELECT <keys>, SUM(__m0) AS __m0, …, COUNT(*) AS __units FROM __capped GROUP BY <keys> ORDER BY <keys>

The cap is skipped when a unit cannot reach more than g groups anyway (no GROUP BY, or a
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
* A window (or DuckDB's top-N rewrite of one) over every (unit, group) row costs more than
  the rest of the statement. The cap instead looks only at units with more than g groups
  (``__heavy``), takes the g+1 smallest ``__h`` of each (``__cut``) and keeps a group when
  its ``__h`` is below the g-th, or equal to it while the (g+1)-th is larger. On a 64-bit tie
  at the boundary the unit keeps only the groups strictly below it: never more than g.
* Arithmetic mixing UBIGINT (hashes) and BIGINT goes through HUGEINT and is slow: casts
  below keep hash arithmetic in UBIGINT.
"""

from __future__ import annotations

import re

from sqlglot.tokens import Tokenizer

from pdbg.policy.model import DatasetPolicy
from pdbg.sql.flatten import PRIVATE_ALIAS, FlatQuery
from pdbg.sql.guard import guard
from pdbg.sql.keys import KeyInfo, sql_value
from pdbg.sql.measures import FIXED_POINT_LIMIT, Builder
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
                f" ON {render(guard(j.private_expr, fq.types))} = {j.alias}.{ident(j.key)}")
    where = f" WHERE {render(guard(fq.where, fq.types))}" if fq.where is not None else ""
    return f"__base AS (SELECT {', '.join(cols)} FROM {frm}{where})"


def _where(conds: list[str]) -> str:
    return f" WHERE {' AND '.join(conds)}" if conds else ""


def _domain_conds(keys: list[KeyInfo]) -> list[str]:
    return [f"({k.in_domain})" for k in keys if k.in_domain]


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


def _group_hash(knames: list[str]) -> str:
    """The keyed pseudo-random order of a unit's groups (smallest first are kept)."""
    return f"hash(__unit, $salt, {', '.join(knames)}) AS __h"


def _cap_ctes(src: str, g: int) -> list[str]:
    """CTEs ``__heavy``, ``__cut``, ``__capped``: at most ``g`` rows of ``src`` per ``__unit``.

    ``src`` has one row per (unit, group) with the group's keyed hash ``__h``. Only units
    with more than g groups are looked at; for them ``__cut`` holds the g+1 smallest hashes
    (duplicates kept), and a group stays iff its hash is below the g-th, or equal to it while
    the (g+1)-th is larger — exactly the g smallest, or fewer on a tie: never more than g.
    """
    return [
        f"__heavy AS (SELECT __unit FROM {src} GROUP BY __unit HAVING COUNT(*) > {g})",
        f"__cut AS (SELECT __unit, min(__h, {g + 1}) AS __c FROM {src} SEMI JOIN __heavy USING (__unit) GROUP BY __unit)",
        f"__capped AS (SELECT {src}.* FROM {src} LEFT JOIN __cut USING (__unit) "
        f"WHERE __c IS NULL OR __h < __c[{g}] OR (__h = __c[{g}] AND __c[{g}] < __c[{g + 1}]))",
    ]


def bounded_sql(policy: DatasetPolicy, fq: FlatQuery, keys: list[KeyInfo], b: Builder, g: int,
                unit: str) -> str:
    knames = [ident(k.name) for k in keys]
    if not b.defs and all(k.domain is not None for k in keys):
        # Quantiles only, public keys: release reads nothing from this result (no measures, no
        # partition selection), so it reads no rows; quantile_sql does the work.
        parts = public_ctes(policy, fq) + [base_cte(policy, fq, keys, [], unit)]
        final = f"SELECT {', '.join([*knames, 'COUNT(*) AS __units'])} FROM __base WHERE FALSE AND $salt IS NOT NULL"
        if keys:
            final += f" GROUP BY {', '.join(knames)}"
        return _with(parts) + "\n" + final
    inputs = [(d.measure.id, d.row_sql) for d in b.defs]
    parts = public_ctes(policy, fq) + [base_cte(policy, fq, keys, inputs, unit)]
    cap = needs_cap(keys, policy.max_groups_per_unit)
    per_unit = ["__unit", *knames, *([_group_hash(knames)] if cap else []),
                *(d.unit_sql.format(c=d.measure.id) + f" AS {d.measure.id}" for d in b.defs)]
    parts.append(f"__per_unit AS{' MATERIALIZED' if cap else ''} (SELECT {', '.join(per_unit)} FROM __base"
                 f"{_where(_domain_conds(keys))} GROUP BY {', '.join(['__unit', *knames])})")
    if cap:
        parts += _cap_ctes("__per_unit", g)
        source = "__capped"
    else:
        # the engine always binds $salt; DuckDB refuses an unused named parameter, so reference it
        source = "__per_unit WHERE $salt IS NOT NULL"
    # Each final sum is clamped to ±(2^62 - 1) before leaving the engine: a sum of many units' bounded
    # contributions could otherwise pass BIGINT and fail (only when enough units match). Clamping
    # the aggregate is 1-Lipschitz, so no sensitivity grows; it only ever touches astronomic sums.
    lim = FIXED_POINT_LIMIT
    sums = [f"CAST(LEAST(GREATEST(COALESCE(SUM({d.measure.id}), 0), -{lim}), {lim}) AS BIGINT) AS {d.measure.id}"
            for d in b.defs]
    final = f"SELECT {', '.join([*knames, *sums, 'COUNT(*) AS __units'])} FROM {source}"
    if keys:
        final += f" GROUP BY {', '.join(knames)} ORDER BY {', '.join(knames)}"
    return _with(parts) + "\n" + final


def _bin_type(n_bins: int) -> str:
    return "UTINYINT" if n_bins <= 255 else "USMALLINT" if n_bins <= 65535 else "BIGINT"


def quantile_sql(policy: DatasetPolicy, fq: FlatQuery, keys: list[KeyInfo], b: Builder, g: int,
                 unit: str) -> str | None:
    """Per-group, per-candidate-bin row counts with at most k rows per (unit, group) and g groups per unit.

    One hash aggregation per (unit, group) collects the bins of the unit's rows as a list
    per quantile column (``__l<i>``, small integers; no window over rows or cells). The
    group cap keeps at most g of a unit's groups (as in ``bounded_sql``). A list of at most
    k bins is kept whole; a longer one keeps exactly k of its T rows by systematic sampling
    of the *sorted* list with a keyed offset o in [0, T): positions ⌊(o + j·T)/k⌋, j < k,
    are k distinct rows (T > k), each row is kept with probability k/T, each bin keeps
    ⌊·⌋ or ⌈·⌉ of its share c·k/T. The choice depends only on the unit's own values and
    the salt (never on row order or other units), so a unit still changes each of at most
    g groups' histograms by at most k rows.
    """
    if not b.quants:
        return None
    knames = [ident(k.name) for k in keys]
    inputs = [(f"__v{i}", q.value_sql) for i, q in enumerate(b.quants)]
    parts = public_ctes(policy, fq) + [base_cte(policy, fq, keys, inputs, unit)]
    k = b.k
    cap = needs_cap(keys, policy.max_groups_per_unit)
    one = len(b.quants) == 1
    lists = []
    for i, q in enumerate(b.quants):
        bin_sql = f"CAST({q.bin_sql.format(v=f'__v{i}')} AS {_bin_type(len(q.spec.candidates) + 1)})"
        lists.append(f"list({bin_sql})" + ("" if one else f" FILTER (WHERE __v{i} IS NOT NULL)") + f" AS __l{i}")
    present = " OR ".join(f"__v{i} IS NOT NULL" for i in range(len(b.quants)))
    conds = _domain_conds(keys) + [present if one else f"({present})"]
    cols = ["__unit", *knames, *([_group_hash(knames)] if cap else []), *lists]
    parts.append(f"__lists AS{' MATERIALIZED' if cap else ''} (SELECT {', '.join(cols)} FROM __base"
                 f"{_where(conds)} GROUP BY {', '.join(['__unit', *knames])})")
    source = "__lists"
    if cap:
        parts += _cap_ctes("__lists", g)
        source = "__capped"
    sort_cols, kept_cols = [], []
    for i, q in enumerate(b.quants):
        li, si, oi = f"__l{i}", f"__s{i}", f"__o{i}"
        offset_hash = f"hash(__unit, $salt, {''.join(n + ', ' for n in knames)}'{q.spec.id}')"
        sort_cols += [li, f"CASE WHEN len({li}) > {k} THEN list_sort({li}) END AS {si}",
                      f"CAST({offset_hash} % CAST(len({li}) AS UBIGINT) AS BIGINT) AS {oi}"]
        # Evaluated only when len > k (a NULL list, no value in the group, stays NULL); range(LEAST(len, k))
        # is never a constant list, so a huge k is never materialised.
        kept_cols.append(f"CASE WHEN len({li}) > {k} THEN list_transform(range(LEAST(len({si}), {k})), "
                         f"lambda __j: {si}[1 + (__j * len({si}) + {oi}) // {k}]) ELSE {li} END AS __k{i}")
    parts.append(f"__sorted AS (SELECT {', '.join([*knames, *sort_cols])} FROM {source})")
    parts.append(f"__kept AS (SELECT {', '.join([*knames, *kept_cols])} FROM __sorted)")
    branches = " UNION ALL ".join(
        f"SELECT {''.join(n + ', ' for n in knames)}'{q.spec.id}' AS __qid, unnest(__k{i}) AS __b FROM __kept"
        for i, q in enumerate(b.quants))
    group = [*knames, "__qid"]
    return (_with(parts) + f"\nSELECT {', '.join([*group, 'CAST(__b AS BIGINT) AS __bin', 'COUNT(*) AS __n'])} "
            f"FROM ({branches}) GROUP BY {', '.join([*group, '__b'])} ORDER BY {', '.join([*group, '__bin'])}")
