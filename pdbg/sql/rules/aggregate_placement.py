"""Aggregates only at the top of a SELECT item (or in HAVING/ORDER BY): not nested, not in WHERE/GROUP BY, not in arithmetic."""

from sqlglot import exp

from pdbg.sql.aggs import contains_agg, is_aggregate, unwrap
from pdbg.sql.reject import reject

RULE = "aggregate-placement"


def _check_top(e, where: str) -> None:
    agg, filt, order = unwrap(e)
    if not is_aggregate(agg):
        if contains_agg(e):
            reject(RULE, f"an aggregate inside an expression in {where} is not supported",
                   "Select each aggregate on its own (e.g. SUM(x) AS s, COUNT(*) AS n) and combine the "
                   "released values afterwards (pandas), or use AVG for a mean.")
        return
    inner = [a for a in agg.args.values() if a is not None]
    for arg in inner:
        for a in (arg if isinstance(arg, list) else [arg]):
            if hasattr(a, "walk") and contains_agg(a):
                reject(RULE, "nested aggregates are not allowed", "Aggregate once per output column.")
    if filt is not None and contains_agg(filt):
        reject(RULE, "an aggregate inside FILTER (WHERE …) is not allowed", "FILTER takes a row condition.")
    if order is not None and not isinstance(agg, (exp.PercentileCont, exp.PercentileDisc)):
        reject(RULE, "WITHIN GROUP is only supported for percentile_cont / percentile_disc",
               "Use percentile_cont(a) WITHIN GROUP (ORDER BY x).")


def check(ctx) -> None:
    fq = ctx.flat
    if fq.where is not None and contains_agg(fq.where):
        reject(RULE, "aggregates are not allowed in WHERE", "Filter on aggregates with HAVING.")
    for g in fq.group:
        if contains_agg(g):
            reject(RULE, "aggregates are not allowed in GROUP BY", "Group by columns or row expressions.")
    for _, e in fq.items:
        _check_top(e, "SELECT")
    for o in fq.order:
        _check_top(o.this if isinstance(o, exp.Ordered) else o, "ORDER BY")
    if fq.having is not None:
        for node in fq.having.walk():
            if is_aggregate(node):
                _check_top(node.parent if isinstance(node.parent, (exp.Filter, exp.WithinGroup)) else node, "HAVING")
