"""A small demo workspace shared by the session tests (built once; tests that spend use their own case)."""

from __future__ import annotations

import itertools

import pytest

from pdbg.demo.build import APPROVER, INVESTIGATOR, build_demo

_case_ids = itertools.count(1)


@pytest.fixture(scope="session")
def demo_ws(tmp_path_factory):
    root = tmp_path_factory.mktemp("session-demo")
    return build_demo(root / "ws", n_rows=30_000, seed=7)


@pytest.fixture
def fresh_case(demo_ws):
    """A new case with its own approved grant of ε=epsilon for the investigator."""
    from pdbg.governance import access, cases

    def make(epsilon: float = 1.0) -> str:
        case = f"T-{next(_case_ids)}"
        cases.open_case(demo_ws.ws, APPROVER, case, "session test")
        req = access.request(demo_ws.ws, INVESTIGATOR, case, "requests", epsilon, 4, "test")
        access.approve(demo_ws.ws, req.id, APPROVER)
        return case

    return make
