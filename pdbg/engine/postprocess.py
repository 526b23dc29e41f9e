"""HAVING / ORDER BY / LIMIT run on the already-noisy DataFrame (post-processing is free in DP).

The DataFrame holds released values only, so an ordinary in-memory DuckDB
connection is fine here; it never sees the data file.
"""

from __future__ import annotations


def apply_post_sql(df, post_sql: str | None, con=None):
    """Run post_sql over ``released``; ``con`` may be the query's own (read-only) connection,
    which saves starting an in-memory database (~15 ms). The view is dropped afterwards."""
    if not post_sql:
        return df
    import duckdb

    if con is not None:
        con.register("released", df)
        try:
            return con.execute(post_sql).df()
        finally:
            con.unregister("released")
    own = duckdb.connect(":memory:", config={"enable_external_access": False, "lock_configuration": True})
    try:
        own.register("released", df)
        return own.execute(post_sql).df()
    finally:
        own.close()
