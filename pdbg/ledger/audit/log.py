"""Appending to the audit log: lock, tail state, records, checkpoint, mirror.

One append, under an exclusive ``flock`` on ``WS/audit/.lock`` (several notebook
kernels and CLI processes share a workspace)::

    load tail state (head.json, validated against the files; full scan if stale)
      -> quarantine torn tails left by a crashed writer (recorded, never dropped)
      -> open the mirror (unreachable mirror: AuditError before anything is written)
      -> write the record line(s), fsync audit.jsonl
      -> sign a checkpoint {tree_size, root, last_hash, ...}, append + fsync checkpoints.jsonl
      -> append the same line to the mirror, fsync
      -> rewrite head.json (a cache: no fsync; a stale or torn head only costs a rescan)

Why a checkpoint after every append: a hash chain cannot show that its last records
were deleted; a signed tree head per append (kept twice) can, down to the last record.
The order (record durable before its checkpoint, local checkpoint durable before the
mirror copy) means a crash can leave a record without a checkpoint, or a checkpoint
missing from the mirror, but never a checkpoint for a record that is not on disk, or
a mirror checkpoint the workspace lacks: both of those mean tampering.

Every failure raises :class:`~pdbg.errors.AuditError`; callers must not release
anything when it does (DESIGN.md: fail closed). Appending also refuses when the log
is visibly shorter than a signed checkpoint, when the local checkpoints are behind
the mirror, or when the signing key differs from the mirror's first-seen key.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from pdbg import clock
from pdbg.errors import AuditError
from pdbg.ledger.audit import keys as keymod
from pdbg.ledger.audit.encoding import (
    GENESIS,
    checkpoint_line,
    checkpoint_message,
    line_digest,
    seal_record,
    split_sealed,
)
from pdbg.ledger.audit.merkle import Frontier
from pdbg.policy.workspace import Workspace

RESERVED_FIELDS = frozenset({"seq", "ts", "actor", "action", "severity", "prev", "hash"})
# Field names that only ever hold secrets: refusing them keeps a careless caller from
# writing a token or key into a file that auditors read (DESIGN.md invariant 7).
FORBIDDEN_FIELDS = frozenset({"token", "secret", "password", "private_key", "signing_key", "api_key", "salt"})
SYSTEM_ACTOR = "pdbg"
_TAIL_CHUNK = 8192
_log = logging.getLogger("pdbg.audit")


class AppendStatus:
    """What an append left behind besides its records: ``mirror_error`` is set when the
    records and the local checkpoint are durable but the mirror copy failed (lag)."""

    __slots__ = ("mirror_error",)

    def __init__(self) -> None:
        self.mirror_error: str | None = None


def lock_path(ws: Workspace) -> Path:
    return ws.audit_dir / ".lock"


def head_path(ws: Workspace) -> Path:
    return ws.audit_dir / "head.json"


def quarantine_dir(ws: Workspace) -> Path:
    return ws.audit_dir / "quarantine"


@contextmanager
def locked(ws: Workspace, exclusive: bool = True) -> Iterator[None]:
    """Hold the audit lock (shared for readers that need a consistent snapshot)."""
    ws.audit_dir.mkdir(mode=0o700, exist_ok=True)
    fd = os.open(lock_path(ws), os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH)
        yield
    finally:
        os.close(fd)  # closing the descriptor releases the flock


def check_entry(actor: str, action: str, severity: str, fields: dict) -> None:
    """Refuse malformed entries before taking the lock."""
    for name, value in (("actor", actor), ("action", action), ("severity", severity)):
        if not isinstance(value, str) or not value:
            raise AuditError(f"audit {name} must be a non-empty string", "Fix the caller; nothing was recorded.")
    clash = sorted(RESERVED_FIELDS & fields.keys())
    if clash:
        raise AuditError(
            f"audit field name(s) {', '.join(clash)} are reserved for the log itself",
            "Rename the field; nothing was recorded.",
        )
    bad = _forbidden_names(fields)
    if bad:
        raise AuditError(
            f"audit field name(s) {', '.join(sorted(bad))} would store a secret in the audit log",
            "Record an id or digest instead of the secret; nothing was recorded.",
        )


def _forbidden_names(obj, depth: int = 0) -> set[str]:
    found: set[str] = set()
    if depth > 20:
        return found
    if isinstance(obj, dict):
        for k, v in obj.items():
            if isinstance(k, str) and k.lower() in FORBIDDEN_FIELDS:
                found.add(k)
            found |= _forbidden_names(v, depth + 1)
    elif isinstance(obj, (list, tuple)):
        for v in obj:
            found |= _forbidden_names(v, depth + 1)
    return found


# -- file helpers ------------------------------------------------------------


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        n = os.write(fd, view)
        view = view[n:]


def _read_all(fd: int) -> bytes:
    size = os.fstat(fd).st_size
    chunks, off = [], 0
    while off < size:
        chunk = os.pread(fd, min(size - off, 1 << 24), off)
        if not chunk:
            break
        chunks.append(chunk)
        off += len(chunk)
    return b"".join(chunks)


def _last_line(fd: int, size: int) -> bytes | None:
    """The last complete line (without newline) of a file ending in ``\\n``; None if the
    file does not end with a newline. Reads only the tail, never the whole file."""
    if size == 0 or os.pread(fd, 1, size - 1) != b"\n":
        return None
    end = start = size - 1
    while True:
        start = max(0, start - _TAIL_CHUNK)
        buf = os.pread(fd, end - start, start)
        nl = buf.rfind(b"\n")
        if nl >= 0:
            return buf[nl + 1 :]
        if start == 0:
            return buf


def _split_torn(data: bytes) -> tuple[bytes, bytes]:
    """(complete lines, torn remainder after the last newline)."""
    cut = data.rfind(b"\n") + 1
    return data[:cut], data[cut:]


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


# -- tail state ----------------------------------------------------------------


@dataclass
class _State:
    """What an appender must know: the last record, the Merkle frontier, the last
    checkpoint, and the sizes that prove this knowledge is current."""

    size: int = 0
    seq: int = -1
    hash: str = GENESIS
    frontier: Frontier = field(default_factory=Frontier)
    cp_size: int = 0
    cp_hash: str = GENESIS
    cp_tree_size: int = 0
    mirror: str = ""
    mirror_size: int = 0
    key_id: str = ""

    def to_json(self) -> bytes:
        d = {
            "size": self.size, "seq": self.seq, "hash": self.hash,
            "tree_size": self.frontier.size, "frontier": self.frontier.to_hex(),
            "cp_size": self.cp_size, "cp_hash": self.cp_hash, "cp_tree_size": self.cp_tree_size,
            "mirror": self.mirror, "mirror_size": self.mirror_size, "key_id": self.key_id,
        }  # fmt: skip
        return json.dumps(d, sort_keys=True).encode()

    @classmethod
    def from_json(cls, data: bytes) -> _State:
        d = json.loads(data)
        return cls(
            size=int(d["size"]), seq=int(d["seq"]), hash=str(d["hash"]),
            frontier=Frontier.from_hex(int(d["tree_size"]), d["frontier"]),
            cp_size=int(d["cp_size"]), cp_hash=str(d["cp_hash"]), cp_tree_size=int(d["cp_tree_size"]),
            mirror=str(d["mirror"]), mirror_size=int(d["mirror_size"]), key_id=str(d["key_id"]),
        )  # fmt: skip


class _Appender:
    """One locked append. Holds the open descriptors; never outlives the lock."""

    def __init__(self, ws: Workspace, key: keymod.SigningKey) -> None:
        self.ws = ws
        self.key = key
        self.notes: list[dict] = []  # quarantine records to write before the caller's
        self.mirror_dir = keymod.mirror_dir(ws)
        flags = os.O_RDWR | os.O_APPEND | os.O_CREAT
        self.created = not ws.audit_path.exists()
        self.audit_fd = os.open(ws.audit_path, flags, 0o600)
        self.cp_fd = os.open(ws.checkpoints_path, flags, 0o600)
        self.mirror_fd: int | None = None
        self.mirror_error: str | None = None  # set when the record is durable but the mirror copy failed
        if self.created:
            _fsync_dir(ws.audit_dir)

    def close(self) -> None:
        for fd in (self.audit_fd, self.cp_fd, self.mirror_fd):
            if fd is not None:
                os.close(fd)

    # -- loading -------------------------------------------------------------

    def load(self) -> _State:
        self._open_mirror()
        state = self._from_head()
        if state is None:
            state = self._rescan()
        self._ensure_mirror_key(state)
        return state

    def _open_mirror(self) -> None:
        try:
            self.mirror_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
            self.mirror_fd = os.open(
                self.mirror_dir / "checkpoints.jsonl", os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o600
            )
        except OSError as exc:
            raise AuditError(
                f"the audit mirror at {self.mirror_dir} is unreachable ({exc.strerror}); nothing was recorded",
                "Make the mirror location writable (PDBG_AUDIT_MIRROR or workspace.json) and retry.",
            ) from None

    def _from_head(self) -> _State | None:
        """The cached tail state if it provably describes the files as they are now."""
        try:
            state = _State.from_json(head_path(self.ws).read_bytes())
        except (OSError, ValueError, KeyError, TypeError):
            return None
        size = os.fstat(self.audit_fd).st_size
        cp_size = os.fstat(self.cp_fd).st_size
        mirror_size = os.fstat(self.mirror_fd).st_size
        if (
            (state.size, state.cp_size, state.mirror_size) != (size, cp_size, mirror_size)
            or state.mirror != str(self.mirror_dir)
            or state.key_id != self.key.key_id
            or state.frontier.size != state.seq + 1
        ):
            return None
        if size:
            last = _last_line(self.audit_fd, size)
            sealed = split_sealed(last) if last is not None else None
            if sealed is None or sealed[1] != state.hash:
                return None
        elif state.seq != -1:
            return None
        if cp_size:
            last = _last_line(self.cp_fd, cp_size)
            if last is None or line_digest(last) != state.cp_hash:
                return None
        elif state.cp_hash != GENESIS:
            return None
        return state

    def _rescan(self) -> _State:
        """Rebuild the tail state from the files (after a crash, a concurrent change the
        head did not see, or a missing head). Refuses to append to a log that is visibly
        shorter than what was signed, *before* touching anything; then quarantines torn
        tails and records any quarantined file that no record names yet."""
        state = _State(mirror=str(self.mirror_dir), key_id=self.key.key_id)
        data, torn = _split_torn(_read_all(self.audit_fd))
        lines = data.split(b"\n")[:-1] if data else []
        frontier = Frontier()
        named: set[str] = set()
        for i, line in enumerate(lines):
            sealed = split_sealed(line)
            try:
                frontier.append(bytes.fromhex(sealed[1]))  # type: ignore[index]
            except (TypeError, ValueError):
                raise AuditError(
                    f"audit.jsonl line {i + 1} is damaged; refusing to append after it",
                    "Run `pdbg audit verify WS` and restore the audit log from a backup.",
                ) from None
            if b'"audit.quarantine"' in line:
                named.add(str(json.loads(line).get("quarantined_as")))
        if lines:
            try:
                state.seq = int(json.loads(lines[-1])["seq"])
            except (ValueError, KeyError, TypeError):
                raise AuditError(
                    f"the last audit record (line {len(lines)}) is damaged; refusing to append after it",
                    "Run `pdbg audit verify WS` and restore the audit log from a backup.",
                ) from None
            state.hash = split_sealed(lines[-1])[1]  # type: ignore[index]
        state.size, state.frontier = len(data), frontier

        cdata, ctorn = _split_torn(_read_all(self.cp_fd))
        state.cp_size = len(cdata)
        if cdata:
            last = cdata[:-1].rsplit(b"\n", 1)[-1]
            state.cp_hash, state.cp_tree_size = line_digest(last), _tree_size(last, "checkpoints.jsonl")
        mdata, mtorn = _split_torn(_read_all(self.mirror_fd))
        state.mirror_size = len(mdata)
        mirror_tree_size = 0
        if mdata:
            mirror_tree_size = _tree_size(mdata[:-1].rsplit(b"\n", 1)[-1], "the mirror's checkpoints.jsonl")

        signed = max(state.cp_tree_size, mirror_tree_size)
        if len(lines) < signed:
            raise AuditError(
                f"audit.jsonl holds {len(lines)} records but a signed checkpoint covers {signed}: "
                "records were removed; refusing to append",
                "Run `pdbg audit verify WS` and restore the audit log from a backup.",
            )
        if mirror_tree_size > state.cp_tree_size:
            raise AuditError(
                "checkpoints.jsonl is behind its mirror copy (rolled back?); refusing to append",
                "Run `pdbg audit verify WS` and restore checkpoints.jsonl from the mirror or a backup.",
            )
        self._record_orphans(named)
        for fd, keep, tail, label, suffix in (
            (self.audit_fd, data, torn, "audit.jsonl", ""),
            (self.cp_fd, cdata, ctorn, "checkpoints.jsonl", ".checkpoints"),
            (self.mirror_fd, mdata, mtorn, "mirror checkpoints.jsonl", ".mirror"),
        ):
            if tail:
                self._quarantine(fd, len(keep), tail, label, suffix)
        return state

    def _record_orphans(self, named: set[str]) -> None:
        """A writer that died between quarantining bytes and writing the record saying
        so leaves a quarantine file no record names: name it now."""
        qdir = quarantine_dir(self.ws)
        if not qdir.is_dir():
            return
        for p in sorted(qdir.iterdir()):
            rel = f"quarantine/{p.name}"
            if p.suffix == ".partial" and rel not in named:
                label = "checkpoints.jsonl" if ".checkpoints" in p.name else (
                    "mirror checkpoints.jsonl" if ".mirror" in p.name else "audit.jsonl")
                self.notes.append({"file": label, "bytes": p.stat().st_size, "quarantined_as": rel})

    def _quarantine(self, fd: int, cut: int, torn: bytes, label: str, suffix: str) -> None:
        """Move the torn bytes after offset ``cut`` to quarantine/ (durably), cut them
        off the file, and note it for the log: never silently dropped."""
        qdir = quarantine_dir(self.ws)
        qdir.mkdir(mode=0o700, exist_ok=True)
        stamp = clock.now().strftime("%Y%m%dT%H%M%S.%fZ")
        for n in range(1000):
            name = f"{stamp}{suffix}{'' if n == 0 else f'-{n}'}.partial"
            try:
                qfd = os.open(qdir / name, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
                break
            except FileExistsError:
                continue
        else:  # pragma: no cover - a thousand collisions in one microsecond
            raise AuditError("could not name a quarantine file", "Clean up WS/audit/quarantine and retry.")
        try:
            _write_all(qfd, torn)
            os.fsync(qfd)
        finally:
            os.close(qfd)
        _fsync_dir(qdir)
        os.ftruncate(fd, cut)
        os.fsync(fd)
        self.notes.append({"file": label, "bytes": len(torn), "quarantined_as": f"quarantine/{name}"})

    def _ensure_mirror_key(self, state: _State) -> None:
        """Record the signing key the first time; afterwards refuse any other key."""
        mk = keymod.read_mirror_key(self.ws)
        if mk is None:
            if state.cp_size:
                raise AuditError(
                    f"the audit mirror at {self.mirror_dir} holds no key record but the workspace has "
                    "signed checkpoints (mirror moved or lost); refusing to append",
                    "Point PDBG_AUDIT_MIRROR (or workspace.json) back at the original mirror.",
                )
            body = {
                "workspace_id": self.ws.workspace_id, "key_id": self.key.key_id,
                "public_key": self.key.public_hex, "first_seen": clock.iso(),
            }  # fmt: skip
            path = keymod.mirror_key_path(self.ws)
            try:
                fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            except FileExistsError:  # pragma: no cover - only under the lock, cannot race
                mk = keymod.read_mirror_key(self.ws)
            else:
                try:
                    _write_all(fd, json.dumps(body, sort_keys=True, indent=1).encode() + b"\n")
                    os.fsync(fd)
                finally:
                    os.close(fd)
                _fsync_dir(self.mirror_dir)
                return
        if not mk or mk.get("key_id") != self.key.key_id or mk.get("workspace_id") != self.ws.workspace_id:
            raise AuditError(
                "the workspace signing key is not the key the audit mirror first saw; refusing to sign",
                "Restore WS/keys/signing.key from backup; run `pdbg audit verify WS`.",
            )

    # -- writing -------------------------------------------------------------

    def _undo(self, size: int, cp_size: int) -> None:
        _undo_files(self, size, cp_size)

    def write(self, state: _State, entries: list[tuple[str, str, str, dict]]) -> list[bytes]:
        ts = clock.iso()
        entries = [(SYSTEM_ACTOR, "audit.quarantine", "warning", n) for n in self.notes] + entries
        lines = []
        for actor, action, severity, fields in entries:
            body = {
                **fields, "seq": state.seq + 1, "ts": ts, "actor": actor,
                "action": action, "severity": severity, "prev": state.hash,
            }  # fmt: skip
            try:
                h, line = seal_record(body)
            except (TypeError, ValueError) as exc:
                raise AuditError(f"an audit field cannot be stored: {_type_only(exc)}", "Pass JSON values.") from None
            state.seq += 1
            state.hash = h
            state.frontier.append(bytes.fromhex(h))
            lines.append(line)
        data = b"".join(lines)
        size0, cp_size0 = state.size, state.cp_size
        try:
            _write_all(self.audit_fd, data)
            os.fsync(self.audit_fd)
        except OSError:
            self._undo(size0, cp_size0)
            raise
        state.size += len(data)

        body = {
            "log": self.ws.workspace_id, "tree_size": state.frontier.size,
            "root": state.frontier.root().hex(), "last_hash": state.hash, "ts": ts,
            "key_id": self.key.key_id, "prev_cp": state.cp_hash,
        }  # fmt: skip
        cp = checkpoint_line(body, self.key.sign(checkpoint_message(body)))
        try:
            _write_all(self.cp_fd, cp)
            os.fsync(self.cp_fd)
        except OSError:
            self._undo(size0, cp_size0)
            raise
        state.cp_size += len(cp)
        state.cp_hash, state.cp_tree_size = line_digest(cp[:-1]), state.frontier.size
        # Point of no return: the record and its signed checkpoint are durable locally. A
        # failed mirror copy from here on is *lag*, not a failed append: raising would make
        # callers release a charge whose record exists (reconcile would then fail for good).
        try:
            _write_all(self.mirror_fd, cp)
            os.fsync(self.mirror_fd)
        except OSError as exc:
            self.mirror_error = f"the audit mirror is behind: a checkpoint could not be copied ({exc.strerror})"
            _log.warning("%s; the next append copies a newer one", self.mirror_error)
        else:
            state.mirror_size += len(cp)
        _write_head(self.ws, state)  # a size mismatch after a partial mirror write only costs a rescan
        return lines


def _undo_files(app: "_Appender", size: int, cp_size: int) -> None:
    """Cut a failed append's bytes off the local files, so AuditError means "nothing
    written". Only our own bytes, under the lock, before any checkpoint signed them."""
    for fd, keep in ((app.audit_fd, size), (app.cp_fd, cp_size)):
        try:
            if os.fstat(fd).st_size > keep:
                os.ftruncate(fd, keep)
                os.fsync(fd)
        except OSError:  # pragma: no cover - the next appender's rescan quarantines a torn tail
            pass


def _type_only(exc: Exception) -> str:
    """Error text safe to show: json's messages name a type or 'Out of range float', never a value."""
    text = str(exc)
    return text if "type" in text or "float" in text else type(exc).__name__


def _tree_size(line: bytes, label: str) -> int:
    try:
        return int(json.loads(line)["tree_size"])
    except (ValueError, KeyError, TypeError):
        raise AuditError(
            f"the last line of {label} is damaged; refusing to append",
            "Run `pdbg audit verify WS`.",
        ) from None


def _write_head(ws: Workspace, state: _State) -> None:
    """Rewrite head.json in place. No fsync: it is a cache that the next appender
    validates against the files, so a torn or stale head only costs one rescan."""
    data = state.to_json()
    fd = os.open(head_path(ws), os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        os.pwrite(fd, data, 0)
        os.ftruncate(fd, len(data))
    finally:
        os.close(fd)


def preflight(ws: Workspace) -> None:
    """Check, without writing anything, that an append would get past every refusal that
    comes before the first write: the signing key loads, the lock is taken, the log files
    and the mirror open for writing, the tail state is sound (not shorter than signed, not
    behind the mirror) and the mirror's first-seen key is this key. Raises AuditError.

    Why: a state change checks this *before* its effect, so an unwritable log or mirror
    or a damaged key refuses the change instead of leaving it unaudited. A full disk can
    still fail the write itself; then the change is refused by its intent record, or (for
    a completion record) settled later by recovery."""
    try:
        key = keymod.load_signing_key(ws)
        with locked(ws):
            app = _Appender(ws, key)
            try:
                app.load()
                for path in (ws.audit_path, ws.checkpoints_path):
                    if not os.access(path, os.W_OK):
                        raise AuditError(f"{path.name} is not writable; nothing was changed",
                                         "Fix the permissions of WS/audit/ and retry.")
            finally:
                app.close()
    except AuditError:
        raise
    except OSError as exc:
        raise AuditError(f"the audit log cannot be written ({exc.strerror}); nothing was changed",
                         "Fix WS/audit/ (disk, permissions) and retry.") from None
    except Exception as exc:  # noqa: BLE001 - any failure means the append would fail
        raise AuditError(f"the audit log cannot be written ({type(exc).__name__}); nothing was changed",
                         "Run `pdbg audit verify WS` and fix the log, then retry.") from None


def append_entries(ws: Workspace, entries: list[tuple[str, str, str, dict]],
                   status: AppendStatus | None = None) -> list[dict]:
    """Append records under the lock with one checkpoint; return them as stored.

    AuditError means *nothing* was recorded (fail closed). A mirror copy that fails after
    the record and its local checkpoint are durable does not raise: the records stand, and
    ``status.mirror_error`` (when given) says the mirror is behind."""
    for actor, action, severity, fields in entries:
        check_entry(actor, action, severity, fields)
    try:
        key = keymod.load_signing_key(ws)
        with locked(ws):
            app = _Appender(ws, key)
            try:
                state = app.load()
                lines = app.write(state, entries)
                if status is not None:
                    status.mirror_error = app.mirror_error
            finally:
                app.close()
    except AuditError:
        raise
    except OSError as exc:
        raise AuditError(f"could not append to the audit log ({exc.strerror})") from None
    except Exception as exc:  # noqa: BLE001 - any failure must reach the caller as AuditError
        raise AuditError(f"could not append to the audit log ({type(exc).__name__})") from None
    return [json.loads(line) for line in lines[len(lines) - len(entries) :]]
