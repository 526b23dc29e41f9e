"""Only SELECT reads: DDL/DML, COPY, ATTACH, INSTALL, LOAD, PRAGMA, SET, EXPORT, CALL change state or reach outside."""

from sqlglot import exp

from pdbg.sql.reject import reject

RULE = "select-only"


def _kind(tree) -> str:
    if isinstance(tree, exp.Command):
        return str(tree.this).upper()
    return type(tree).__name__.upper()


def check(ctx) -> None:
    tree = ctx.tree
    if isinstance(tree, (exp.Union, exp.Intersect, exp.Except)):
        return  # set-operation explains these better
    if not isinstance(tree, exp.Select):
        reject(RULE, f"only SELECT queries are allowed, not {_kind(tree)}",
               "Ask a question with one SELECT … FROM <dataset table> that aggregates (COUNT, SUM, AVG, quantiles).")
    for node in tree.walk():
        if isinstance(node, (exp.Insert, exp.Update, exp.Delete, exp.Create, exp.Drop, exp.Copy, exp.Command,
                             exp.Merge, exp.Alter, exp.Pragma, exp.Set, exp.Attach, exp.Detach, exp.Into)):
            reject(RULE, f"{_kind(node)} is not allowed inside a query",
                   "Only read with SELECT; data changes and settings are admin operations.")
