"""Test policy mirroring the demo `requests` dataset (DESIGN.md section 5) and a tiny DuckDB helper."""

from __future__ import annotations

import duckdb
import pytest

from pdbg.policy.model import parse_policy

SERVICES = ["api", "auth", "checkout", "search"]
REGIONS = ["eu-west", "us-east"]

POLICY = {
    "dataset": "requests",
    "table": "requests",
    "privacy_unit": "user_id",
    "max_rows_per_unit": 3,
    "max_groups_per_unit": 2,
    "max_time_buckets": 500,
    "columns": {
        "ts": {"class": "time", "type": "timestamp"},
        "user_id": {"class": "identifier", "transform": "tokenize"},
        "session_id": {"class": "identifier", "transform": "tokenize"},
        "service": {"class": "dimension", "domain": SERVICES},
        "region": {"class": "dimension", "domain": REGIONS},
        "endpoint": {"class": "dimension", "domain": ["/cart", "/pay", "/search"]},
        "status": {"class": "dimension", "type": "integer", "domain": [200, 404, 500, 503]},
        "error_code": {"class": "dimension"},
        "user_agent": {"class": "quasi_identifier", "transform": "generalize",
                       "generalize": {"kind": "user_agent"}},
        "latency_ms": {"class": "metric", "type": "float", "bounds": [0, 30000], "scale": "log"},
        "bytes_out": {"class": "metric", "type": "integer", "bounds": [0, 1000]},
        "client_ip": {"class": "pii", "transform": "tokenize"},
        "message": {"class": "free_text", "transform": "redact"},
        "internal_note": {"class": "free_text", "transform": "drop"},
    },
    "public_tables": {
        "services": {"columns": {"service": "string", "team": "string"}, "key": "service",
                     "rows": [{"service": "api", "team": "core"}, {"service": "auth", "team": "core"},
                              {"service": "checkout", "team": "payments"}, {"service": "search", "team": "discovery"}]},
    },
}


@pytest.fixture(scope="session")
def policy():
    return parse_policy(POLICY)


CREATE = """CREATE TABLE requests (ts TIMESTAMP, user_id VARCHAR, session_id VARCHAR, service VARCHAR, region VARCHAR,
 endpoint VARCHAR, status INTEGER, error_code VARCHAR, user_agent VARCHAR, latency_ms DOUBLE, bytes_out BIGINT,
 client_ip VARCHAR, message VARCHAR)"""


def make_db(rows: list[dict]) -> duckdb.DuckDBPyConnection:
    con = duckdb.connect()
    con.execute(CREATE)
    cols = ["ts", "user_id", "session_id", "service", "region", "endpoint", "status", "error_code", "user_agent",
            "latency_ms", "bytes_out", "client_ip", "message"]
    if rows:
        con.executemany(f"INSERT INTO requests VALUES ({', '.join('?' * len(cols))})",
                        [[r.get(c) for c in cols] for r in rows])
    return con


def run(con, sql: str, salt: str = "test-salt"):
    return con.execute(sql, {"salt": salt}).fetchall()
