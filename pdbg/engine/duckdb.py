"""DuckDB backend on a read-only, locked-down connection (REFERENCE.md: DuckDB lock-down).

The data file is opened read-only with external access disabled,
extension auto-install/auto-load off and the configuration locked, so even a
checker bug cannot read other files, attach databases, or switch the locks off.
Each query takes its own cursor on the process's shared read-only instance, which
closes after a short idle time or as soon as a writer waits: DuckDB allows one writer
process, and an admin's ingest or purge must not be blocked by idle notebooks.

Engine errors are never passed through: DuckDB quotes offending values in its
messages (e.g. a failed cast), so an investigator would see private data.
"""

from __future__ import annotations

import threading
from contextlib import contextmanager

from pdbg.engine.base import ExactResult
from pdbg.errors import EngineError, WorkspaceError
from pdbg.ingest.readers import POOL
from pdbg.policy.workspace import Workspace
from pdbg.sql.plan import Plan

DEFAULT_TIMEOUT_S = 60.0


class QueryTimeout(EngineError):
    default_hint = "Narrow the time window or the filters; the query exceeded its time limit."


class DuckDBEngine:
    def __init__(self, ws: Workspace, timeout_s: float = DEFAULT_TIMEOUT_S) -> None:
        self.ws = ws
        self.timeout_s = timeout_s

    @contextmanager
    def connect(self):
        """A locked-down read-only connection (also used for registry reads on the query path).

        A cursor on this process's shared read-only instance of the data file
        (:mod:`pdbg.ingest.readers`): its own transaction and interrupt, the instance's lock-down.
        Raised before any private row is read (free refusals): :class:`DataBusy` (an
        ``EngineError``) when a writer holds or waits for the file for longer than the pool's
        bounded wait; ``StorageCorrupt`` / ``StorageUnreadable`` / ``StorageFull`` when the file
        itself is damaged or cannot be opened (never reported as busy). No path, no engine text.
        """
        import duckdb

        if not self.ws.data_path.exists():
            raise WorkspaceError("the workspace has no data file yet", "Register a dataset and ingest data first.")
        cm = POOL.cursor(self.ws.data_path)
        try:
            con = cm.__enter__()
        except duckdb.IOException as exc:   # the pool classifies known failures; this is the rest
            raise EngineError(
                f"cannot open the data file for queries ({type(exc).__name__})",
                "Check the workspace's data.duckdb (permissions, disk); nothing was charged.",
            ) from None
        except duckdb.Error as exc:   # e.g. this process opened the file itself with other settings
            raise EngineError(
                f"cannot open the data file for queries ({type(exc).__name__})",
                "Close any DuckDB connection this process opened on the workspace yourself; "
                "pdbg reads data only through its own locked-down connection.",
            ) from None
        try:
            yield con
        finally:
            cm.__exit__(None, None, None)

    def data_version(self, dataset: str) -> int:
        with self.connect() as con:
            return _version(con, dataset)

    def execute(self, plan: Plan, salt: str, con=None, *, policy=None, expect_version: int | None = None,
                touched: threading.Event | None = None) -> ExactResult:
        """Run the plan's bounded SQL (and quantile SQL) and read the data version in one snapshot.

        Before any private row is read (failures here are free refusals): the exact texts are
        checked by the independent verifier (``policy`` given), bound by DuckDB to check that
        group keys are scalar, and the data version compared with ``expect_version``.
        ``touched`` is set right before the first statement that reads private rows: from then
        on every failure is a release the caller must charge (DESIGN.md invariant 10).
        ``con`` lets the session plan and execute on one cursor (one transaction's view of the
        registry and data); without it a cursor is taken here.
        """
        if con is None:
            with self.connect() as own:
                return self._execute(own, plan, salt, policy, expect_version, touched)
        return self._execute(con, plan, salt, policy, expect_version, touched)

    def _execute(self, con, plan: Plan, salt: str, policy, expect_version, touched) -> ExactResult:
        import duckdb

        statements = [("bounded", plan.bounded_sql)] + ([("quantile", plan.quantile_sql)] if plan.quantile_sql else [])
        if policy is not None:
            from pdbg.sql.verify import verify_executed

            for kind, sql in statements:
                verify_executed(sql, policy, kind=kind)
        timer = threading.Timer(self.timeout_s, con.interrupt)
        timer.start()
        try:
            con.execute("BEGIN TRANSACTION")  # one snapshot for data and version
            version = _version(con, plan.dataset)
            if expect_version is not None and version != expect_version:
                raise EngineError("the dataset changed while the query was planned",
                                  "Run the query again; nothing was charged.")
            for _, sql in statements:
                _check_key_types(con, plan, sql, salt)
            if touched is not None:
                touched.set()
            groups = _run(con, plan.bounded_sql, salt)
            bins = _run(con, plan.quantile_sql, salt) if plan.quantile_sql else None
            con.execute("COMMIT")
        except duckdb.InterruptException:
            _rollback(con)
            raise QueryTimeout(f"the query ran longer than {self.timeout_s:.0f} s and was stopped") from None
        except duckdb.Error as exc:
            _rollback(con)
            # Only the exception class: DuckDB's message can quote private values.
            raise EngineError(f"the engine could not run the query ({type(exc).__name__})") from None
        except BaseException:
            _rollback(con)
            raise
        finally:
            timer.cancel()
        return ExactResult(groups=groups, quantile_bins=bins, data_version=version)


# Types a released group key may have: plain scalars that compare, sort and serialize
# exactly. LIST/STRUCT/MAP/UNION/BLOB/INTERVAL keys (e.g. ``[service]``, ``ts - TIMESTAMP …``)
# would fail only after rows were read, or could not be released at all.
_SCALAR_KEY_TYPES = ("BOOLEAN", "TINYINT", "SMALLINT", "INTEGER", "BIGINT", "UTINYINT", "USMALLINT", "UINTEGER",
                     "UBIGINT", "FLOAT", "DOUBLE", "VARCHAR", "DATE", "TIMESTAMP", "TIMESTAMP_S", "TIMESTAMP_MS",
                     "TIMESTAMP_NS", "TIMESTAMP WITH TIME ZONE")


def _check_key_types(con, plan: Plan, sql: str, salt: str) -> None:
    """Bind ``sql`` (DESCRIBE reads no rows) and refuse non-scalar group keys before execution."""
    import duckdb

    from pdbg.errors import QueryRejected

    try:
        described = con.execute("DESCRIBE " + sql, {"salt": salt} if "$salt" in sql else None).fetchall()
    except duckdb.Error as exc:   # a binder error depends on the schema only, never on a value
        raise EngineError(f"the engine refused the planned query before reading data ({type(exc).__name__})",
                          "Nothing ran and nothing was charged; if the query looks valid, report it.") from None
    types = {row[0]: str(row[1]).upper() for row in described}
    for key in plan.keys:
        t = types.get(key.name)
        if t is not None and t not in _SCALAR_KEY_TYPES and not t.startswith("DECIMAL("):
            raise QueryRejected(f"group key {key.name!r} has type {t}; released keys must be plain scalars",
                                "Group by a column, a CASE of literals, a time bucket or another scalar expression.",
                                rule="key-type")


def _rollback(con) -> None:
    try:
        con.execute("ROLLBACK")
    except Exception:  # noqa: BLE001 - nothing open, or the connection is gone: nothing to undo
        pass


def _run(con, sql: str, salt: str):
    """Execute and fetch through Arrow so integer sums stay exact.

    Final SUMs are HUGEINT in DuckDB; `.df()` would turn them into float64. They
    arrive as decimal(38, 0) in Arrow and are cast to int64 (a checked cast).
    DuckDB refuses named parameters that the statement does not use.
    """
    import pyarrow as pa

    table = con.sql(sql, params={"salt": salt} if "$salt" in sql else None).to_arrow_table()
    for i, f in enumerate(table.schema):
        if pa.types.is_decimal(f.type) and f.type.scale == 0:
            table = table.set_column(i, f.name, table.column(i).cast(pa.int64()))
    return table.to_pandas()


def _version(con, dataset: str) -> int:
    rows = con.execute("SELECT data_version FROM _pdbg_datasets WHERE name = ?", [dataset]).fetchall()
    row = rows[0] if rows else None   # fetchall: DuckDB 2 keeps a half-read result open otherwise
    if row is None:
        raise WorkspaceError(f"dataset {dataset!r} is not registered", "Register it with `pdbg dataset add`.")
    return int(row[0])
