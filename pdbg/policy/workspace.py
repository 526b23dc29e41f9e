"""Workspace layout, config, and keys (DESIGN.md section 5).

    WS/workspace.json        format version, workspace id, audit mirror location
    WS/data.duckdb           private data (minimized), read-only for queries
    WS/state.sqlite          governance state, budget ledger, release cache
    WS/audit/audit.jsonl     tamper-evident audit log; checkpoints.jsonl beside it
    WS/keys/                 0700; tokenize.key (HMAC key + key id), signing.key/.pub (Ed25519), 0600
    WS/policies/             registered dataset policies (YAML, stored with their hash)

This module only knows paths and key files; the schemas inside state.sqlite and
data.duckdb belong to the layers that own them.
"""

from __future__ import annotations

import errno
import json
import os
import secrets
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

from pdbg import clock
from pdbg.errors import PdbgError, WorkspaceError

FORMAT_VERSION = 1
MIRROR_ENV = "PDBG_AUDIT_MIRROR"


@dataclass(frozen=True)
class TokenKey:
    """The HMAC-SHA256 tokenization key. ``repr`` never shows the secret."""

    key_id: str
    secret: bytes

    def __repr__(self) -> str:
        return f"TokenKey(key_id={self.key_id!r}, secret=<redacted>)"


class Workspace:
    """A handle on an existing workspace directory; opening checks the format version."""

    def __init__(self, root: str | os.PathLike) -> None:
        self.root = Path(root).resolve()
        cfg_path = self.root / "workspace.json"
        try:
            is_file = cfg_path.is_file()
        except OSError as exc:   # e.g. EACCES on the directory: not "no workspace here"
            raise os_error(exc, f"workspace {self.root.name or '/'} cannot be opened") from None
        if not is_file:
            raise WorkspaceError(
                f"{self.root.name or 'the directory'} is not a pdbg workspace (no workspace.json)",
                "Create it with `pdbg init WS` or `pdbg demo WS`.",
            )
        self.config = _read_config(cfg_path)
        version = self.config.get("format_version")
        if version != FORMAT_VERSION:
            raise WorkspaceError(
                f"workspace format version {version} is not supported (this pdbg reads {FORMAT_VERSION})",
                "Use the pdbg release that created this workspace.",
            )

    # -- paths -------------------------------------------------------------
    @property
    def data_path(self) -> Path:
        return self.root / "data.duckdb"

    @property
    def state_path(self) -> Path:
        return self.root / "state.sqlite"

    @property
    def audit_dir(self) -> Path:
        return self.root / "audit"

    @property
    def audit_path(self) -> Path:
        return self.audit_dir / "audit.jsonl"

    @property
    def checkpoints_path(self) -> Path:
        return self.audit_dir / "checkpoints.jsonl"

    @property
    def keys_dir(self) -> Path:
        return self.root / "keys"

    @property
    def policies_dir(self) -> Path:
        return self.root / "policies"

    @property
    def workspace_id(self) -> str:
        return self.config["workspace_id"]

    @property
    def audit_mirror(self) -> Path:
        """Second location for signed checkpoints: env var wins over the config."""
        env = os.environ.get(MIRROR_ENV)
        return Path(env) if env else Path(self.config["audit_mirror"])

    # -- keys --------------------------------------------------------------
    @cached_property
    def token_key(self) -> TokenKey:
        raw = _read_secret(self.keys_dir / "tokenize.key")
        try:
            data = json.loads(raw)
            return TokenKey(key_id=str(data["key_id"]), secret=bytes.fromhex(data["secret"]))
        except (ValueError, KeyError, TypeError):   # never echo the file: it holds the secret
            raise _damaged_key("tokenize.key") from None

    def signing_key(self):
        from cryptography.hazmat.primitives.serialization import load_pem_private_key

        raw = _read_secret(self.keys_dir / "signing.key")
        try:
            return load_pem_private_key(raw, password=None)
        except (ValueError, TypeError):
            raise _damaged_key("signing.key") from None

    def signing_public_pem(self) -> bytes:
        return (self.keys_dir / "signing.pub").read_bytes()

    def __repr__(self) -> str:
        return f"Workspace({str(self.root)!r})"


_CONFIG_KEYS = ("format_version", "workspace_id", "audit_mirror")


def _read_config(cfg_path: Path) -> dict:
    """workspace.json, or a WorkspaceError telling unreadable, damaged and incomplete apart."""
    try:
        text = cfg_path.read_bytes().decode("utf-8")
    except OSError as exc:
        raise os_error(exc, "workspace.json cannot be read") from None
    except UnicodeDecodeError:
        text = None
    try:
        config = json.loads(text) if text is not None else None
    except ValueError:
        config = None
    if not isinstance(config, dict) or not all(k in config for k in _CONFIG_KEYS):
        raise WorkspaceError(
            "workspace.json is damaged (truncated, not JSON, or missing format_version, workspace_id or "
            "audit_mirror)",
            "Restore workspace.json from a backup; the workspace id is also in the first audit record "
            "(`pdbg audit show WS`).",
        )
    return config


def os_error(exc: OSError, what: str, cls: type[PdbgError] = WorkspaceError) -> PdbgError:
    """An OSError as one line without a path: read-only, full and denied are told apart."""
    code = exc.errno
    if code == errno.EROFS:
        return cls(f"{what}: the file system is read-only",
                   "Remount the workspace's file system read-write, or use a workspace on a writable disk.")
    if code in (errno.ENOSPC, getattr(errno, "EDQUOT", -1), errno.EFBIG):
        return cls(f"{what}: the disk is full", "Free disk space on the workspace's file system, then retry.")
    if code in (errno.EACCES, errno.EPERM):
        return cls(f"{what}: permission denied",
                   "Run as the workspace's owner, or make its files readable and writable by that account.")
    if code == errno.ENOTDIR:
        return cls(f"{what}: a path component is not a directory", "Check the workspace path.")
    return cls(f"{what}: {(exc.strerror or type(exc).__name__).lower()}",
               "Check the workspace's disk and files (e.g. `dmesg` for I/O errors).")


def _damaged_key(name: str) -> WorkspaceError:
    return WorkspaceError(f"key file {name} is damaged", "Restore keys/ from a backup; nothing was changed.")


def _read_secret(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise WorkspaceError(f"key file {path.name} is missing from the workspace", "Restore keys/ from backup.") from None
    except OSError as exc:
        raise os_error(exc, f"key file {path.name} cannot be read") from None


def _write_private(path: Path, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())


PRIVATE_FILES = ("workspace.json", "data.duckdb", "data.duckdb.wal", "state.sqlite", "state.sqlite-wal",
                 "state.sqlite-shm")


@contextmanager
def private_files() -> Iterator[None]:
    """Files created inside this block are 0600 and directories 0700, whatever the umask.

    The umask is process-wide; it is only ever narrowed here (other threads creating files
    meanwhile get private ones too) and restored afterwards.
    """
    with _UMASK_LOCK:
        old = os.umask(0o077)
        _UMASK_DEPTH[0] += 1
        if _UMASK_DEPTH[0] == 1:
            _UMASK_SAVED[0] = old
    try:
        yield
    finally:
        with _UMASK_LOCK:
            _UMASK_DEPTH[0] -= 1
            if _UMASK_DEPTH[0] == 0:
                os.umask(_UMASK_SAVED[0])


_UMASK_LOCK = threading.Lock()
_UMASK_DEPTH = [0]
_UMASK_SAVED = [0o022]


def make_private(ws: "Workspace") -> None:
    """chmod 0600 the workspace's top-level data files that exist (a root directory that was
    already there keeps its mode, so the files themselves must not be readable by others)."""
    for name in PRIVATE_FILES:
        p = ws.root / name
        try:
            if p.is_file() and p.stat().st_mode & 0o077:
                os.chmod(p, 0o600)
        except OSError:
            pass


def loose_root_warning(root: Path) -> str | None:
    """A one-line warning when the workspace root is readable by its group or by everyone."""
    try:
        mode = root.stat().st_mode & 0o777
    except OSError:
        return None
    if mode & 0o077:
        who = "everyone" if mode & 0o007 else "its group"
        return (f"workspace directory {root.name} is readable by {who} (mode {mode:o}); "
                f"run `chmod 700 {root.name}` so only its owner can list it")
    return None


def create_layout(root: str | os.PathLike, audit_mirror: str | os.PathLike | None = None) -> Workspace:
    """Create directories, keys and workspace.json. Refuses to touch an existing workspace.

    The caller (governance.init) then creates the state schema, the empty data file
    and the first audit record. Every file is created 0600 and every directory 0700, whatever
    the umask; a root directory that already existed keeps its mode.
    """
    root = Path(root).resolve()
    try:
        with private_files():
            return _create_layout(root, audit_mirror)
    except OSError as exc:
        raise os_error(exc, f"could not create workspace {root.name}") from None


def _create_layout(root: Path, audit_mirror) -> Workspace:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    if (root / "workspace.json").exists():
        raise WorkspaceError(f"{root.name} is already a pdbg workspace; refusing to overwrite it", "Pick a new directory.")
    if root.exists() and not root.is_dir():
        raise WorkspaceError(f"{root.name} exists and is not a directory", "Pick a new or empty directory.")
    if root.exists() and any(root.iterdir()):
        raise WorkspaceError(f"{root.name} exists and is not empty; refusing to overwrite it", "Pick a new or empty directory.")
    root.mkdir(parents=True, exist_ok=True, mode=0o700)
    for sub in ("audit", "policies"):
        (root / sub).mkdir(mode=0o700)
    keys = root / "keys"
    keys.mkdir(mode=0o700)

    key_id = "k-" + secrets.token_hex(4)
    _write_private(keys / "tokenize.key", json.dumps({"key_id": key_id, "secret": secrets.token_hex(32)}).encode())
    sk = Ed25519PrivateKey.generate()
    _write_private(
        keys / "signing.key",
        sk.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()),
    )
    pub = sk.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    _write_private(keys / "signing.pub", pub)

    mirror = Path(audit_mirror) if audit_mirror else root.parent / f".{root.name}.audit-mirror"
    config = {
        "format_version": FORMAT_VERSION,
        "workspace_id": str(uuid.uuid4()),
        "created": clock.iso(),
        "audit_mirror": str(mirror.resolve()),
    }
    tmp = root / "workspace.json.tmp"
    _write_private(tmp, (json.dumps(config, indent=2) + "\n").encode())
    os.replace(tmp, root / "workspace.json")
    return Workspace(root)
