"""Group commit for records that many threads append at once (cache hits in the broker).

Why: every append takes the audit lock and fsyncs three times (record, checkpoint,
mirror). A cache hit must still be logged before its answer is shown (an investigator's
every read is on the record), but thirty concurrent hits need not pay thirty rounds:
the first caller becomes the *leader*, takes every record queued for that workspace
meanwhile and appends them all with :func:`append_entries` (one lock, one signed
checkpoint, three fsyncs for the batch); the others wait for that batch. Each caller
returns only when its own record is durable, or gets the batch's AuditError (nothing
of the batch was written): the durability promise is exactly :meth:`AuditLog.append`'s.
"""

from __future__ import annotations

import threading

from pdbg.ledger.audit.log import AppendStatus, append_entries

_MU = threading.Lock()
_QUEUES: dict[str, list["_Slot"]] = {}
_LEADING: set[str] = set()


class _Slot:
    __slots__ = ("entry", "done", "record", "error", "mirror_error")

    def __init__(self, entry) -> None:
        self.entry = entry
        self.done = threading.Event()
        self.record = None
        self.error: BaseException | None = None
        self.mirror_error: str | None = None


def append_grouped(ws, actor: str, action: str, *, severity: str = "info", **fields) -> dict:
    """Like ``AuditLog(ws).append`` (same errors, same durability on return), batched with
    concurrent callers in this process."""
    key = str(ws.audit_path)
    slot = _Slot((actor, action, severity, fields))
    with _MU:
        _QUEUES.setdefault(key, []).append(slot)
        lead = key not in _LEADING
        if lead:
            _LEADING.add(key)
    if lead:
        _lead(ws, key)
    slot.done.wait()
    if slot.error is not None:
        raise slot.error
    return slot.record


def _lead(ws, key: str) -> None:
    while True:
        with _MU:
            batch = _QUEUES.get(key, [])
            _QUEUES[key] = []
            if not batch:
                _LEADING.discard(key)
                return
        status = AppendStatus()
        try:
            records = append_entries(ws, [s.entry for s in batch], status)
        except BaseException as exc:  # noqa: BLE001 - handed to every waiter of the batch
            for s in batch:
                s.error = exc
                s.done.set()
            continue
        for s, rec in zip(batch, records):
            s.record, s.mirror_error = rec, status.mirror_error
            s.done.set()


__all__ = ["append_grouped"]
