"""Workspace boundary: a damaged or unreadable workspace.json is a one-line WorkspaceError."""

from __future__ import annotations

import errno
import json
from pathlib import Path

import pytest

from pdbg.errors import WorkspaceError
from pdbg.policy.workspace import MIRROR_ENV, Workspace, create_layout


@pytest.fixture
def ws(tmp_path, monkeypatch):
    monkeypatch.delenv(MIRROR_ENV, raising=False)
    return create_layout(tmp_path / "ws", audit_mirror=tmp_path / "mirror")


def _refused(root, *words) -> WorkspaceError:
    with pytest.raises(WorkspaceError) as ei:
        Workspace(root)
    err = ei.value
    assert "\n" not in err.message and str(root) not in err.message and err.hint
    for w in words:
        assert w in err.message, err.message
    return err


def test_truncated_workspace_json(ws):
    cfg = ws.root / "workspace.json"
    cfg.write_text(cfg.read_text()[:25])
    _refused(ws.root, "workspace.json", "damaged")


@pytest.mark.parametrize("text", ["", "[1, 2]", '"x"', "\xff\xfe", '{"format_version": 1}'])
def test_corrupt_workspace_json(ws, text):
    (ws.root / "workspace.json").write_text(text, errors="surrogateescape") if text != "\xff\xfe" else \
        (ws.root / "workspace.json").write_bytes(b"\xff\xfe{")
    _refused(ws.root, "workspace.json")


def test_unreadable_workspace_json(ws, monkeypatch):
    def deny(self, *a, **k):
        raise PermissionError(errno.EACCES, "Permission denied", str(self))

    monkeypatch.setattr(Path, "read_text", deny)
    monkeypatch.setattr(Path, "read_bytes", deny)
    err = _refused(ws.root, "permission")
    assert "owner" in err.hint or "readable" in err.hint


def test_workspace_is_a_file(tmp_path):
    f = tmp_path / "afile"
    f.write_text("x")
    _refused(f)


def test_create_layout_on_read_only_or_full_disk(tmp_path, monkeypatch):
    import os

    real = os.open

    def fail(err):
        def _open(path, flags, mode=0o777, *a, **k):
            if str(path).endswith(".key"):
                raise OSError(err, os.strerror(err), str(path))
            return real(path, flags, mode, *a, **k)
        return _open

    msgs = []
    for i, err in enumerate((errno.EROFS, errno.ENOSPC, errno.EACCES)):
        monkeypatch.setattr(os, "open", fail(err))
        with pytest.raises(WorkspaceError) as ei:
            create_layout(tmp_path / f"w{i}", audit_mirror=tmp_path / "m")
        monkeypatch.setattr(os, "open", real)
        assert str(tmp_path) not in ei.value.message
        msgs.append(ei.value.message)
    assert len(set(msgs)) == 3, msgs   # read-only, full and permission are told apart


@pytest.mark.parametrize("name,text", [("tokenize.key", '{"key_id": "k-1", "secret": "zz'),
                                       ("tokenize.key", "[]"), ("signing.key", "-----BEGIN nonsense")])
def test_damaged_key_files(ws, name, text):
    (ws.keys_dir / name).write_text(text)
    w = Workspace(ws.root)
    with pytest.raises(WorkspaceError, match=f"{name} is damaged") as ei:
        w.token_key if name == "tokenize.key" else w.signing_key()
    assert "zz" not in ei.value.message


def test_unlistable_workspace_dir_is_permission_not_missing(ws, monkeypatch):
    real = Path.is_file

    def deny(self):
        if self.name == "workspace.json":
            raise PermissionError(errno.EACCES, "Permission denied", str(self))
        return real(self)

    monkeypatch.setattr(Path, "is_file", deny)
    err = _refused(ws.root, "permission denied")
    assert "not a pdbg workspace" not in err.message
