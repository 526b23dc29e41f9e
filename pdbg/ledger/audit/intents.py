"""Intent → effect → completion: the audit protocol of every state change (DESIGN.md invariant 12).

Why: a record written *after* an effect can be lost (the effect stands unaudited); a
record written *before* it, alone, can be a receipt for an effect that never happened.
So each state change (ingest, purge, dataset add/replace, grant approve/deny/revoke,
break-glass) is three steps::

    op = intents.begin(ws, actor, "ingest", dataset=..., ...)   # preflight + marker + "<action>.intent"
    ... the effect (one DuckDB or SQLite transaction) ...
    op.done(**what_changed)                                      # "<action>" with intent=<id>
    # or, when the effect did not happen / its outcome must be read from the state:
    op.settle(outcome, how="failed", **evidence)                  # "<action>.settled"

``begin`` checks the appender first (:meth:`AuditLog.preflight`: key, lock, files, mirror),
then writes a *pending marker* ``WS/audit/pending/<id>.json`` (fsynced, and held under an
exclusive ``flock`` for as long as the operation runs), then appends the intent record.
An AuditError there means nothing changed. The completion record keeps the action name
the log always used for the change (``ingest``, ``dataset.add``, ``retention.purge``,
``access.approve``, …), so readers of the log see the same facts as before, now with
``intent``; the marker is removed after it.

Recovery (:mod:`pdbg.governance.recovery`) runs when a session or an admin operation
opens the workspace, only if a marker exists (one ``listdir``), and in
``pdbg audit recover WS``. A marker whose lock can be taken belongs to a dead process:
its intent (if it was recorded) is settled by looking at the actual state, with a
``<action>.settled`` record (``outcome`` ``done``|``not-done``, ``how`` ``recovered``).
An intent never settles twice: every completion and settlement names its ``intent``.
"""

from __future__ import annotations

import fcntl
import json
import os
import secrets
from collections.abc import Iterable
from pathlib import Path

from pdbg import clock
from pdbg.errors import AuditError
from pdbg.ledger.audit.log import _fsync_dir
from pdbg.policy.workspace import Workspace

OUTCOMES = ("done", "not-done")


def pending_dir(ws: Workspace) -> Path:
    return ws.audit_dir / "pending"


def has_pending(ws: Workspace) -> bool:
    """Cheap: is any state change unfinished (running now, or left by a dead process)?"""
    try:
        return any(p.endswith(".json") for p in os.listdir(pending_dir(ws)))
    except FileNotFoundError:
        return False


class Intent:
    """One running state change. ``done`` or ``settle`` exactly once."""

    def __init__(self, ws: Workspace, actor: str, action: str, intent_id: str, fd: int, path: Path,
                 record: dict) -> None:
        self.ws, self.actor, self.action, self.id = ws, actor, action, intent_id
        self._fd: int | None = fd
        self._path = path
        self.record = record

    def done(self, *, severity: str = "info", **fields) -> dict:
        """Append the completion record; raise AuditError (the marker stays, recovery settles)."""
        return self._finish(self.action, severity, fields)

    def settle(self, outcome: str, *, how: str = "failed", severity: str = "info", **evidence) -> dict:
        """Append ``<action>.settled`` saying whether the effect happened (read from the state)."""
        if outcome not in OUTCOMES:
            raise ValueError(outcome)
        return self._finish(f"{self.action}.settled", severity,
                            {"outcome": outcome, "how": how, "intent_action": self.action, **evidence})

    def _finish(self, action: str, severity: str, fields: dict) -> dict:
        from pdbg.ledger.audit import AuditLog

        try:
            rec = AuditLog(self.ws).append(self.actor, action, severity=severity, intent=self.id, **fields)
        except AuditError as err:
            self.release()   # the marker stays: recovery settles this intent from the state
            raise AuditError(
                f"{self.action}: the change was made, or not, but its record could not be written: {err.message}",
                "Repair the audit log, then run `pdbg audit recover WS`: it settles the change from the data.",
            ) from None
        self._path.unlink(missing_ok=True)
        self.release()
        return rec

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def __del__(self) -> None:  # pragma: no cover - a forgotten intent must not keep its lock
        self.release()


def begin(ws: Workspace, actor: str, action: str, **fields) -> Intent:
    """Preflight the audit log, leave a locked pending marker, append ``<action>.intent``.

    AuditError (nothing changed, marker removed) when the log, the mirror or the key
    would refuse an append."""
    from pdbg.ledger.audit import AuditLog

    log = AuditLog(ws)
    log.preflight()
    intent_id = "i-" + secrets.token_hex(8)
    pdir = pending_dir(ws)
    pdir.mkdir(mode=0o700, exist_ok=True)
    path = pdir / f"{intent_id}.json"
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        body = {"intent": intent_id, "action": action, "actor": actor, "pid": os.getpid(), "created": clock.iso()}
        os.write(fd, json.dumps(body, sort_keys=True).encode())
        os.fsync(fd)
        _fsync_dir(pdir)
        rec = log.append(actor, f"{action}.intent", intent=intent_id, **fields)
    except BaseException:
        path.unlink(missing_ok=True)
        os.close(fd)
        raise
    return Intent(ws, actor, action, intent_id, fd, path, rec)


def stale_markers(ws: Workspace) -> list[tuple[str, Path, int]]:
    """Markers whose process is gone: (intent id, path, fd holding the lock now).

    The caller settles each and then calls :func:`drop_marker`. A marker whose lock is
    held belongs to a running operation and is left alone."""
    out = []
    try:
        names = sorted(os.listdir(pending_dir(ws)))
    except FileNotFoundError:
        return out
    for name in names:
        if not name.endswith(".json"):
            continue
        path = pending_dir(ws) / name
        try:
            fd = os.open(path, os.O_RDWR)
        except FileNotFoundError:
            continue
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            continue
        out.append((name[: -len(".json")], path, fd))
    return out


def drop_marker(path: Path, fd: int) -> None:
    path.unlink(missing_ok=True)
    os.close(fd)


def running(ws: Workspace) -> set[str]:
    """Intent ids whose operation is running now (their marker's lock is held)."""
    held = set()
    try:
        names = os.listdir(pending_dir(ws))
    except FileNotFoundError:
        return held
    for name in names:
        if not name.endswith(".json"):
            continue
        try:
            fd = os.open(pending_dir(ws) / name, os.O_RDWR)
        except FileNotFoundError:
            continue
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            held.add(name[: -len(".json")])
        finally:
            os.close(fd)
    return held


def unfinished(records: Iterable[dict]) -> list[dict]:
    """Intent records that no completion or settlement names yet, oldest first."""
    intents: dict[str, dict] = {}
    closed: set[str] = set()
    for r in records:
        iid = r.get("intent")
        if not isinstance(iid, str):
            continue
        if str(r.get("action", "")).endswith(".intent"):
            intents.setdefault(iid, r)
        else:
            closed.add(iid)
    return [r for iid, r in intents.items() if iid not in closed]


__all__ = ["Intent", "OUTCOMES", "begin", "drop_marker", "has_pending", "pending_dir", "running", "stale_markers",
           "unfinished"]
