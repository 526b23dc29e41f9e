"""Exactly one statement: a second statement could do anything after the checked one."""

from pdbg.sql.reject import reject

RULE = "single-statement"


def check(ctx) -> None:
    if len(ctx.statements) != 1:
        reject(RULE, f"the query has {len(ctx.statements)} statements; exactly one is allowed",
               "Send one SELECT per query (remove extra ';'-separated statements).")
    ctx.tree = ctx.statements[0]
