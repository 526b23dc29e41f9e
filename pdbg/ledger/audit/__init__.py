"""Tamper-evident audit log (interface; hardened by the audit-log work).

`AuditLog(ws).append(actor, action, severity="info", **fields)` appends one
hash-chained JSON line and returns the record; any failure raises AuditError so
the caller fails closed.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os

from pdbg import clock
from pdbg.errors import AuditError
from pdbg.policy.workspace import Workspace

GENESIS = "0" * 64


def _canonical(obj: dict) -> bytes:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


class AuditLog:
    def __init__(self, ws: Workspace) -> None:
        self.ws = ws

    def append(self, actor: str, action: str, *, severity: str = "info", **fields) -> dict:
        try:
            with open(self.ws.audit_path, "a+b") as f:
                fcntl.flock(f, fcntl.LOCK_EX)
                f.seek(0)
                last = None
                for line in f:
                    if line.strip():
                        last = json.loads(line)
                rec = {
                    "seq": (last["seq"] + 1) if last else 0,
                    "ts": clock.iso(),
                    "actor": actor,
                    "action": action,
                    "severity": severity,
                    **fields,
                    "prev": last["hash"] if last else GENESIS,
                }
                rec["hash"] = hashlib.sha256(_canonical(rec)).hexdigest()
                f.seek(0, os.SEEK_END)
                f.write(_canonical(rec) + b"\n")
                f.flush()
                os.fsync(f.fileno())
                return rec
        except OSError as exc:
            raise AuditError(f"could not append to the audit log ({exc.strerror})") from None

    def records(self, case: str | None = None) -> list[dict]:
        if not self.ws.audit_path.exists():
            return []
        out = [json.loads(l) for l in self.ws.audit_path.read_bytes().splitlines() if l.strip()]
        return [r for r in out if case is None or r.get("case") == case]
