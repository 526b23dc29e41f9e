"""Fixtures for the ledger tests: a fresh workspace per test (keys, audit dir, empty state)."""

from __future__ import annotations

import pytest

from pdbg.policy.workspace import Workspace, create_layout


def make_workspace(root) -> Workspace:
    """A bare workspace: layout and keys only; each ledger module creates its own tables."""
    return create_layout(root / "ws", audit_mirror=root / "mirror")


@pytest.fixture
def ws(tmp_path) -> Workspace:
    return make_workspace(tmp_path)
