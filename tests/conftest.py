"""Shared fixtures: a frozen, advanceable clock and a fresh initialized workspace.

``frozen_clock`` replaces :func:`pdbg.clock.now` (the only source of "now" in pdbg),
so expiry and retention can be tested without sleeping. ``workspace`` builds a new
workspace under ``tmp_path`` with its audit mirror under ``tmp_path`` too, and
clears ``PDBG_AUDIT_MIRROR`` so no test writes outside its temporary directory.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from pdbg import clock
from pdbg.policy.workspace import MIRROR_ENV

FROZEN_START = datetime(2026, 11, 3, 12, 0, 0, tzinfo=timezone.utc)


class FrozenClock:
    """A clock that only moves when told to (``advance``/``set``)."""

    def __init__(self, start: datetime = FROZEN_START) -> None:
        self.current = start

    def now(self) -> datetime:
        return self.current

    def advance(self, delta: timedelta | None = None, **kw) -> datetime:
        """``advance(hours=1)`` or ``advance(timedelta(...))``; returns the new time."""
        self.current = self.current + (delta or timedelta(**kw))
        return self.current

    def set(self, when: datetime) -> datetime:
        self.current = when if when.tzinfo else when.replace(tzinfo=timezone.utc)
        return self.current


@pytest.fixture
def frozen_clock(monkeypatch) -> FrozenClock:
    fc = FrozenClock()
    monkeypatch.setattr(clock, "now", fc.now)
    return fc


@pytest.fixture
def workspace(tmp_path, monkeypatch):
    """A fresh workspace from ``init_workspace`` (state schema, empty data.duckdb, first audit record)."""
    from pdbg.governance.init import init_workspace

    monkeypatch.delenv(MIRROR_ENV, raising=False)
    return init_workspace(tmp_path / "ws", audit_mirror=tmp_path / "mirror")


@pytest.fixture(scope="session")
def open_granted_case():
    """``open_granted_case(ws, case, …)``: open a case and give the investigator an approved grant."""

    def make(ws, case: str, *, investigator: str = "alice", approver: str = "bob",
             dataset: str = "requests", epsilon: float = 1.0, title: str = "test") -> str:
        from pdbg.governance import access, cases

        cases.open_case(ws, approver, case, title)
        req = access.request(ws, investigator, case, dataset, epsilon, 4, title)
        access.approve(ws, req.id, approver)
        return case

    return make


@pytest.fixture
def registry_ws(tmp_path):
    """``registry_ws(version, *sql)``: a bare workspace whose data.duckdb holds only a registry row
    ('t', version) plus whatever ``sql`` creates — enough for the engine and the reader pool."""
    import duckdb

    from pdbg.policy.workspace import create_layout

    def make(version: int = 1, *sql: str):
        ws = create_layout(tmp_path / "ws", audit_mirror=tmp_path / "mirror")
        con = duckdb.connect(str(ws.data_path))
        con.execute("CREATE TABLE _pdbg_datasets (name VARCHAR PRIMARY KEY, data_version BIGINT)")
        con.execute("INSERT INTO _pdbg_datasets VALUES ('t', ?)", [version])
        for stmt in sql:
            con.execute(stmt)
        con.close()
        return ws

    return make
