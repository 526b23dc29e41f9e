"""What is checked is what runs (DESIGN.md invariant 9): an allowlist over the *resolved* query.

Why: the statement rules look at the query as typed, but the planner renders something else:
CTE and FROM-subquery columns are substituted into the outer query, HAVING and ORDER BY are
re-rendered for post-processing, join conditions are copied into the base scan. A blocklist
of node types (``Subquery``, ``Exists``) misses ``ARRAY(SELECT …)``, a scalar subquery hidden
in a CTE column, or one inside a join condition. So this rule walks every expression of the
flat query (after :mod:`pdbg.sql.flatten` inlined CTEs and resolved every column) and allows,
per clause, only node types known to be row-level, deterministic and cheap. Anything else,
and any ``SELECT`` anywhere, is refused before data is touched.

Clauses and what they may hold:

* row expressions (WHERE, GROUP BY keys, CTE projections, join conditions, aggregate
  arguments and FILTER conditions): columns of the dataset table or a joined public table,
  literals, operators, CASE, scalar casts and allowlisted functions;
* SELECT items: the same plus the supported aggregates at the top, FILTER, WITHIN GROUP,
  ``COUNT(*)``, ``COUNT(DISTINCT …)`` and a literal list of quantile fractions;
* HAVING / ORDER BY: the same plus references to output columns (they run on released values).
"""

from __future__ import annotations

from sqlglot import exp

from pdbg.sql.aggs import SUPPORTED, is_aggregate
from pdbg.sql.flatten import OUT_ALIAS, PRIVATE_ALIAS
from pdbg.sql.reject import reject
from pdbg.sql.rules.function_allowlist import allowed_function

RULE = "unsupported-expression"

# Row-level node types (operators, literals, conditionals). Functions are judged by the
# function allowlist; columns, casts and the aggregate wrappers by the checks below.
_ROW_NODES = (
    exp.Literal, exp.Null, exp.Boolean, exp.Paren, exp.Neg, exp.Not, exp.And, exp.Or, exp.Xor,
    exp.Add, exp.Sub, exp.Mul, exp.Div, exp.IntDiv, exp.Mod, exp.DPipe,
    exp.EQ, exp.NEQ, exp.GT, exp.GTE, exp.LT, exp.LTE, exp.NullSafeEQ, exp.NullSafeNEQ,
    exp.Is, exp.In, exp.Between, exp.Like, exp.ILike, exp.Escape,
    exp.Case, exp.If, exp.Interval, exp.Var, exp.Identifier,
)
# Nodes that are, or contain, another query: never allowed inside an expression.
_QUERY_NODES = (exp.Select, exp.Subquery, exp.Exists, exp.Union, exp.Intersect, exp.Except, exp.Lateral,
                exp.Unnest, exp.Values, exp.Table, exp.Query)
_SCALAR_TYPES = {
    exp.DataType.Type.BOOLEAN, exp.DataType.Type.TINYINT, exp.DataType.Type.SMALLINT, exp.DataType.Type.INT,
    exp.DataType.Type.BIGINT, exp.DataType.Type.UTINYINT, exp.DataType.Type.USMALLINT, exp.DataType.Type.UINT,
    exp.DataType.Type.UBIGINT, exp.DataType.Type.FLOAT, exp.DataType.Type.DOUBLE, exp.DataType.Type.DECIMAL,
    exp.DataType.Type.VARCHAR, exp.DataType.Type.TEXT, exp.DataType.Type.CHAR, exp.DataType.Type.DATE,
    exp.DataType.Type.TIMESTAMP, exp.DataType.Type.TIMESTAMPNTZ, exp.DataType.Type.DATETIME,
    exp.DataType.Type.TIMESTAMPTZ,
}
_AGGREGATE_CLAUSES = ("the SELECT list", "HAVING", "ORDER BY")
_SUBQUERY_HINT = ("One query reads the dataset table once: filter rows in WHERE, join a public table with "
                  "JOIN … USING (key), and aggregate in the outer SELECT.")


def _what(node) -> str:
    if isinstance(node, exp.Func):
        return f"{node.sql_name().lower() if not isinstance(node, exp.Anonymous) else str(node.this).lower()}()"
    return type(node).__name__


def _check_node(node, clause: str, aliases: set[str]) -> None:
    parent = node.parent
    if isinstance(node, _QUERY_NODES):
        reject("subquery", f"subqueries are not allowed in {clause}", _SUBQUERY_HINT)
    if isinstance(node, exp.PositionalColumn):
        reject(RULE, f"positional references (#n) are not allowed in {clause}",
               "Name the column or output instead of #n.")
    if isinstance(node, (exp.Star, exp.Columns)):
        if isinstance(node, exp.Star) and isinstance(parent, exp.Count) and parent.this is node:
            return
        reject("no-star", f"star expressions are not allowed in {clause}", "Name the columns you mean.")
    if isinstance(node, exp.Column):
        if isinstance(node.this, exp.Star) or node.table not in aliases:
            reject(RULE, f"column {node.sql(dialect='duckdb')!r} cannot be used in {clause}",
                   "Use columns of the dataset table or a joined public table.")
        return
    if isinstance(node, _ROW_NODES):
        if isinstance(node, exp.In) and (node.args.get("query") or node.args.get("unnest") or node.args.get("field")):
            reject("subquery", f"IN (SELECT …) is not allowed in {clause}", _SUBQUERY_HINT)
        return
    if isinstance(node, (exp.Cast, exp.TryCast)):
        return   # the target type is checked as a DataType node
    if isinstance(node, exp.DataType):
        if node.this not in _SCALAR_TYPES or any(isinstance(c, exp.DataType) for c in node.expressions):
            reject(RULE, f"casts to {node.sql(dialect='duckdb')} are not allowed",
                   "Cast to a scalar type: BIGINT, DOUBLE, DECIMAL, VARCHAR, BOOLEAN, DATE or TIMESTAMP.")
        return
    if isinstance(node, exp.DataTypeParam):
        return
    if is_aggregate(node):
        if clause not in _AGGREGATE_CLAUSES or not isinstance(node, SUPPORTED):
            reject("aggregate-placement", f"aggregate {_what(node)} is not allowed in {clause}",
                   "Aggregate only at the top of a SELECT item, or in HAVING/ORDER BY.")
        return
    if isinstance(node, exp.Distinct) and isinstance(parent, exp.Count):
        return
    if isinstance(node, (exp.Filter, exp.WithinGroup)) and clause in _AGGREGATE_CLAUSES:
        return
    if isinstance(node, exp.Where) and isinstance(parent, exp.Filter):
        return
    if isinstance(node, exp.Order) and isinstance(parent, exp.WithinGroup):
        return
    if isinstance(node, exp.Ordered) and (isinstance(parent, exp.Order) or parent is None):
        return
    if isinstance(node, exp.Array) and _quantile_fractions(node):
        return
    if isinstance(node, exp.Func) and not isinstance(node, exp.Window) and allowed_function(node):
        return
    reject(RULE, f"{_what(node)} is not allowed in {clause}",
           "Use columns, literals, comparisons, CASE, scalar casts, arithmetic and the allowed functions.")


def _quantile_fractions(node: exp.Array) -> bool:
    """``[0.5, 0.95]`` as the fraction argument of a quantile: a list of number literals, nothing else."""
    items = node.expressions
    return bool(items) and all(isinstance(i, exp.Literal) and not i.is_string for i in items) and \
        isinstance(node.parent, SUPPORTED)


def check_expr(e, clause: str, aliases: set[str]) -> None:
    """Refuse ``e`` unless every node in it is allowed in ``clause``."""
    if isinstance(e, _QUERY_NODES) or e.find(*_QUERY_NODES) is not None:   # name the real problem first
        reject("subquery", f"subqueries are not allowed in {clause}", _SUBQUERY_HINT)
    for node in e.walk():
        _check_node(node, clause, aliases)


def check(ctx) -> None:
    fq = ctx.flat
    row = {PRIVATE_ALIAS, *(j.alias for j in fq.joins)}
    for e in fq.projections:
        check_expr(e, "a CTE or FROM-subquery column", row)
    for j in fq.joins:
        check_expr(j.private_expr, "a JOIN condition", row)
    if fq.where is not None:
        check_expr(fq.where, "WHERE", row)
    for g in fq.group:
        check_expr(g, "GROUP BY", row)
        for node in g.walk():
            if is_aggregate(node):
                reject("aggregate-placement", "aggregates are not allowed in GROUP BY",
                       "Group by columns or row expressions.")
    for _, e in fq.items:
        check_expr(e, "the SELECT list", row)
    post = row | {OUT_ALIAS}
    if fq.having is not None:
        check_expr(fq.having, "HAVING", post)
    for o in fq.order:
        check_expr(o, "ORDER BY", post)
    for what, node in (("LIMIT", fq.limit), ("OFFSET", fq.offset)):
        if node is not None and not (isinstance(node, exp.Literal) and not node.is_string):
            reject("post-processing", f"{what} must be a non-negative integer literal", f"Write e.g. {what} 10.")
