"""Names starting with "__" are reserved for the bounded SQL's own columns (__unit, __units, __m0…)."""

from sqlglot import exp

from pdbg.sql.reject import reject

RULE = "reserved-name"


def check(ctx) -> None:
    for node in ctx.tree.walk():
        if isinstance(node, exp.Identifier) and str(node.this).startswith("__"):
            reject(RULE, f"the name {node.this!r} is reserved",
                   "Pick a name that does not start with two underscores.")
