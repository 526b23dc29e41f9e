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

import json
import os
import secrets
import uuid
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

from pdbg import clock
from pdbg.errors import WorkspaceError

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
        if not cfg_path.is_file():
            raise WorkspaceError(
                f"{self.root} is not a pdbg workspace (no workspace.json)",
                "Create it with `pdbg init WS` or `pdbg demo WS`.",
            )
        self.config = json.loads(cfg_path.read_text())
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
        data = json.loads(_read_secret(self.keys_dir / "tokenize.key"))
        return TokenKey(key_id=data["key_id"], secret=bytes.fromhex(data["secret"]))

    def signing_key(self):
        from cryptography.hazmat.primitives.serialization import load_pem_private_key

        return load_pem_private_key(_read_secret(self.keys_dir / "signing.key"), password=None)

    def signing_public_pem(self) -> bytes:
        return (self.keys_dir / "signing.pub").read_bytes()

    def __repr__(self) -> str:
        return f"Workspace({str(self.root)!r})"


def _read_secret(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise WorkspaceError(f"key file {path.name} is missing from the workspace", "Restore keys/ from backup.") from None


def _write_private(path: Path, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())


def create_layout(root: str | os.PathLike, audit_mirror: str | os.PathLike | None = None) -> Workspace:
    """Create directories, keys and workspace.json. Refuses to touch an existing workspace.

    The caller (governance.init) then creates the state schema, the empty data file
    and the first audit record.
    """
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    root = Path(root).resolve()
    if (root / "workspace.json").exists():
        raise WorkspaceError(f"{root} is already a pdbg workspace; refusing to overwrite it", "Pick a new directory.")
    if root.exists() and any(root.iterdir()):
        raise WorkspaceError(f"{root} exists and is not empty; refusing to overwrite it", "Pick a new or empty directory.")
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
    tmp.write_text(json.dumps(config, indent=2) + "\n")
    os.replace(tmp, root / "workspace.json")
    return Workspace(root)
