"""The privacy unit, identifier and PII columns never appear in the output or as group keys (only inside COUNT)."""

from sqlglot import exp

from pdbg.sql.aggs import contains_agg
from pdbg.sql.flatten import PRIVATE_ALIAS
from pdbg.sql.reject import reject

RULE = "sensitive-column"


def _sensitive(ctx, e):
    for c in e.find_all(exp.Column):
        col = ctx.policy.columns.get(c.name) if c.table == PRIVATE_ALIAS else None
        if col is not None and (col.sensitive or c.name == ctx.policy.privacy_unit):
            return c.name
    return None


def check(ctx) -> None:
    fq = ctx.flat
    exprs = [g for g in fq.group] + [e for _, e in fq.items if not contains_agg(e)]
    for e in exprs:
        name = _sensitive(ctx, e)
        if name:
            what = "privacy unit" if name == ctx.policy.privacy_unit else ctx.policy.columns[name].class_.value
            reject(RULE, f"column {name!r} ({what}) cannot be output or grouped by",
                   f"Count affected units with COUNT(DISTINCT {ctx.policy.privacy_unit}) and group by public "
                   "dimensions instead.")
    for _, e in fq.items:
        for node in e.walk():
            if isinstance(node, exp.AggFunc) and not isinstance(node, exp.Count):
                name = _sensitive(ctx, node)
                if name:
                    reject(RULE, f"column {name!r} cannot be aggregated except by COUNT",
                           "Aggregate metric columns (SUM/AVG/quantiles) and count rows or units.")
