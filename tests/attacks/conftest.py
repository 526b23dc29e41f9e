"""Fixtures for the attack regressions (one test module per pitfall in REFERENCE.md).

``attack_support`` (this directory) holds the small-workspace builder and the single
test-only hook that disables contribution bounding; it is put on ``sys.path`` here so
the test modules can import it (the suite runs with ``--import-mode=importlib``).
Nothing under ``pdbg/`` imports it or could.
"""

from __future__ import annotations

import itertools
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

import attack_support as S  # noqa: E402

_ids = itertools.count(1)


@pytest.fixture
def make_ws(tmp_path, monkeypatch):
    """``make_ws(rows, policy=None)`` → (Workspace, DatasetPolicy) of dataset ``t`` holding ``rows``."""
    monkeypatch.delenv("PDBG_AUDIT_MIRROR", raising=False)

    def make(rows, policy=None):
        return S.make_workspace(tmp_path / f"ws{next(_ids)}", rows, policy=policy)

    return make


@pytest.fixture
def session_on(make_ws):
    """``session_on(rows, epsilon=2.0, policy=None)`` → an investigator's Session on a fresh workspace."""
    from pdbg.session import Session

    def make(rows, epsilon: float = 2.0, policy=None, case: str = "INC-1"):
        ws, _ = make_ws(rows, policy=policy)
        user, case = S.add_investigator(ws, case=case, epsilon=epsilon)
        return Session(ws, user=user, case=case)

    return make
