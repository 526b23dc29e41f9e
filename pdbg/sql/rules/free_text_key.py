"""Free-text columns are never group keys or outputs: each distinct message is close to one row."""

from sqlglot import exp

from pdbg.policy.model import ColumnClass
from pdbg.sql.aggs import contains_agg
from pdbg.sql.flatten import PRIVATE_ALIAS
from pdbg.sql.reject import reject

RULE = "free-text-key"


def check(ctx) -> None:
    fq = ctx.flat
    for e in [*fq.group, *(e for _, e in fq.items if not contains_agg(e))]:
        for c in e.find_all(exp.Column):
            col = ctx.policy.columns.get(c.name) if c.table == PRIVATE_ALIAS else None
            if col is not None and col.class_ == ColumnClass.free_text:
                if isinstance(e, (exp.Like, exp.ILike, exp.Predicate)) and not isinstance(e, exp.Column):
                    continue  # a boolean predicate key (message LIKE '%x%') has domain {false, true}
                reject(RULE, f"free-text column {c.name!r} cannot be a group key or an output",
                       f"Filter it instead, e.g. WHERE {c.name} LIKE '%timeout%', or group by a CASE of LIKE patterns.")
