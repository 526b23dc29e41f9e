"""HAVING / ORDER BY / LIMIT run on the already-noisy DataFrame (post-processing is free in DP).

The DataFrame holds released values only, so an ordinary in-memory DuckDB
connection is fine here; it never sees the data file.
"""

from __future__ import annotations


def apply_post_sql(df, post_sql: str | None):
    if not post_sql:
        return df
    import duckdb

    con = duckdb.connect(":memory:", config={"enable_external_access": False, "lock_configuration": True})
    try:
        con.register("released", df)
        return con.execute(post_sql).df()
    finally:
        con.close()
