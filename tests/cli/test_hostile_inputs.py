"""CLI end to end (subprocess, with time limits): hostile policies and inputs end in one line on
stderr and exit 1, never a traceback, never a hang."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.policy.test_policy_limits import BOMB

POLICY = Path(__file__).parent.parent / "ingest" / "requests.policy.yaml"


def pdbg(*args, timeout=60):
    env = {**os.environ}
    env.pop("PDBG_AUDIT_MIRROR", None)
    return subprocess.run([sys.executable, "-m", "pdbg.cli.main", *map(str, args)], capture_output=True,
                          text=True, timeout=timeout, env=env)


def refused(p):
    assert p.returncode == 1, (p.stdout, p.stderr)
    assert "Traceback" not in p.stderr
    lines = [ln for ln in p.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("pdbg: refused:"), p.stderr
    return lines[0]


@pytest.fixture
def ws(tmp_path):
    root = tmp_path / "ws"
    p = pdbg("init", root)
    assert p.returncode == 0, p.stderr
    return root


def test_hostile_policies(ws, tmp_path):
    bomb = tmp_path / "bomb.yaml"
    bomb.write_text(BOMB)
    assert "alias" in refused(pdbg("dataset", "add", ws, bomb, timeout=30))
    huge = tmp_path / "huge.yaml"
    huge.write_text(POLICY.read_text().replace("max_rows_per_unit: 10", "max_rows_per_unit: 1000000000000000000000000000000"))
    assert "max_rows_per_unit" in refused(pdbg("dataset", "add", ws, huge))
    inf = tmp_path / "inf.yaml"
    inf.write_text(POLICY.read_text().replace("bounds: [0, 10000]", "bounds: [0, .inf]"))
    assert "latency_ms.bounds" in refused(pdbg("dataset", "add", ws, inf))


def test_hostile_inputs(ws, tmp_path):
    assert pdbg("dataset", "add", ws, POLICY).returncode == 0
    fifo = tmp_path / "pipe.jsonl"
    os.mkfifo(fifo)
    assert "regular file" in refused(pdbg("ingest", ws, "requests", fifo, timeout=30))
    assert "regular file" in refused(pdbg("ingest", ws, "requests", "/dev/zero", timeout=30))
    empty = tmp_path / "e.csv"
    empty.write_text("")
    assert "empty" in refused(pdbg("ingest", ws, "requests", empty))


def test_damaged_workspace_json(ws):
    cfg = ws / "workspace.json"
    cfg.write_text(cfg.read_text()[:20])
    line = refused(pdbg("dataset", "list", ws))
    assert "damaged" in line and str(ws) not in line
