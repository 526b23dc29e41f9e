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


# -- issue 13: modes, warnings, PathLike, connect(token=) ------------------------------------------


def _loose_files(root):
    import stat as st

    out = []
    for p in root.rglob("*"):
        mode = p.lstat().st_mode
        if st.S_ISREG(mode) and mode & 0o077:
            out.append(f"{oct(mode & 0o777)} {p.relative_to(root)}")
    return out


def test_files_private_whatever_the_directory_mode(tmp_path, monkeypatch):
    import os

    from pdbg.governance import admin
    from pdbg.policy.workspace import MIRROR_ENV

    from tests.ingest.conftest import POLICY, raw_rows, write_jsonl

    monkeypatch.delenv(MIRROR_ENV, raising=False)
    root = tmp_path / "open"
    root.mkdir(mode=0o755)
    os.chmod(root, 0o755)
    old = os.umask(0o022)
    try:
        ws = init_workspace(root, audit_mirror=tmp_path / "mirror")
        admin.add_dataset(ws, POLICY, os_actor())
        admin.ingest(ws, "requests", [write_jsonl(tmp_path / "in.jsonl", raw_rows())], os_actor())
    finally:
        os.umask(old)
    assert ws.data_path.exists() and ws.state_path.exists()
    assert _loose_files(root) == []
    assert os.umask(old) == old     # the process umask is left as it was


def test_init_warns_about_a_readable_root(tmp_path, monkeypatch, capsys):
    import json
    import os

    from pdbg.cli.main import main
    from pdbg.policy.workspace import MIRROR_ENV

    monkeypatch.delenv(MIRROR_ENV, raising=False)
    loose = tmp_path / "loose"
    loose.mkdir()
    os.chmod(loose, 0o755)
    assert main(["init", str(loose), "--json"]) == 0
    out, err = capsys.readouterr()
    doc = json.loads(out)
    assert doc["warnings"] and "readable" in doc["warnings"][0]
    assert len([ln for ln in err.splitlines() if ln.strip()]) == 1 and "chmod 700" in err
    tight = tmp_path / "tight"
    assert main(["init", str(tight), "--json"]) == 0
    out, err = capsys.readouterr()
    assert json.loads(out)["warnings"] == [] and err == ""
    assert (tight.stat().st_mode & 0o777) == 0o700


def test_public_api_accepts_pathlike(tmp_path, monkeypatch):
    from pathlib import Path

    import pdbg
    from pdbg.governance import cases, principals
    from pdbg.policy.workspace import MIRROR_ENV, Workspace

    monkeypatch.delenv(MIRROR_ENV, raising=False)
    ws = init_workspace(Path(tmp_path / "p"), audit_mirror=Path(tmp_path / "m"))
    assert Workspace(Path(ws.root)).root == ws.root
    principals.add_user(ws, os_actor(), "adm", "admin")
    principals.add_user(ws, "adm", "alice", "investigator")
    cases.open_case(ws, "adm", "INC-1", "t")
    s = pdbg.connect(Path(ws.root), user="alice", case="INC-1")
    assert s.ws.root == ws.root
    o = pdbg.oversee(Path(ws.root), user="adm")
    assert o.ws.root == ws.root


def test_connect_checks_a_given_token(tmp_path, monkeypatch):
    import pdbg
    from pdbg.errors import AccessDenied
    from pdbg.governance import cases, principals
    from pdbg.policy.workspace import MIRROR_ENV

    monkeypatch.delenv(MIRROR_ENV, raising=False)
    ws = init_workspace(tmp_path / "t", audit_mirror=tmp_path / "m")
    principals.add_user(ws, os_actor(), "adm", "admin")
    token = principals.add_user(ws, "adm", "alice", "investigator")
    cases.open_case(ws, "adm", "INC-1", "t")
    with pytest.raises(AccessDenied):
        pdbg.connect(str(ws.root), user="alice", case="INC-1", token="wrong-" + token)
    assert pdbg.connect(str(ws.root), user="alice", case="INC-1", token=token).user == "alice"
