"""Users, tokens and the authorization table."""

from __future__ import annotations

import pytest

from pdbg.errors import AccessDenied, PdbgError
from pdbg.governance import principals
from pdbg.governance.principals import OWNER, PERMISSIONS, authorize


def _all_bytes(ws) -> bytes:
    """state.sqlite plus its WAL/SHM files, and the audit log: everywhere a token could leak to."""
    out = b""
    for p in ws.root.rglob("*"):
        if p.is_file() and "keys" not in p.parts:
            out += p.read_bytes()
    return out


def test_token_shown_once_and_never_stored_in_clear(workspace):
    token = principals.add_user(workspace, principals.os_actor(), "root", "admin")
    assert token.startswith("pdbg_") and len(token) > 40
    blob = _all_bytes(workspace)
    assert token.encode() not in blob
    assert token.removeprefix("pdbg_").encode() not in blob
    assert principals._hash_token(token).encode() in (workspace.state_path.read_bytes()
                                                      + (workspace.root / "state.sqlite-wal").read_bytes()
                                                      if (workspace.root / "state.sqlite-wal").exists()
                                                      else workspace.state_path.read_bytes())


def test_authenticate(workspace):
    token = principals.add_user(workspace, principals.os_actor(), "root", "admin")
    assert principals.authenticate(workspace, "root", token).role == "admin"
    for name, tok in (("root", token + "x"), ("root", ""), ("nobody", token)):
        with pytest.raises(AccessDenied, match="authentication failed") as exc:
            principals.authenticate(workspace, name, tok)
        assert token not in str(exc.value) and token not in exc.value.hint
    principals.deactivate(workspace, principals.os_actor(), "root")
    with pytest.raises(AccessDenied, match="authentication failed"):
        principals.authenticate(workspace, "root", token)


def test_bootstrap_owner_adds_first_admin_then_admin_adds_users(workspace):
    owner = principals.os_actor()
    assert owner.startswith("os:")
    principals.add_user(workspace, owner, "root", "admin")
    principals.add_user(workspace, "root", "alice", "investigator")
    with pytest.raises(AccessDenied, match="needs role admin; 'alice' is investigator"):
        principals.add_user(workspace, "alice", "mallory", "admin")
    with pytest.raises(AccessDenied, match="no pdbg user named 'ghost'"):
        principals.add_user(workspace, "ghost", "mallory", "admin")
    assert [u.name for u in principals.list_users(workspace)] == ["alice", "root"]


def test_user_validation(workspace):
    owner = principals.os_actor()
    principals.add_user(workspace, owner, "root", "admin")
    with pytest.raises(PdbgError, match="already exists"):
        principals.add_user(workspace, owner, "root", "auditor")
    with pytest.raises(PdbgError, match="not allowed"):
        principals.add_user(workspace, owner, "os:root", "admin")
    with pytest.raises(PdbgError, match="unknown role"):
        principals.add_user(workspace, owner, "eve", "superuser")


def test_require_role(workspace):
    principals.add_user(workspace, principals.os_actor(), "root", "admin")
    assert principals.require_role(workspace, "root", "admin").name == "root"
    with pytest.raises(AccessDenied, match="has role admin; this needs investigator"):
        principals.require_role(workspace, "root", "investigator")
    with pytest.raises(AccessDenied, match="no pdbg user"):
        principals.require_role(workspace, "nobody", "admin")
    principals.deactivate(workspace, principals.os_actor(), "root")
    with pytest.raises(AccessDenied, match="deactivated"):
        principals.require_role(workspace, "root", "admin")


def test_authorization_table(workspace):
    owner = principals.os_actor()
    principals.add_user(workspace, owner, "root", "admin")
    for name, role in (("inv", "investigator"), ("app", "approver"), ("aud", "auditor")):
        principals.add_user(workspace, "root", name, role)
    expect = {
        ("inv", "access.request"): True, ("app", "access.request"): False, ("root", "access.request"): False,
        ("app", "access.approve"): True, ("root", "access.approve"): True, ("inv", "access.approve"): False,
        ("aud", "access.approve"): False, (owner, "access.approve"): False, (owner, "user.add"): True,
        ("aud", "audit.read"): True, ("inv", "audit.read"): False, ("root", "retention.purge"): True,
        ("app", "retention.purge"): False, ("inv", "query.run"): True, ("app", "query.run"): False,
    }
    for (actor, action), allowed in expect.items():
        d = authorize(workspace, actor, action, "r")
        assert d.allowed is allowed, (actor, action, d.reason)
        assert d.reason
    d = authorize(workspace, "app", "access.approve", "request r-1", subject="app")
    assert not d.allowed and "own" in d.reason
    assert not authorize(workspace, "root", "no.such.action").allowed
    assert all(OWNER not in PERMISSIONS[a] for a in ("access.request", "access.approve", "access.break_glass",
                                                     "review.close", "query.run"))


def test_user_changes_are_audited_without_tokens(workspace):
    from pdbg.ledger.audit import AuditLog

    owner = principals.os_actor()
    token = principals.add_user(workspace, owner, "root", "admin")
    principals.set_role(workspace, owner, "root", "approver")
    principals.deactivate(workspace, owner, "root")
    recs = AuditLog(workspace).records()
    assert [r["action"] for r in recs] == ["workspace.init", "user.add", "user.set_role", "user.deactivate"]
    assert recs[1]["actor"] == owner and recs[1]["user"] == "root" and recs[1]["role"] == "admin"
    assert token not in workspace.audit_path.read_text()
