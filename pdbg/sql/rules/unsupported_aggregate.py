"""Aggregates pdbg has no bounded DP version of (yet): refuse instead of guessing a sensitivity."""

from sqlglot import exp

from pdbg.sql.aggs import SUPPORTED, is_aggregate, name_of
from pdbg.sql.reject import reject

RULE = "unsupported-aggregate"


def check(ctx) -> None:
    for node in ctx.tree.walk():
        if is_aggregate(node) and not isinstance(node, SUPPORTED):
            name = name_of(node)
            hint = ("Supported: COUNT(*), COUNT(col), COUNT(DISTINCT <privacy unit>), SUM, AVG, STDDEV, VARIANCE, "
                    "quantile_cont/quantile_disc/percentile_cont … WITHIN GROUP/median/approx_quantile.")
            if name in ("count_if", "countif"):
                hint = "Write COUNT(*) FILTER (WHERE <condition>)."
            reject(RULE, f"aggregate {name.upper()}() is not supported", hint)
        if isinstance(node, exp.Count) and isinstance(node.this, exp.Distinct) is False and node.expressions:
            reject(RULE, "COUNT with several arguments is not supported", "Use COUNT(*) or COUNT(col).")
