"""Fixtures for the audit-log tests: a bare workspace (keys + layout, no state
schema) with its mirror under tmp_path, and helpers that tamper with files the way
an attacker with write access to the workspace would."""

from __future__ import annotations

import hashlib
import json

import pytest

from pdbg.ledger.audit import AuditLog
from pdbg.policy.workspace import MIRROR_ENV, create_layout


@pytest.fixture
def ws(tmp_path, monkeypatch):
    monkeypatch.delenv(MIRROR_ENV, raising=False)
    return create_layout(tmp_path / "ws", audit_mirror=tmp_path / "mirror")


@pytest.fixture
def ws10(ws):
    """A workspace with records seq 0..9, each with its own signed checkpoint."""
    log = AuditLog(ws)
    for i in range(10):
        log.append(f"user{i % 3}", "query", case="INC-1" if i % 2 else "INC-2", n=i, text="SELECT ü")
    return ws


def read_lines(path) -> list[bytes]:
    return path.read_bytes().splitlines()


def write_lines(path, lines: list[bytes]) -> None:
    path.write_bytes(b"".join(line + b"\n" for line in lines))


def loads(line: bytes) -> dict:
    return json.loads(line)


def naive_mth(data: list[bytes]) -> bytes:
    """RFC 6962 section 2.1, written as the RFC states it."""
    n = len(data)
    if n == 0:
        return hashlib.sha256(b"").digest()
    if n == 1:
        return hashlib.sha256(b"\x00" + data[0]).digest()
    k = 1
    while k * 2 < n:
        k *= 2
    return hashlib.sha256(b"\x01" + naive_mth(data[:k]) + naive_mth(data[k:])).digest()
