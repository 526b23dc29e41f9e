"""CLI: init, user, case, access, review, budget and purge verbs; --json output and exit codes."""

from __future__ import annotations

import json

import pytest



def _j(out: str) -> dict:
    return json.loads(out.strip().splitlines()[-1])


@pytest.fixture
def ws(tmp_path, monkeypatch, run, frozen_clock):
    from pdbg.ingest.datasets import register
    from pdbg.policy.model import parse_policy
    from pdbg.policy.workspace import MIRROR_ENV, Workspace

    monkeypatch.delenv(MIRROR_ENV, raising=False)
    path = str(tmp_path / "ws")
    out, _ = run("init", path, "--audit-mirror", str(tmp_path / "mirror"), "--json")
    assert _j(out)["workspace"] == str((tmp_path / "ws").resolve())
    register(Workspace(path), parse_policy({
        "dataset": "requests", "table": "requests", "privacy_unit": "user_id", "grant_max_hours": 24,
        "columns": {"ts": {"class": "time", "type": "timestamp"},
                    "user_id": {"class": "identifier", "transform": "tokenize"}},
    }))
    return path


def test_init_refuses_existing(ws, run):
    _, err = run("init", ws, code=1)
    assert err.startswith("pdbg: refused:") and "already a pdbg workspace" in err


def test_user_add_prints_token_once_as_json(ws, run):
    out, _ = run("user", "add", ws, "root", "--role", "admin", "--json")
    d = _j(out)
    assert d["user"] == "root" and d["role"] == "admin" and d["token"].startswith("pdbg_")
    out, _ = run("user", "list", ws, "--json")
    users = _j(out)["users"]
    assert [u["user"] for u in users] == ["root"] and d["token"] not in out
    out, err = run("user", "add", ws, "eve", "--role", "admin", "--user", "nobody", "--json", code=1)
    assert _j(out)["error"] == "AccessDenied" and "\n" not in err.strip()
    run("user", "add", ws, "x", "--role", "superuser", code=2)


def test_full_access_flow(ws, run):
    run("user", "add", ws, "root", "--role", "admin")
    run("user", "add", ws, "alice", "--role", "investigator", "--user", "root")
    run("user", "add", ws, "bob", "--role", "approver", "--user", "root")
    out, _ = run("case", "open", ws, "INC-7", "--title", "5xx spike", "--severity", "sev2", "--json")
    assert _j(out)["severity"] == "SEV2"
    out, _ = run("case", "update", ws, "INC-7", "--acknowledged", "now", "--json")
    assert _j(out)["acknowledged"] == "2026-11-03T12:00:00.000000Z"
    out, _ = run("case", "show", ws, "INC-7", "--json")
    assert _j(out)["status"] == "open"

    out, _ = run("access", "request", ws, "--user", "alice", "--case", "INC-7", "--dataset", "requests",
                 "--epsilon", "1", "--hours", "8", "--reason", "find the spike", "--json")
    req = _j(out)
    assert req["id"].startswith("req-") and req["status"] == "pending"
    out, _ = run("access", "list", ws, "--pending", "--json")
    assert [r["id"] for r in _j(out)["requests"]] == [req["id"]]

    out, err = run("access", "approve", ws, req["id"], "--user", "alice", "--json", code=1)
    assert _j(out)["error"] == "AccessDenied"
    out, _ = run("access", "approve", ws, req["id"], "--user", "bob", "--json")
    grant = _j(out)
    assert grant["status"] == "active" and grant["epsilon"] == 1.0 and grant["user"] == "alice"

    out, _ = run("budget", ws, "--user", "alice", "--json")
    rep = _j(out)
    assert rep["grants"][0]["grant"] == grant["id"] and rep["grants"][0]["remaining_epsilon"] == pytest.approx(1.0)
    assert rep["datasets"][0]["dataset"] == "requests"
    out, _ = run("budget", ws)
    assert grant["id"] in out

    run("access", "break-glass", ws, "--user", "alice", "--case", "INC-7", "--dataset", "requests",
        "--reason", "", code=1)
    out, _ = run("access", "break-glass", ws, "--user", "alice", "--case", "INC-7", "--dataset", "requests",
                 "--reason", "approvers asleep", "--json")
    bg = _j(out)
    assert bg["kind"] == "break_glass" and bg["review_id"]
    out, _ = run("review", "list", ws, "--open", "--json")
    assert [r["id"] for r in _j(out)["reviews"]] == [bg["review_id"]]
    run("review", "close", ws, bg["review_id"], "--user", "alice", "--note", "fine", code=1)
    run("review", "close", ws, bg["review_id"], "--user", "bob", "--note", "justified")

    run("access", "revoke", ws, grant["id"], "--user", "alice", code=1)
    out, _ = run("access", "revoke", ws, grant["id"], "--user", "root", "--json")
    assert _j(out)["status"] == "revoked"

    out, _ = run("access", "request", ws, "--user", "alice", "--case", "INC-7", "--dataset", "requests",
                 "--epsilon", "1", "--hours", "8", "--reason", "again", "--json")
    out, _ = run("access", "deny", ws, _j(out)["id"], "--user", "bob", "--reason", "enough", "--json")
    assert _j(out)["status"] == "denied"
    out, _ = run("access", "list", ws, "--json")
    assert len(_j(out)["grants"]) == 2


def test_purge_cli(ws, run):
    out, _ = run("purge", ws, "--dry-run", "--json")
    rec = _j(out)
    assert rec["dry_run"] is True and rec["datasets"][0]["dataset"] == "requests"
    out, _ = run("purge", ws)
    assert "requests: deleted 0 rows" in out
    run("user", "add", ws, "alice", "--role", "investigator")
    run("purge", ws, "--user", "alice", code=1)


def test_every_verb_has_help(run):
    for argv in (["init"], ["user", "add"], ["user", "list"], ["case", "open"], ["case", "update"],
                 ["case", "show"], ["access", "request"], ["access", "approve"], ["access", "deny"],
                 ["access", "break-glass"], ["access", "revoke"], ["access", "list"], ["review", "list"],
                 ["review", "close"], ["budget"], ["purge"]):
        out, _ = run(*argv, "--help")
        assert "--json" in out, argv


def test_case_member_verbs_attach_people_for_break_glass(ws, run):
    run("user", "add", ws, "root", "--role", "admin")
    run("user", "add", ws, "alice", "--role", "investigator", "--user", "root")
    run("user", "add", ws, "bob", "--role", "approver", "--user", "root")
    run("case", "open", ws, "INC-8", "--title", "latency", "--user", "bob")
    out, _ = run("access", "break-glass", ws, "--user", "alice", "--case", "INC-8", "--dataset", "requests",
                 "--reason", "down", "--json", code=1)
    assert _j(out)["error"] == "AccessDenied" and "case member add" in _j(out)["hint"]
    out, _ = run("case", "member", "add", ws, "INC-8", "alice", "--user", "alice", "--json", code=1)
    assert "only its opener" in _j(out)["message"]
    out, _ = run("case", "member", "add", ws, "INC-8", "alice", "--user", "bob", "--json")
    assert _j(out)["user"] == "alice" and _j(out)["added_by"] == "bob"
    out, _ = run("case", "member", "list", ws, "INC-8", "--json")
    assert [m["user"] for m in _j(out)["members"]] == ["alice"]
    out, _ = run("access", "break-glass", ws, "--user", "alice", "--case", "INC-8", "--dataset", "requests",
                 "--reason", "down", "--json")
    assert _j(out)["kind"] == "break_glass"
    run("case", "member", "remove", ws, "INC-8", "alice", "--user", "bob")
    out, _ = run("case", "member", "list", ws, "INC-8")
    assert "no members" in out
    for verb in ("add", "remove", "list"):
        out, _ = run("case", "member", verb, "--help")
        assert "--json" in out
