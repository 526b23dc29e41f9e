"""Every output column must be an aggregate or a group key; anything else would print row values."""

from pdbg.sql.aggs import contains_agg
from pdbg.sql.reject import reject

RULE = "row-level-output"


def check(ctx) -> None:
    fq = ctx.flat
    has_agg = any(contains_agg(e) for _, e in fq.items)
    if not has_agg and not fq.has_group:
        reject(RULE, "the query returns rows, not aggregates",
               "Aggregate: e.g. SELECT service, COUNT(*) AS n FROM … GROUP BY service.")
    keys = {g.sql() for g in fq.group}
    for name, e in fq.items:
        if not contains_agg(e) and e.sql() not in keys:
            reject(RULE, f"output {name or e.sql(dialect='duckdb')!r} is neither an aggregate nor a GROUP BY key",
                   "Add it to GROUP BY, or wrap it in an aggregate (COUNT, SUM, AVG, quantile).")
    if fq.distinct:
        reject(RULE, "SELECT DISTINCT is not supported", "Use GROUP BY with an aggregate such as COUNT(*).")
