"""CLI: `pdbg audit verify|show|reconcile` — exit codes, --json, audited verifications."""

from __future__ import annotations

import json

import pytest



@pytest.fixture
def ws(workspace):
    from pdbg.governance.principals import add_user, os_actor
    from pdbg.ledger.audit import AuditLog

    add_user(workspace, os_actor(), "carol", "auditor")
    add_user(workspace, os_actor(), "ivan", "investigator")
    log = AuditLog(workspace)
    for i in range(4):
        log.append("ivan", "query", case="INC-7" if i % 2 else "INC-8", sql=f"SELECT {i}", cost_units=i)
    return workspace


def test_verify_ok_is_recorded(run, ws):
    from pdbg.ledger.audit import AuditLog

    n = len(AuditLog(ws).records())
    out, _ = run("audit", "verify", str(ws.root), "--user", "carol")
    assert "verifies" in out
    recs = AuditLog(ws).records()
    assert recs[-1]["action"] == "audit.verify" and recs[-1]["actor"] == "carol" and recs[-1]["ok"] is True
    assert recs[-1]["records"] == n
    out, _ = run("audit", "verify", str(ws.root), "--json")  # the recorded verification verifies too
    d = json.loads(out)
    assert d["ok"] is True and d["recorded"] is True and d["records"] == n + 1


def test_verify_names_first_bad_record(run, ws):
    lines = ws.audit_path.read_bytes().splitlines(keepends=True)
    rec = json.loads(lines[2])
    rec["actor"] = "mallory"
    lines[2] = json.dumps(rec, sort_keys=True, separators=(",", ":")).encode() + b"\n"
    ws.audit_path.write_bytes(b"".join(lines))
    out, err = run("audit", "verify", str(ws.root), code=1)
    assert "first bad record seq 2" in out and "first bad record seq 2" in err
    assert err.startswith("pdbg: refused:") and len(err.strip().splitlines()) == 1
    out, _ = run("audit", "verify", str(ws.root), "--json", code=1)
    d = json.loads(out)
    assert d["ok"] is False and d["first_bad_seq"] == 2
    # the failed verification was recorded, and did not mask the problem
    from pdbg.ledger.audit import AuditLog

    assert [r["ok"] for r in AuditLog(ws).records() if r["action"] == "audit.verify"] == [False, False]


def test_verify_tail_truncation_exits_nonzero(run, ws):
    lines = ws.audit_path.read_bytes().splitlines(keepends=True)
    ws.audit_path.write_bytes(b"".join(lines[:-2]))
    out, err = run("audit", "verify", str(ws.root), "--json", code=1)
    d = json.loads(out)
    assert d["first_bad_seq"] == len(lines) - 2 and d["recorded"] is False
    assert "removed from the end" in err


def test_verify_needs_audit_role(run, ws):
    _, err = run("audit", "verify", str(ws.root), "--user", "ivan", code=1)
    assert "refused" in err


def test_show_table_and_json(run, ws):
    out, _ = run("audit", "show", str(ws.root), "--case", "INC-7")
    assert "query" in out and "INC-7" in out and "INC-8" not in out
    assert "hash" not in out and "prev" not in out
    out, _ = run("audit", "show", str(ws.root), "--json")
    d = json.loads(out)
    assert [r["seq"] for r in d["records"]] == list(range(len(d["records"])))
    assert all("hash" not in r and "prev" not in r["fields"] for r in d["records"])
    out, _ = run("audit", "show", str(ws.root), "--case", "INC-8", "--json", "--user", "carol")
    assert {r["fields"]["case"] for r in json.loads(out)["records"]} == {"INC-8"}


def test_reconcile_wired(run, ws):
    out, _ = run("audit", "reconcile", str(ws.root), "--json")
    d = json.loads(out)
    assert d["ok"] is True and d["recorded"] is True
    from pdbg.ledger.audit import AuditLog

    assert AuditLog(ws).records()[-1]["action"] == "audit.reconcile"


def test_help_lists_verbs(run):
    out, _ = run("audit", "--help")
    for verb in ("verify", "show", "reconcile"):
        assert verb in out
