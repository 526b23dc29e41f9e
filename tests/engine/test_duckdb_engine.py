"""The DuckDB backend: locked down, read-only, sanitized errors, time limit (invariants 6 and 7)."""

from __future__ import annotations

import duckdb
import pytest

from pdbg.engine.duckdb import DuckDBEngine, QueryTimeout
from pdbg.errors import EngineError
from pdbg.sql.plan import Plan

SECRET_VALUE = "alice@example.com"


@pytest.fixture
def ws(tmp_path, registry_ws):
    ws = registry_ws(7, f"CREATE TABLE t AS SELECT range AS i, '{SECRET_VALUE}' AS s FROM range(1000)")
    (tmp_path / "outside.csv").write_text("a\n1\n")
    return ws


def plan(sql: str, quantile_sql: str | None = None) -> Plan:
    return Plan(dataset="t", table="t", keys=(), measures=(), quantiles=(), outputs=(), g=1, k=1,
                bounded_sql=sql, quantile_sql=quantile_sql, post_sql=None, normalized=sql)


def test_executes_with_salt_and_reads_version(ws):
    res = DuckDBEngine(ws).execute(plan("SELECT count(*) AS n, $salt AS salt FROM t"), salt="abc")
    assert res.groups["n"].tolist() == [1000]
    assert res.groups["salt"].tolist() == ["abc"]
    assert res.data_version == 7
    assert "private" in repr(res) and "1000" not in repr(res)


@pytest.mark.parametrize("sql", [
    "SELECT * FROM read_csv('{outside}')",
    "SELECT * FROM glob('{outside}')",
    "COPY t TO '{outside}.out'",
    "ATTACH '{outside}.db' AS x",
    "INSTALL httpfs",
    "SET enable_external_access = true",
    "CREATE TABLE x AS SELECT 1",
    "DELETE FROM t",
])
def test_lockdown_refuses_file_access_config_and_writes(ws, tmp_path, sql):
    with pytest.raises(EngineError) as err:
        DuckDBEngine(ws).execute(plan(sql.format(outside=tmp_path / "outside.csv")), salt="x")
    assert str(tmp_path) not in err.value.message
    assert not (tmp_path / "outside.csv.out").exists()


def test_engine_errors_never_quote_private_values(ws):
    with pytest.raises(EngineError) as err:
        DuckDBEngine(ws).execute(plan("SELECT CAST(s AS INTEGER) FROM t"), salt="x")
    assert SECRET_VALUE not in str(err.value)
    assert "ConversionException" in err.value.message


def test_time_limit_interrupts_long_queries(ws):
    slow = "SELECT count(*) FROM range(1000000000) a, range(1000) b WHERE a.range + b.range = -1"
    with pytest.raises(QueryTimeout):
        DuckDBEngine(ws, timeout_s=0.3).execute(plan(slow), salt="x")


def test_idle_reader_lets_go_so_writers_are_not_blocked(ws, monkeypatch):
    """An idle notebook or broker must not keep an admin's ingest or purge out of the file."""
    import time

    from pdbg.ingest.readers import POOL

    monkeypatch.setattr(POOL, "linger_s", 0.2)
    DuckDBEngine(ws).execute(plan("SELECT 1 AS one"), salt="x")
    with pytest.raises(duckdb.Error):   # still lingering: a raw writer is refused (open_admin waits instead)
        duckdb.connect(str(ws.data_path)).close()
    deadline = time.monotonic() + 5
    while True:
        try:
            con = duckdb.connect(str(ws.data_path))          # a writer (ingest/purge) can open the file
            break
        except duckdb.Error:
            assert time.monotonic() < deadline, "the idle reader never let go of the data file"
            time.sleep(0.05)
    con.execute("UPDATE _pdbg_datasets SET data_version = 8")
    con.close()
    assert DuckDBEngine(ws).data_version("t") == 8


def test_engine_reuses_one_instance_per_process(ws):
    """Opening the file costs 10-20 ms; consecutive queries share the process's read-only instance."""
    from pdbg.ingest.readers import POOL

    eng = DuckDBEngine(ws)
    with eng.connect() as a:
        first = POOL._instances[str(ws.data_path.resolve())]
        a.execute("SELECT 1").fetchall()
    with eng.connect() as b:
        assert POOL._instances[str(ws.data_path.resolve())] is first
        b.execute("SELECT 1").fetchall()


# -- before any row is read: version, key types; `touched` marks the point of data access --------

def test_group_keys_must_be_scalar_before_execution(ws):
    import threading

    from pdbg.errors import QueryRejected
    from pdbg.sql.plan import KeySpec

    touched = threading.Event()
    p = Plan(dataset="t", table="t", keys=(KeySpec("k", "private", None),), measures=(), quantiles=(), outputs=(),
             g=1, k=1, bounded_sql="SELECT [s] AS k, count(*) AS n FROM t GROUP BY k", quantile_sql=None,
             post_sql=None, normalized="x")
    with pytest.raises(QueryRejected) as err:
        DuckDBEngine(ws).execute(p, salt="x", touched=touched)
    assert err.value.rule == "key-type" and "VARCHAR[]" in err.value.message
    assert SECRET_VALUE not in str(err.value)
    assert not touched.is_set()                       # refused before any row was read: free


def test_a_changed_data_version_is_refused_before_reading(ws):
    import threading

    touched = threading.Event()
    with pytest.raises(EngineError, match="changed"):
        DuckDBEngine(ws).execute(plan("SELECT count(*) AS n FROM t"), salt="x", expect_version=6, touched=touched)
    assert not touched.is_set()


def test_touched_is_set_once_rows_are_read(ws):
    import threading

    touched = threading.Event()
    with pytest.raises(EngineError):
        DuckDBEngine(ws).execute(plan("SELECT CAST(s AS INTEGER) AS n FROM t"), salt="x", touched=touched)
    assert touched.is_set()                           # a failure while reading: the caller must charge it
