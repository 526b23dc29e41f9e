"""System catalogs describe the database (and could list other schemas); they are never queryable."""

from sqlglot import exp

from pdbg.sql.reject import reject

RULE = "system-catalog"

_SCHEMAS = {"information_schema", "pg_catalog", "system", "temp"}
_PREFIXES = ("duckdb_", "pragma_", "sqlite_", "pg_")


def is_catalog(name: str, db: str = "") -> bool:
    name, db = name.lower(), (db or "").lower()
    return db in _SCHEMAS or name in {"sqlite_master", "sqlite_schema", "information_schema"} or name.startswith(_PREFIXES)


def check(ctx) -> None:
    for node in ctx.tree.walk():
        name = None
        if isinstance(node, exp.Table):
            if isinstance(node.this, exp.Identifier):
                name, db = node.name, node.db
            elif isinstance(node.this, exp.Func):
                name, db = node.this.sql_name(), ""
        elif isinstance(node, exp.Anonymous):
            name, db = str(node.this), ""
        if name and is_catalog(name, db):
            reject(RULE, f"system catalog {'.'.join(x for x in (db, name) if x)!r} cannot be queried",
                   f"Query the dataset table {ctx.policy.table!r}; its columns are listed by `pdbg dataset list`.")
