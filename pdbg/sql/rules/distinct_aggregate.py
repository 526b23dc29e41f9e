"""SUM/AVG/… (DISTINCT x) depend on which values exist, not on bounded per-unit contributions."""

from sqlglot import exp

from pdbg.sql.aggs import name_of
from pdbg.sql.reject import reject

RULE = "distinct-aggregate"


def check(ctx) -> None:
    for node in ctx.tree.walk():
        if isinstance(node, exp.AggFunc) and not isinstance(node, exp.Count) and isinstance(node.this, exp.Distinct):
            reject(RULE, f"{name_of(node).upper()}(DISTINCT …) is not supported",
                   "Drop DISTINCT: each unit's rows are already bounded per group.")
