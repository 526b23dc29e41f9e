"""Functions that raise on purpose, read the environment or run SQL text are never allowed.

error() would turn a row value into a query failure (a side channel); getenv/current_setting
read the server; query()/query_table() run unchecked SQL.
"""

from sqlglot import exp

from pdbg.sql.reject import reject

RULE = "blocked-function"

_NAMES = {"error", "getenv", "current_setting", "query", "query_table", "read_text", "read_blob", "sql_auto_complete",
          "which_secret", "load_extension", "enable_profiling", "checkpoint", "force_checkpoint", "system",
          "current_user", "session_user", "user", "current_role", "current_query"}


def check(ctx) -> None:
    for node in ctx.tree.walk():
        name = None
        if isinstance(node, exp.Anonymous):
            name = str(node.this).lower()
        elif isinstance(node, (exp.CurrentUser, exp.CurrentRole if hasattr(exp, "CurrentRole") else exp.CurrentUser)):
            name = "current_user"
        if name in _NAMES:
            reject(RULE, f"function {name}() is not allowed",
                   "Remove it; queries may only compute aggregates of the dataset's rows.")
