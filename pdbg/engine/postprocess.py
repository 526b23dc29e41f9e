"""HAVING / ORDER BY / LIMIT run on the released (noisy) answer, apart from the data (DESIGN.md invariant 11).

Why apart: post-processing of DP output is free only if it sees nothing but that output. The
review that motivated this module read raw rows with ``ORDER BY ARRAY(SELECT #2 FROM requests)``
because post-processing ran on the query's own cursor on ``data.duckdb``. So it runs here in a
separate in-memory DuckDB with no file attached, external access off, extensions neither
installed nor loaded and the configuration locked, over one registered table ``released``.
The text is checked by the independent verifier first. Any failure here happens after private
rows were read, so the caller charges it; its message is one fixed sentence (DuckDB's text
quotes values).
"""

from __future__ import annotations

import threading

from pdbg.errors import QueryFailed

SANDBOX_CONFIG = {
    "enable_external_access": False,
    "autoinstall_known_extensions": False,
    "autoload_known_extensions": False,
    "lock_configuration": True,
}
_LOCAL = threading.local()


def _sandbox():
    """This thread's in-memory database (~15 ms to start, so it is kept; it holds no data between calls)."""
    import duckdb

    import os

    con, pid = getattr(_LOCAL, "con", None), getattr(_LOCAL, "pid", None)
    if con is None or pid != os.getpid():   # never reuse a parent's database after fork
        con = duckdb.connect(":memory:", config=SANDBOX_CONFIG)
        _LOCAL.con, _LOCAL.pid = con, os.getpid()
    return con


def apply_post_sql(df, post_sql: str | None, policy=None):
    """``post_sql`` over the DataFrame ``df`` registered as ``released``; ``df`` itself when there is none.

    ``policy`` (when given) lets the verifier check the text; raises :class:`QueryFailed`
    (rule ``post-processing``) on any failure, with a fixed message.
    """
    if not post_sql:
        return df
    if policy is not None:
        from pdbg.sql.verify import verify_executed

        verify_executed(post_sql, policy, kind="post")
    con = _sandbox().cursor()
    failed = False
    try:
        con.register("released", df)
        out = con.execute(post_sql).df()
    except Exception:  # noqa: BLE001 - any failure, one fixed message, no engine text
        failed = True
    finally:
        con.close()
    if failed:   # raised outside the except block: no context holding the answer
        raise QueryFailed("post-processing (HAVING / ORDER BY / LIMIT) of the released answer failed",
                          "Compare outputs with numbers of their own type (no casts of key text); the charge stands.",
                          rule="post-processing")
    return out
