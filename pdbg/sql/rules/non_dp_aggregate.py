"""MIN/MAX/LIST/STRING_AGG/ARBITRARY/FIRST/ANY_VALUE/ARRAY_AGG/HISTOGRAM/MODE… return actual row values."""

from pdbg.sql.aggs import is_non_dp, name_of
from pdbg.sql.reject import reject

RULE = "non-dp-aggregate"


def check(ctx) -> None:
    for node in ctx.tree.walk():
        if is_non_dp(node):
            name = name_of(node)
            if name in ("min", "max"):
                hint = (f"{name.upper()} returns one unit's value; ask for a DP quantile instead: "
                        f"quantile_cont(x, {0 if name == 'min' else 1}) (or 0.01 / 0.99 for a robust edge).")
            elif name in ("mode", "histogram"):
                hint = "GROUP BY the column and COUNT(*) to get a DP histogram."
            else:
                hint = "It returns row values; aggregate with COUNT, SUM, AVG or a quantile instead."
            reject(RULE, f"{name.upper()}() is not a differentially private aggregate", hint)
