"""UNION/INTERSECT/EXCEPT combine row sets before any bounding, so one unit could appear in several branches."""

from sqlglot import exp

from pdbg.sql.reject import reject

RULE = "set-operation"


def check(ctx) -> None:
    for node in ctx.tree.walk():
        if isinstance(node, (exp.Union, exp.Intersect, exp.Except)):
            reject(RULE, f"{type(node).__name__.upper()} is not supported",
                   "Run each SELECT as its own query, or combine conditions with OR / CASE in one SELECT.")
