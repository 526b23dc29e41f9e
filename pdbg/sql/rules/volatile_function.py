"""Volatile functions make answers irreproducible (breaking the release cache) or random outside the DP samplers."""

from sqlglot import exp

from pdbg.sql.reject import reject

RULE = "volatile-function"

_NODES = (exp.Rand, exp.Uuid, exp.CurrentTimestamp, exp.CurrentDate, exp.CurrentTime, exp.CurrentDatetime,
          exp.TableSample)
_NAMES = {"random", "rand", "setseed", "uuid", "gen_random_uuid", "uuidv4", "uuidv7", "now", "current_timestamp",
          "current_date", "current_time", "get_current_time", "get_current_timestamp", "today", "localtime",
          "localtimestamp", "transaction_timestamp", "nextval", "currval", "txid_current", "epoch_ms_now"}


def _name(node) -> str | None:
    if isinstance(node, exp.Anonymous):
        return str(node.this).lower()
    if isinstance(node, exp.Func):
        return node.sql_name().lower()
    return None


def check(ctx) -> None:
    for node in ctx.tree.walk():
        if isinstance(node, _NODES) or _name(node) in _NAMES:
            if isinstance(node, exp.TableSample):
                reject(RULE, "sampling (USING SAMPLE / TABLESAMPLE) is random and not allowed",
                       "Drop the sample clause; pdbg bounds each unit's contribution itself.")
            what = _name(node) or type(node).__name__.lower()
            reject(RULE, f"volatile function {what}() is not allowed",
                   "Use literal values instead, e.g. ts >= TIMESTAMP '2026-11-20 14:00:00' rather than now(); "
                   "randomness comes only from pdbg's noise.")
