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
def fresh_case(demo_ws, open_granted_case):
    """A new case with its own approved grant of ε=epsilon for the investigator."""
    def make(epsilon: float = 1.0) -> str:
        return open_granted_case(demo_ws.ws, f"T-{next(_case_ids)}", investigator=INVESTIGATOR,
                                 approver=APPROVER, epsilon=epsilon, title="session test")

    return make
