"""Resolve tables and columns, inline simple CTEs/FROM-subqueries, and produce one flat SELECT.

After flattening every column reference is qualified: ``__r.<col>`` for the private table and
``__p<i>.<col>`` for a joined public table, so later stages never guess scopes. The rules that
need scopes (unknown-table, private-join, join-condition, subquery, unknown-column) are raised here.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sqlglot import exp

from pdbg.policy.model import ColumnType, DatasetPolicy
from pdbg.sql.reject import did_you_mean, reject

PRIVATE_ALIAS = "__r"
OUT_ALIAS = "__out"   # marks a HAVING/ORDER BY reference to an output alias


@dataclass
class PublicJoin:
    table: str
    alias: str           # __p0, __p1 …
    user_alias: str
    left: bool           # LEFT JOIN keeps private rows without a match
    private_expr: Any    # qualified expression on the private side of the key equality
    key: str


@dataclass
class FlatQuery:
    items: list[tuple[str | None, Any]]        # (name, qualified expression)
    group: list[Any]                           # qualified key expressions
    has_group: bool
    where: Any
    having: Any
    order: list[Any]
    limit: Any
    offset: Any
    distinct: bool
    joins: list[PublicJoin] = field(default_factory=list)
    types: dict[tuple[str, str], ColumnType] = field(default_factory=dict)   # (alias, col) -> type
    projections: list[Any] = field(default_factory=list)   # every inlined CTE/subquery column, qualified


@dataclass
class _Source:
    private: bool
    names: set[str]                              # how the query may qualify it
    mapping: dict[str, Any] | None = None        # inlined projection: name -> qualified expr
    where: list[Any] = field(default_factory=list)
    public: str | None = None                    # public table name


class Flattener:
    def __init__(self, policy: DatasetPolicy) -> None:
        self.policy = policy
        self.kept = policy.kept_columns
        self.ctes: dict[str, Any] = {}
        self.projections: list[Any] = []    # checked by the resolved-query allowlist, used or not
        self.types: dict[tuple[str, str], ColumnType] = {
            (PRIVATE_ALIAS, n): c.type for n, c in self.kept.items()}

    # -- tables -------------------------------------------------------------

    def _table_names(self) -> list[str]:
        return [self.policy.table, *self.policy.public_tables, *self.ctes]

    def source(self, node, depth: int = 0) -> _Source:
        if depth > 8:
            reject("subquery", "subqueries are nested too deeply", "Flatten the query into one SELECT.")
        if isinstance(node, exp.Table) and isinstance(node.this, exp.Identifier):
            name, db, alias = node.name.lower(), (node.db or "").lower(), (node.alias or node.name).lower()
            if node.args.get("catalog") or db not in ("", "main"):
                reject("unknown-table", f"table {node.sql(dialect='duckdb')!r} is not a dataset table",
                       f"Query the dataset table {self.policy.table!r} by its plain name.")
            if not db and name in self.ctes:
                src = self._inline(self.ctes[name], depth + 1)
                src.names = {alias}
                return src
            if name == self.policy.table:
                return _Source(private=True, names={alias, name})
            if name in self.policy.public_tables:
                return _Source(private=False, names={alias}, public=name)
            reject("unknown-table", f"unknown table {node.name!r}." + did_you_mean(name, self._table_names()),
                   f"This dataset's table is {self.policy.table!r}"
                   + (f"; public tables: {', '.join(self.policy.public_tables)}" if self.policy.public_tables else "")
                   + ".")
        if isinstance(node, exp.Subquery):
            src = self._inline(node.this, depth + 1)
            src.names = {(node.alias or "").lower()} if node.alias else set()
            return src
        reject("unknown-table", "only the dataset table, its public tables and simple CTEs may be read",
               f"Read FROM {self.policy.table!r}.")

    def _inline(self, body, depth: int) -> _Source:
        """A CTE/subquery that only filters or projects rows of the private table becomes part of the outer query."""
        hint = ("A CTE or FROM-subquery may only filter and project rows of the dataset table "
                "(no joins, aggregates, DISTINCT, LIMIT); put the aggregation in the outer SELECT.")
        if not isinstance(body, exp.Select):
            reject("subquery", "only a plain SELECT can be used as a CTE or FROM-subquery", hint)
        for key in ("joins", "group", "having", "limit", "offset", "distinct", "qualify", "laterals", "pivots", "with_"):
            if body.args.get(key):
                reject("subquery", f"a CTE or FROM-subquery with {key.rstrip('_').upper()} cannot be inlined", hint)
        if any(isinstance(n, exp.AggFunc) for n in body.walk()):
            reject("subquery", "a CTE or FROM-subquery with aggregates cannot be inlined", hint)
        frm = body.args.get("from_") or body.args.get("from")
        if frm is None:
            reject("subquery", "a CTE or FROM-subquery must read the dataset table", hint)
        inner = self.source(frm.this, depth)
        if not inner.private:
            reject("subquery", "a CTE or FROM-subquery may only read the dataset table", hint)
        scope = _Scope(self, inner, [])
        mapping: dict[str, Any] = {}
        for item in body.expressions:
            if not isinstance(item, exp.Star) and item.find(exp.Star, exp.Columns) is not None \
                    and not isinstance(item.find(exp.Star).parent if item.find(exp.Star) else None, exp.Count):
                reject("no-star", "* LIKE, * SIMILAR TO and COLUMNS(…) are not supported in a CTE or FROM-subquery",
                       "Name each column, or use * / * EXCLUDE (…).")
            if isinstance(item, exp.Star) and (item.args.get("replace") or item.args.get("rename")):
                reject("no-star", "* REPLACE (…) and * RENAME (…) are not supported in a CTE or FROM-subquery",
                       "Name each column: SELECT <expr> AS <name>, … .")
            if isinstance(item, exp.Star):
                base = inner.mapping if inner.mapping is not None else {
                    n: exp.column(n, PRIVATE_ALIAS) for n in self.kept}
                excluded = {c.name.lower() for c in item.args.get("except_") or item.args.get("except") or []}
                mapping.update({k: v.copy() for k, v in base.items() if k not in excluded})
            elif isinstance(item, exp.Alias):
                mapping[item.alias.lower()] = scope.qualify(item.this)
            elif isinstance(item, exp.Column) and not isinstance(item.this, exp.Star):
                mapping[item.name.lower()] = scope.qualify(item)
            else:
                reject("subquery", "every column of a CTE or FROM-subquery needs a name", "Add AS <name>.")
        self.projections.extend(mapping.values())
        where = list(inner.where)
        w = body.args.get("where")
        if w is not None:
            where.append(scope.qualify(w.this))
        return _Source(private=True, names=set(), mapping=mapping, where=where)

    # -- the outer query ----------------------------------------------------

    def flatten(self, tree: exp.Select) -> FlatQuery:
        with_ = tree.args.get("with_") or tree.args.get("with")
        if with_ is not None:
            if with_.args.get("recursive"):
                reject("subquery", "recursive CTEs are not allowed", "Use a plain CTE that filters rows.")
            for cte in with_.expressions:
                self.ctes[cte.alias.lower()] = cte.this
        frm = tree.args.get("from_") or tree.args.get("from")
        if frm is None:
            reject("unknown-table", "the query reads no table", f"Add FROM {self.policy.table}.")
        main = self.source(frm.this)
        if not main.private:
            reject("join-condition", "the dataset table must come first in FROM",
                   f"Write FROM {self.policy.table} JOIN <public table> USING (<key>).")
        joins: list[PublicJoin] = []
        publics: list[tuple[_Source, str]] = []
        for j in tree.args.get("joins") or []:
            src = self.source(j.this)
            if src.private:
                reject("private-join", "the dataset table may appear only once (no self-joins or private joins)",
                       "Use one FROM over the dataset table; express conditions in WHERE or with CASE.")
            alias = f"__p{len(joins)}"
            publics.append((src, alias))
            for col, typ in self.policy.public_tables[src.public].columns.items():
                self.types[(alias, col)] = typ
            joins.append(self._join(j, src, alias, main, publics))
        scope = _Scope(self, main, publics)
        items: list[tuple[str | None, Any]] = []
        for item in tree.expressions:
            if isinstance(item, exp.Alias):
                items.append((item.alias, item.this))
            elif isinstance(item, exp.Column):
                items.append((item.name, item))
            else:
                items.append((None, item))
        aliases = {n.lower(): e for n, e in items if n}
        group_node = tree.args.get("group")
        group_raw: list[Any] = []
        if group_node is not None:
            if any(group_node.args.get(k) for k in ("rollup", "cube", "grouping_sets", "totals")) or any(
                    isinstance(g, (exp.Rollup, exp.Cube, exp.GroupingSets)) for g in group_node.expressions):
                reject("unsupported-grouping", "ROLLUP, CUBE and GROUPING SETS are not supported",
                       "Run one query per grouping.")
            if group_node.args.get("all"):
                group_raw = [e for _, e in items if not _has_agg(e)]
            for g in group_node.expressions:
                if isinstance(g, exp.Literal) and not g.is_string:
                    try:
                        idx = int(g.this)
                    except ValueError:
                        idx = 0
                    if not 1 <= idx <= len(items):
                        reject("unsupported-grouping", f"GROUP BY {g.this} does not name a select column",
                               "Use 1-based positions of selected columns, or names.")
                    group_raw.append(items[idx - 1][1])
                elif isinstance(g, exp.Column) and not g.table and g.name.lower() in aliases \
                        and not scope.has(g.name):
                    group_raw.append(aliases[g.name.lower()])
                else:
                    group_raw.append(g)
        where_parts = list(main.where)
        w = tree.args.get("where")
        if w is not None:
            scope.check_subqueries(w.this)
            where_parts.append(scope.qualify(w.this))
        where = None
        for part in where_parts:
            where = part if where is None else exp.and_(where, part, copy=False)
        for clause in ("having", "order"):
            node = tree.args.get(clause)
            if node is not None and any(isinstance(n, (exp.Subquery, exp.Exists)) for n in node.walk()):
                reject("subquery", f"subqueries are not allowed in {clause.upper()}", "Filter rows in WHERE.")
        for _, e in items:
            if any(isinstance(n, (exp.Subquery, exp.Exists, exp.Select)) for n in e.walk()):
                reject("subquery", "subqueries are not allowed in the SELECT list", "Filter rows in WHERE.")
        for g in group_raw:
            if any(isinstance(n, (exp.Subquery, exp.Exists, exp.Select)) for n in g.walk()):
                reject("subquery", "subqueries are not allowed in GROUP BY", "Group by columns or expressions.")
        having = tree.args.get("having")
        order = tree.args.get("order")
        limit = tree.args.get("limit")
        offset = tree.args.get("offset")
        return FlatQuery(
            items=[(n, scope.qualify(e)) for n, e in items],
            group=[scope.qualify(g) for g in group_raw],
            has_group=group_node is not None,
            where=where,
            having=scope.qualify(having.this, aliases) if having is not None else None,
            order=[scope.qualify(o, aliases) for o in order.expressions] if order is not None else [],
            limit=limit.expression if limit is not None else None,
            offset=offset.expression if offset is not None else None,
            distinct=bool(tree.args.get("distinct")),
            joins=joins,
            types=self.types,
            projections=self.projections,
        )

    def _join(self, j, src: _Source, alias: str, main: _Source, publics) -> PublicJoin:
        table = src.public
        key = self.policy.public_tables[table].key
        side = (j.side or "").upper()
        kind = (j.kind or "").upper()
        hint = f"Join a public table on its key: JOIN {table} USING ({key}) or ON {table}.{key} = {self.policy.table}.<column>."
        if side not in ("", "LEFT") or kind not in ("", "INNER", "OUTER"):
            reject("join-condition", f"{(side + ' ' + kind).strip() or 'this'} JOIN is not supported", hint)
        scope = _Scope(self, main, [])
        using = j.args.get("using")
        on = j.args.get("on")
        if using:
            names = [u.name.lower() for u in using]
            if names != [key]:
                reject("join-condition", f"public table {table!r} must be joined on its key {key!r}", hint)
            private_expr = scope.qualify(exp.column(key))
        elif on is not None:
            if not isinstance(on, exp.EQ):
                reject("join-condition", f"public table {table!r} must be joined by one equality on its key", hint)
            sides = [on.this, on.expression]
            pub = [s for s in sides if isinstance(s, exp.Column) and s.table.lower() in src.names
                   and s.name.lower() == key]
            if len(pub) != 1:
                reject("join-condition", f"public table {table!r} must be joined on its key {key!r}", hint)
            other = sides[1] if sides[0] is pub[0] else sides[0]
            if any(isinstance(c, exp.Column) and c.table.lower() in src.names for c in other.find_all(exp.Column)):
                reject("join-condition", "the join condition must compare the key with the dataset table", hint)
            private_expr = scope.qualify(other)
        else:
            reject("join-condition", f"JOIN {table} needs USING ({key}) or ON", hint)
        return PublicJoin(table=table, alias=alias, user_alias=next(iter(src.names)), left=side == "LEFT",
                          private_expr=private_expr, key=key)


class _Scope:
    """Column resolution for one FROM: the private source plus joined public tables."""

    def __init__(self, fl: Flattener, private: _Source, publics: list[tuple[_Source, str]]) -> None:
        self.fl, self.private, self.publics = fl, private, publics

    def _private_names(self) -> list[str]:
        return list(self.private.mapping) if self.private.mapping is not None else list(self.fl.kept)

    def has(self, name: str) -> bool:
        name = name.lower()
        if name in self._private_names():
            return True
        return any(name in self.fl.policy.public_tables[s.public].columns for s, _ in self.publics)

    def _private(self, name: str):
        if self.private.mapping is not None:
            e = self.private.mapping.get(name)
            return e.copy() if e is not None else None
        return exp.column(name, PRIVATE_ALIAS) if name in self.fl.kept else None

    def _unknown(self, col: exp.Column, extra: list[str]):
        name = col.name
        candidates = self._private_names() + [c for s, _ in self.publics
                                              for c in self.fl.policy.public_tables[s.public].columns] + extra
        msg = f"unknown column {col.sql(dialect='duckdb')!r}."
        if name.lower() in self.fl.policy.columns and name.lower() not in self.fl.kept:
            msg = f"column {name!r} is dropped at ingestion by the dataset policy."
            reject("unknown-column", msg, "It is not stored; choose another column.")
        reject("unknown-column", msg + did_you_mean(name, candidates),
               f"Columns of {self.fl.policy.table!r}: {', '.join(self._private_names())}.")

    def resolve(self, col: exp.Column, aliases: dict | None):
        name, table = col.name.lower(), col.table.lower()
        if col.args.get("db") or col.args.get("catalog"):
            self._unknown(col, [])
        if table:
            if table in self.private.names or (table == self.fl.policy.table and self.private.mapping is None):
                e = self._private(name)
                if e is None:
                    self._unknown(col, [])
                return e
            for s, alias in self.publics:
                if table in s.names:
                    if name not in self.fl.policy.public_tables[s.public].columns:
                        self._unknown(col, [])
                    return exp.column(name, alias)
            reject("unknown-column", f"unknown table qualifier {col.table!r} in {col.sql(dialect='duckdb')!r}",
                   "Qualify columns with a table name or alias that appears in FROM/JOIN.")
        if aliases is not None and name in aliases:
            return exp.column(name, OUT_ALIAS)
        e = self._private(name)
        if e is not None:
            return e
        hits = [alias for s, alias in self.publics if name in self.fl.policy.public_tables[s.public].columns]
        if len(hits) == 1:
            return exp.column(name, hits[0])
        self._unknown(col, list(aliases or ()))

    def check_subqueries(self, where) -> None:
        """Subqueries in WHERE may read only public tables (reading the private table again would escape bounding)."""
        for sub in where.find_all(exp.Select):
            for t in sub.find_all(exp.Table):
                name = t.name.lower()
                if name not in self.fl.policy.public_tables or t.db:
                    reject("subquery", "a subquery in WHERE may only read the policy's public tables",
                           "Filter the dataset table directly in WHERE; one query reads it once.")

    def qualify(self, e, aliases: dict | None = None):
        """A copy of ``e`` with every column outside subqueries resolved and qualified."""
        e = e.copy()
        if isinstance(e, exp.Column):
            return self.resolve(e, aliases)
        for col in list(e.find_all(exp.Column)):
            if isinstance(col.this, exp.Star):
                continue
            anc = col.parent
            inside = False
            while anc is not None:
                if isinstance(anc, (exp.Select, exp.Subquery)):
                    inside = True
                    break
                anc = anc.parent
            if not inside:
                col.replace(self.resolve(col, aliases))
        return e


def _has_agg(e) -> bool:
    return any(isinstance(n, exp.AggFunc) for n in e.walk())


def flatten(policy: DatasetPolicy, tree: exp.Select) -> FlatQuery:
    return Flattener(policy).flatten(tree)
