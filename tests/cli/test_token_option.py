"""`pdbg query` never takes the token in argv (visible in `ps`): PDBG_TOKEN or --token-file only."""

from __future__ import annotations

import os

import pytest


@pytest.fixture
def captured(monkeypatch):
    """Stand in for the Session: record the token the CLI hands over, answer a preview."""
    import pdbg.session

    seen = {}

    class FakeSession:
        def __init__(self, ws, *, user, case, token=None, **kw):
            seen["token"] = token

        def preview(self, sql, epsilon=None, accuracy=None):
            from types import SimpleNamespace

            return SimpleNamespace(epsilon=0.1, cost=SimpleNamespace(epsilon=0.1, delta=0.0, rho=0.0),
                                   accuracy={}, notes=())

    monkeypatch.setattr(pdbg.session, "Session", FakeSession)
    monkeypatch.delenv("PDBG_TOKEN", raising=False)
    return seen


def _query(run, tmp_path, *extra, code=0):
    return run("query", str(tmp_path), "SELECT 1", "--user", "alice", "--case", "C", "--preview", *extra, code=code)


def test_token_option_is_gone_and_help_points_elsewhere(run):
    out, _ = run("query", "--help")
    assert "--token-file" in out and "PDBG_TOKEN" in out
    assert "--token " not in out and "--token TEXT" not in out


def test_token_in_argv_is_a_usage_error(run, tmp_path, captured):
    _, err = _query(run, tmp_path, "--token", "pdbg_secret", code=2)
    assert "No such option" in err and "pdbg_secret" not in err
    assert "token" not in captured


def test_token_file_with_private_mode_is_used(run, tmp_path, captured):
    f = tmp_path / "tok"
    f.write_text("pdbg_FromTheFile\n")
    os.chmod(f, 0o600)
    _query(run, tmp_path, "--token-file", str(f))
    assert captured["token"] == "pdbg_FromTheFile"


@pytest.mark.parametrize("mode", [0o640, 0o604, 0o644])
def test_token_file_readable_by_others_is_refused_with_a_hint(run, tmp_path, captured, mode):
    f = tmp_path / "tok"
    f.write_text("pdbg_FromTheFile\n")
    os.chmod(f, mode)
    _, err = _query(run, tmp_path, "--token-file", str(f), code=1)
    assert "readable by group or others" in err and "chmod 600" in err and "pdbg_FromTheFile" not in err
    assert "token" not in captured


def test_empty_token_file_is_refused(run, tmp_path, captured):
    f = tmp_path / "tok"
    f.write_text("\n")
    os.chmod(f, 0o600)
    _, err = _query(run, tmp_path, "--token-file", str(f), code=1)
    assert "empty" in err


def test_pdbg_token_from_the_environment_still_works(run, tmp_path, captured, monkeypatch):
    monkeypatch.setenv("PDBG_TOKEN", "pdbg_FromTheEnv")
    _query(run, tmp_path)
    assert captured["token"] == "pdbg_FromTheEnv"
