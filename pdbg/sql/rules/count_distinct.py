"""COUNT(DISTINCT col) is only DP for the privacy unit (1 per unit); distinct values of another column leak which values exist."""

from sqlglot import exp

from pdbg.sql.flatten import PRIVATE_ALIAS
from pdbg.sql.reject import reject

RULE = "count-distinct"


def check(ctx) -> None:
    unit = ctx.policy.privacy_unit
    fq = ctx.flat
    exprs = [e for _, e in fq.items] + list(fq.order) + ([fq.having] if fq.having is not None else [])
    for node in (n for e in exprs for n in e.walk()):
        if isinstance(node, exp.Count) and isinstance(node.this, exp.Distinct):
            args = node.this.expressions
            ok = (len(args) == 1 and isinstance(args[0], exp.Column) and args[0].table == PRIVATE_ALIAS
                  and args[0].name == unit)
            if not ok:
                reject(RULE, "COUNT(DISTINCT …) is only allowed on the privacy unit",
                       f"COUNT(DISTINCT {unit}) counts affected units; for the values of a column, "
                       "GROUP BY it and COUNT(*) (rare values are then suppressed by partition selection).")
