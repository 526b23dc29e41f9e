"""Table functions (read_csv, read_parquet, glob, range, …) read files or make rows outside the policy."""

from sqlglot import exp

from pdbg.sql.reject import reject

RULE = "table-function"


def check(ctx) -> None:
    for node in ctx.tree.walk():
        fn = None
        if isinstance(node, exp.Table) and not isinstance(node.this, exp.Identifier):
            fn = node.this
        elif isinstance(node, (exp.Unnest, exp.Lateral, exp.Values)):
            fn = node
        elif isinstance(node, (exp.From, exp.Join)) and isinstance(node.this, exp.Func):
            fn = node.this
        if fn is not None:
            name = fn.sql_name() if isinstance(fn, exp.Func) else type(fn).__name__
            reject(RULE, f"table function {name.lower()}() is not allowed",
                   f"Read only the dataset table {ctx.policy.table!r} (and the policy's public tables) by name.")
        if isinstance(node, exp.Table) and isinstance(node.this, exp.Identifier) and node.this.quoted:
            if any(ch in node.name for ch in "/.\\:*"):
                reject(RULE, "reading a file by its path is not allowed",
                       f"Read only the dataset table {ctx.policy.table!r} by name.")
