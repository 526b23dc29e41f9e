"""Which tables a query names: lets the session pick the dataset policy before planning."""

from __future__ import annotations

import sqlglot
from sqlglot import exp

from pdbg.errors import QueryRejected


def referenced_tables(sql: str) -> set[str]:
    """Lower-cased names of the base tables a query reads (CTE names excluded)."""
    try:
        statements = sqlglot.parse(sql, read="duckdb")
    except sqlglot.errors.SqlglotError as err:   # ParseError, TokenError (e.g. an unclosed quote), …
        first = (getattr(err, "errors", None) or [{}])[0]
        where = f" at line {first.get('line')}, column {first.get('col')}" if first else ""
        raise QueryRejected(
            f"the query is not valid SQL{where}", "Check the syntax (DuckDB dialect).", rule="syntax"
        ) from None
    names: set[str] = set()
    for stmt in statements:
        if stmt is None:
            continue
        ctes = {c.alias_or_name.lower() for c in stmt.find_all(exp.CTE)}
        for t in stmt.find_all(exp.Table):
            if t.name and t.name.lower() not in ctes:
                names.add(t.name.lower())
    return names
