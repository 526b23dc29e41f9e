"""A governed workspace: users of every role, two open cases, two registered datasets."""

from __future__ import annotations

import json
from datetime import datetime, timezone
import shutil
from pathlib import Path
from types import SimpleNamespace

import pytest

from pdbg import clock
from pdbg.governance import cases, principals
from pdbg.policy.model import parse_policy
from pdbg.policy.workspace import MIRROR_ENV, Workspace


TEMPLATE_TIME = datetime(2026, 11, 3, 12, 0, 0, tzinfo=timezone.utc)   # = the frozen_clock fixture's start


def policy_dict(name: str, **over) -> dict:
    d = {
        "dataset": name,
        "table": name,
        "privacy_unit": "user_id",
        "epsilon": {"default_per_query": 0.1, "max_per_query": 0.5, "case_default": 2.0,
                    "dataset_cap": 5.0, "break_glass": 0.5},
        "grant_max_hours": 24,
        "retention_days": 30,
        "columns": {
            "ts": {"class": "time", "type": "timestamp"},
            "user_id": {"class": "identifier", "transform": "tokenize"},
            "status": {"class": "dimension", "type": "integer"},
        },
    }
    d.update(over)
    return d


def register(ws, name: str, **over):
    from pdbg.ingest.datasets import register as reg

    policy = parse_policy(policy_dict(name, **over))
    reg(ws, policy)
    return policy


def _build(root: Path) -> dict:
    """Build the governed workspace once; tests get copies (setting it up costs ~1 s of fsyncs)."""
    from pdbg.governance.init import init_workspace

    ws = init_workspace(root / "ws", audit_mirror=root / "mirror")
    owner = principals.os_actor()
    tokens = {"root": principals.add_user(ws, owner, "root", "admin")}
    for name, role in (("alice", "investigator"), ("dave", "investigator"), ("bob", "approver"),
                       ("carol", "approver"), ("audrey", "auditor")):
        tokens[name] = principals.add_user(ws, "root", name, role)
    cases.open_case(ws, "bob", "INC-1", "5xx spike on checkout")
    cases.open_case(ws, "bob", "INC-2", "latency in eu-west")
    register(ws, "events")
    register(ws, "other")
    return tokens


@pytest.fixture(scope="session")
def _gov_template(tmp_path_factory):
    root = tmp_path_factory.mktemp("gov-template")
    with pytest.MonkeyPatch.context() as mp:
        mp.delenv(MIRROR_ENV, raising=False)
        mp.setattr(clock, "now", lambda: TEMPLATE_TIME)
        tokens = _build(root)
    return root, tokens


@pytest.fixture
def gov(frozen_clock, tmp_path, monkeypatch, _gov_template):
    """Users root (admin), alice & dave (investigators), bob & carol (approvers), audrey (auditor);
    open cases INC-1 and INC-2; datasets ``events`` and ``other`` (ε cap 5, 24 h max, 30 days)."""
    template, tokens = _gov_template
    monkeypatch.delenv(MIRROR_ENV, raising=False)
    shutil.copytree(template / "ws", tmp_path / "ws")
    shutil.copytree(template / "mirror", tmp_path / "mirror")
    cfg_path = tmp_path / "ws" / "workspace.json"
    cfg = json.loads(cfg_path.read_text())
    cfg["audit_mirror"] = str((tmp_path / "mirror").resolve())
    cfg_path.write_text(json.dumps(cfg, indent=2) + "\n")
    ws = Workspace(tmp_path / "ws")
    owner = principals.os_actor()
    return SimpleNamespace(ws=ws, clock=frozen_clock, tokens=dict(tokens), owner=owner,
                           register=lambda name, **over: register(ws, name, **over),
                           records=lambda: audit_records(ws))


def audit_records(ws) -> list[dict]:
    from pdbg.ledger.audit import AuditLog

    return AuditLog(ws).records()
