"""SELECT * (or t.*, COLUMNS(*)) in the output is row-level and names columns the investigator did not pick."""

from sqlglot import exp

from pdbg.sql.reject import reject

RULE = "no-star"


def check(ctx) -> None:
    for item in ctx.tree.expressions:
        if any(isinstance(n, (exp.Star, exp.Columns)) and not isinstance(n.parent, exp.Count)
               for n in item.walk()):
            reject(RULE, "SELECT * (or COLUMNS(*)) is not allowed in the output",
                   "Name the aggregates you want, e.g. SELECT service, COUNT(*) AS n FROM … GROUP BY service.")
