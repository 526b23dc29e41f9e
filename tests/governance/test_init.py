"""Workspace creation: layout, governance schema, empty data file, first audit record."""

from __future__ import annotations

import sqlite3

import pytest

from pdbg.errors import WorkspaceError
from pdbg.governance.init import init_workspace
from pdbg.governance.principals import os_actor
from pdbg.ledger.audit import AuditLog


def test_init_creates_everything(workspace, tmp_path):
    assert workspace.data_path.is_file() and workspace.state_path.is_file()
    con = sqlite3.connect(workspace.state_path)
    try:
        tables = {r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    finally:
        con.close()
    assert {"gov_users", "gov_cases", "gov_requests", "gov_grants", "gov_reviews"} <= tables
    (first,) = AuditLog(workspace).records()
    assert first["action"] == "workspace.init" and first["actor"] == os_actor() and first["seq"] == 0
    assert first["workspace_id"] == workspace.workspace_id
    assert workspace.audit_mirror == (tmp_path / "mirror").resolve()


def test_init_refuses_to_overwrite(workspace, tmp_path):
    with pytest.raises(WorkspaceError, match="already a pdbg workspace"):
        init_workspace(workspace.root)
    other = tmp_path / "notempty"
    other.mkdir()
    (other / "x").write_text("keep me")
    with pytest.raises(WorkspaceError, match="not empty"):
        init_workspace(other)
    assert (other / "x").read_text() == "keep me"
