"""Fixtures for the notebook layer: a fake session and a clean magic registry."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

_spec = importlib.util.spec_from_file_location("pdbg_test_fake_session", Path(__file__).with_name("fake_session.py"))
fake_session_module = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(fake_session_module)
FakeSession = fake_session_module.FakeSession


@pytest.fixture
def fake():
    from pdbg.notebook.magics import set_current_session

    s = FakeSession()
    set_current_session(s)
    yield s
    set_current_session(None)


@pytest.fixture
def ip(fake):
    """An in-process IPython shell with `%load_ext pdbg` done."""
    from IPython.testing.globalipapp import get_ipython

    shell = get_ipython()
    shell.run_line_magic("load_ext", "pdbg")
    yield shell
