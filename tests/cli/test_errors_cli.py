"""The real `pdbg` executable on broken workspaces: exactly one line on stderr, never a traceback.

Each test copies one small demo workspace (with its audit mirror) and breaks the copy for real:
garbage or truncated files, a lock held by another process, SQLite's own SQLITE_FULL (the
database may not grow: ``PRAGMA max_page_count``; a small tmpfs cannot be mounted here), and a
read-only workspace. Tests run as root, which ignores file modes, so the read-only case runs
the CLI as the unprivileged user 65534 on a root-owned copy (``setpriv``).
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

PDBG = str(Path(sys.executable).parent / "pdbg")
NOBODY = 65534

# Drive the CLI's real entry point in a fresh process after a small patch (state.sqlite's busy
# timeout, a size limit on it, a failing function): the patch goes in argv[1].
WRAPPER = r"""
import sys
exec(sys.argv[1])
from pdbg.cli.main import entry
sys.argv = ["pdbg"] + sys.argv[2:]
entry()
"""


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    root = tmp_path_factory.mktemp("demo")
    env = dict(os.environ, PDBG_AUDIT_MIRROR=str(root / "mirror"))
    subprocess.run([PDBG, "demo", str(root / "ws"), "--rows", "3000", "--no-investigate"], env=env,
                   check=True, capture_output=True)
    return root


@pytest.fixture
def ws(demo, tmp_path, monkeypatch):
    """A private copy of the demo workspace and its mirror (so tests never share an audit trail)."""
    shutil.copytree(demo / "ws", tmp_path / "ws")
    shutil.copytree(demo / "mirror", tmp_path / "mirror")
    monkeypatch.setenv("PDBG_AUDIT_MIRROR", str(tmp_path / "mirror"))
    monkeypatch.delenv("PDBG_DEBUG", raising=False)
    return tmp_path / "ws"


def pdbg(*args, patch: str | None = None, user: int | None = None, env: dict | None = None):
    cmd = [sys.executable, "-c", WRAPPER, patch, *args] if patch else [PDBG, *args]
    if user is not None:
        cmd = ["setpriv", f"--reuid={user}", f"--regid={user}", "--clear-groups", *cmd]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=120, env=env)
    return r.returncode, r.stdout, r.stderr


def one_line(rc: int, err: str, *where: Path) -> str:
    assert rc != 0
    assert "Traceback" not in err, err
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert len(lines) == 1, err
    for w in where:
        assert str(w) not in lines[0]
    assert lines[0].startswith("pdbg: ")
    return lines[0]


@pytest.mark.parametrize("damage", ["garbage", "truncated"])
def test_corrupt_state_sqlite(ws, damage):
    state = ws / "state.sqlite"
    if damage == "garbage":
        state.write_bytes(os.urandom(state.stat().st_size))
    else:
        os.truncate(state, 3000)
    rc, _, err = pdbg("budget", str(ws))
    line = one_line(rc, err, ws)
    assert "state.sqlite is damaged" in line and "busy" not in line and "locked" not in line


def test_state_sqlite_locked_by_another_process(ws):
    holder = subprocess.Popen(
        [sys.executable, "-c",
         "import sqlite3, time\n"
         f"c = sqlite3.connect({str(ws / 'state.sqlite')!r}, isolation_level=None)\n"
         "c.execute('BEGIN IMMEDIATE'); print('held', flush=True); time.sleep(60)"],
        stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        rc, _, err = pdbg("case", "open", str(ws), "INC-LOCK", "--title", "t", "--user", "bob",
                          patch="import pdbg.ledger.state as s; s.BUSY_TIMEOUT_MS = 300")
    finally:
        holder.kill()
        holder.wait()
        holder.stdout.close()
    line = one_line(rc, err, ws)
    assert "locked by another process" in line


def test_state_sqlite_full(ws):
    patch = ("import pdbg.ledger.state as s\n"
             "_open = s.open_state\n"
             "def capped(ws):\n"
             "    c = _open(ws)\n"
             "    c.execute('PRAGMA max_page_count = %d' % c.execute('PRAGMA page_count').fetchone()[0])\n"
             "    return c\n"
             "s.open_state = capped\n")
    con = sqlite3.connect(ws / "state.sqlite")   # no free pages left for the next write to reuse
    con.execute("VACUUM")
    con.close()
    rc, _, err = pdbg("case", "open", str(ws), "INC-FULL", "--title", "t" * 40000, "--user", "bob", patch=patch)
    line = one_line(rc, err, ws)
    assert "is full" in line


@pytest.mark.skipif(shutil.which("setpriv") is None or os.geteuid() != 0, reason="needs root and setpriv")
def test_read_only_workspace_is_not_reported_as_locked(ws):
    top = Path(tempfile.mkdtemp(prefix="pdbg-ro-"))   # a path user 65534 can traverse
    try:
        os.chmod(top, 0o755)
        ro = top / "ws"
        shutil.copytree(ws, ro)
        for p in [ro, *ro.rglob("*")]:
            os.chmod(p, 0o755 if p.is_dir() else 0o644)   # readable by all, writable by root only
        mirror = os.environ["PDBG_AUDIT_MIRROR"]
        env = dict(os.environ, HOME=str(top), PDBG_AUDIT_MIRROR=mirror)
        rc, _, err = pdbg("case", "open", str(ro), "INC-RO", "--title", "t", "--user", "bob", user=NOBODY, env=env)
    finally:
        shutil.rmtree(top)
    line = one_line(rc, err, ro)
    assert "read-only" in line and "locked" not in line and "busy" not in line


@pytest.mark.parametrize("damage", ["garbage", "truncated"])
def test_corrupt_data_duckdb(ws, damage):
    data = ws / "data.duckdb"
    if damage == "garbage":
        data.write_bytes(os.urandom(data.stat().st_size))
    else:
        os.truncate(data, 10_000)
    rc, _, err = pdbg("dataset", "list", str(ws))
    line = one_line(rc, err, ws)
    assert "data.duckdb is damaged" in line and "busy" not in line
    rc, _, err = pdbg("query", str(ws), "--user", "alice", "--case", "INC-DEMO", "--epsilon", "0.1",
                      "SELECT service, COUNT(*) AS n FROM requests GROUP BY service")
    line = one_line(rc, err, ws)
    assert "data.duckdb is damaged" in line and "busy" not in line


def test_purge_on_corrupt_data_is_refused_at_once_not_after_the_writer_wait(ws):
    data = ws / "data.duckdb"
    data.write_bytes(os.urandom(data.stat().st_size))
    rc, _, err = pdbg("purge", str(ws), patch="import pdbg.ingest.datasets as d; d.WRITER_WAIT_S = 3")
    line = one_line(rc, err, ws)
    assert "damaged" in line and "locked" not in line


def test_any_other_exception_is_one_line_and_debug_shows_the_traceback(ws):
    patch = ("import pdbg.ledger.budget as b\n"
             "def boom(self, *a, **k): raise ZeroDivisionError('secret-value-42')\n"
             "b.Ledger.balance = boom\n")
    rc, out, err = pdbg("budget", str(ws), patch=patch)
    line = one_line(rc, err, ws)
    assert rc == 3
    assert line.startswith("pdbg: internal error (ZeroDivisionError)") and "PDBG_DEBUG=1" in line
    assert "secret-value-42" not in err + out
    rc, _, err = pdbg("budget", str(ws), patch=patch, env=dict(os.environ, PDBG_DEBUG="1"))
    assert rc != 0 and "Traceback" in err


def test_escaped_storage_errors_get_a_best_effort_mapping(ws):
    patch = ("import pdbg.ledger.budget as b, sqlite3, errno\n"
             "def disk(self, *a, **k):\n"
             "    e = sqlite3.OperationalError('database or disk is full'); e.sqlite_errorcode = 13; raise e\n"
             "b.Ledger.balance = disk\n")
    rc, _, err = pdbg("budget", str(ws), patch=patch)
    assert "is full" in one_line(rc, err, ws)
    patch = ("import pdbg.ledger.budget as b, errno\n"
             "def perm(self, *a, **k): raise PermissionError(errno.EACCES, 'Permission denied', '/srv/secret/path')\n"
             "b.Ledger.balance = perm\n")
    rc, _, err = pdbg("budget", str(ws), patch=patch)
    line = one_line(rc, err, ws)
    assert "permission denied" in line and "/srv/secret/path" not in line


def test_truncated_workspace_json_is_one_line(ws):
    cfg = ws / "workspace.json"
    cfg.write_text(cfg.read_text()[:20])
    rc, _, err = pdbg("budget", str(ws))
    one_line(rc, err, ws)
