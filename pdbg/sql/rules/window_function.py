"""Window functions (and QUALIFY) compute per-row values across rows: row-level output in disguise."""

from sqlglot import exp

from pdbg.sql.reject import reject

RULE = "window-function"


def check(ctx) -> None:
    for node in ctx.tree.walk():
        if isinstance(node, (exp.Window, exp.Qualify)):
            reject(RULE, "window functions (OVER / QUALIFY) are not allowed",
                   "Aggregate with GROUP BY instead; e.g. GROUP BY time_bucket(INTERVAL '5 minutes', ts) for a time series.")
