"""A mirror that fails *after* the record is durable is lag, not a failed append.

Issue 13: with the mirror on a full device, ``append`` raised AuditError although the
record and its local checkpoint were fsynced; callers released the charge, and
`pdbg audit reconcile` failed from then on. Now AuditError means "nothing written" and a
failed mirror copy is reported as lag (``AuditLog.mirror_error``, verify's ``unmirrored``).
"""

from __future__ import annotations

import os
import shutil

import pytest

from pdbg.errors import AuditError
from pdbg.ledger.audit import AuditLog, keys as keymod, verify


def _mirror_on_dev_full(ws):
    path = keymod.mirror_checkpoints_path(ws)
    saved = path.with_name("saved.jsonl")
    shutil.copyfile(path, saved)
    path.unlink()
    os.symlink("/dev/full", path)
    return path, saved


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="needs /dev/full")
def test_full_mirror_after_durable_record_is_lag_and_catches_up(ws):
    log = AuditLog(ws)
    for i in range(3):
        log.append("alice", "query", i=i)
    path, saved = _mirror_on_dev_full(ws)
    rec = log.append("alice", "query", i=3)               # before: AuditError after the record was fsynced
    assert rec["seq"] == 3 and log.mirror_error and "behind" in log.mirror_error
    assert [r["seq"] for r in log.records()] == [0, 1, 2, 3]
    rep = verify(ws)
    assert rep.ok and rep.unmirrored >= 1                 # a warning, never a tamper
    log.append("alice", "query", i=4)                     # still behind: still appends
    path.unlink()
    shutil.copyfile(saved, path)                          # the mirror is writable again
    log.append("alice", "query", i=5)
    assert log.mirror_error is None
    rep = verify(ws, all_signatures=True)
    assert rep.ok and rep.unmirrored == 0 and rep.records == 6, rep.problems


def test_unreachable_mirror_writes_nothing(ws, tmp_path):
    log = AuditLog(ws)
    log.append("alice", "query", i=0)
    size = ws.audit_path.stat().st_size
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("x")
    os.environ["PDBG_AUDIT_MIRROR"] = str(blocker)
    try:
        with pytest.raises(AuditError):
            log.preflight()
        with pytest.raises(AuditError):
            log.append("alice", "query", i=1)
    finally:
        del os.environ["PDBG_AUDIT_MIRROR"]
    assert ws.audit_path.stat().st_size == size
    log.preflight()                                        # back to normal: passes, writes nothing
    assert ws.audit_path.stat().st_size == size


def test_local_checkpoint_failure_leaves_nothing(ws, monkeypatch):
    from pdbg.ledger.audit import log as logmod

    log = AuditLog(ws)
    log.append("alice", "query", i=0)
    size, cp = ws.audit_path.stat().st_size, ws.checkpoints_path.stat().st_size
    real, count = logmod._write_all, [0]

    def failing(fd, data):
        count[0] += 1
        if count[0] == 2:                                  # the checkpoint line
            raise OSError(28, "No space left on device")
        real(fd, data)

    monkeypatch.setattr(logmod, "_write_all", failing)
    with pytest.raises(AuditError):
        log.append("alice", "query", i=1)
    monkeypatch.undo()
    assert (ws.audit_path.stat().st_size, ws.checkpoints_path.stat().st_size) == (size, cp)
    log.append("alice", "query", i=1)
    assert verify(ws).ok
