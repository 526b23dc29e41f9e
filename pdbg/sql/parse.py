"""Parsing investigator SQL with sqlglot (DuckDB dialect) into one statement.

Parse errors become ``QueryRejected(rule="syntax")``; sqlglot's message only quotes the
query text, which is the investigator's own, never data.
"""

from __future__ import annotations

import logging

import sqlglot
from sqlglot import exp
from sqlglot.errors import SqlglotError

from pdbg.sql.reject import reject

DIALECT = "duckdb"

# sqlglot logs "falling back to Command" for statements it cannot parse; those are
# refused by rules anyway, so the log line is noise.
logging.getLogger("sqlglot").setLevel(logging.ERROR)


def parse_statements(sql: str) -> list[exp.Expr]:
    if not isinstance(sql, str) or not sql.strip():
        reject("syntax", "the query is empty", "Write one SELECT statement over the dataset table.")
    try:
        parsed = sqlglot.parse(sql, read=DIALECT)
    except SqlglotError as err:
        first = str(err).splitlines()[0] if str(err) else "invalid SQL"
        reject("syntax", f"the query could not be parsed: {first[:300]}", "Fix the SQL syntax (DuckDB dialect).")
    except (RecursionError, ValueError, TypeError, IndexError, KeyError, AttributeError):
        reject("syntax", "the query could not be parsed", "Fix the SQL syntax (DuckDB dialect).")
    return [p for p in parsed if p is not None]


def render(node: exp.Expr) -> str:
    """DuckDB SQL text of an AST node."""
    return node.sql(dialect=DIALECT)
