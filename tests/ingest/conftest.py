"""Fixtures for ingest tests: a bare workspace layout (create_layout) and a raw log with PII."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pdbg.policy.model import load_policy
from pdbg.policy.workspace import MIRROR_ENV, create_layout

HERE = Path(__file__).parent
POLICY = HERE / "requests.policy.yaml"

# Raw values that must never reach data.duckdb.
RAW_SECRETS = [
    "alice@example.com", "bob@corp.example.org", "10.20.30.40", "2001:db8:abcd:12::7",
    "4111 1111 1111 1111", "sk_live_4eC39HqLyjWDarjtT1zdp7dc", "AKIAIOSFODNN7EXAMPLE",
    "hunter2", "+1 555 123 4567", "user-0001", "user-0002", "sess-abc", "203.0.113.9",
    "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U",
]


def raw_rows() -> list[dict]:
    ua = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 Chrome/120.0 Safari/537.36"
    return [
        {"ts": "2024-05-01T10:00:00Z", "user_id": "user-0001", "session_id": "sess-abc", "service": "api",
         "endpoint": "/login", "region": "eu-west", "status": 200, "latency_ms": 12.5, "bytes_out": 100,
         "user_agent": ua, "client_ip": "10.20.30.40", "email": "alice@example.com", "debug": "x",
         "message": "login ok for alice@example.com from 10.20.30.40 card 4111 1111 1111 1111"},
        {"ts": "2024-05-01T10:00:01Z", "user_id": "user-0002", "session_id": "sess-def", "service": "auth",
         "endpoint": "/token", "region": "us-east", "status": 503, "error_code": "E_DB", "latency_ms": 900,
         "bytes_out": 5, "user_agent": "curl/8.1", "client_ip": "2001:db8:abcd:12::7",
         "message": "Authorization: Bearer sk_live_4eC39HqLyjWDarjtT1zdp7dc key AKIAIOSFODNN7EXAMPLE "
                    "password=hunter2 call +1 555 123 4567 mail bob@corp.example.org"},
        {"ts": "2024-05-01T10:00:02Z", "user_id": "user-0001", "session_id": "sess-abc", "service": "api",
         "endpoint": "/x", "region": "eu-west", "status": 200, "latency_ms": 3, "bytes_out": 7,
         "user_agent": ua, "client_ip": "203.0.113.9",
         "message": "jwt eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U"},
        {"ts": "2024-05-01T10:00:03Z", "user_id": None, "message": "no unit"},
    ]


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


@pytest.fixture
def ws(tmp_path, monkeypatch):
    monkeypatch.delenv(MIRROR_ENV, raising=False)
    return create_layout(tmp_path / "ws", audit_mirror=tmp_path / "mirror")


@pytest.fixture
def policy():
    return load_policy(POLICY)


@pytest.fixture
def registered(ws, policy):
    from pdbg.ingest import datasets

    datasets.register(ws, policy)
    return ws


@pytest.fixture
def raw_file(tmp_path):
    return write_jsonl(tmp_path / "raw.jsonl", raw_rows())
