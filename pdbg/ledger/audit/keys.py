"""Signing key, its fingerprint, and the mirror location.

Why a mirror with a "first seen" key: whoever can rewrite the workspace can also
rewrite checkpoints.jsonl, or re-sign everything with a fresh key. A second copy of
every checkpoint, plus the fingerprint of the key that signed the very first one,
kept somewhere else, turns both into a visible disagreement.

Mirror layout (``ws.audit_mirror`` = env ``PDBG_AUDIT_MIRROR`` or workspace config)::

    MIRROR/<workspace_id>/key.json           {"workspace_id", "key_id", "public_key", "first_seen"}
    MIRROR/<workspace_id>/checkpoints.jsonl  byte-identical copies of checkpoint lines

The per-workspace subdirectory lets one mirror location serve several workspaces.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path

from pdbg.policy.workspace import Workspace

_CACHE: dict[tuple, "SigningKey"] = {}


@dataclass(frozen=True)
class SigningKey:
    """The workspace Ed25519 key; ``repr`` never shows the private part."""

    key_id: str
    public_hex: str
    _private: object

    def sign(self, message: bytes) -> str:
        return self._private.sign(message).hex()

    def __repr__(self) -> str:
        return f"SigningKey(key_id={self.key_id!r}, private=<redacted>)"


def fingerprint(public_raw: bytes) -> str:
    """Key id of an Ed25519 public key: SHA-256 of its 32 raw bytes, hex."""
    return hashlib.sha256(public_raw).hexdigest()


def load_signing_key(ws: Workspace) -> SigningKey:
    """The workspace signing key, cached per key file version (parsing PEM per append
    would cost more than the signature)."""
    from cryptography.hazmat.primitives import serialization

    path = ws.keys_dir / "signing.key"
    st = os.stat(path)
    cache_key = (str(path), st.st_ino, st.st_mtime_ns, st.st_size)
    key = _CACHE.get(cache_key)
    if key is None:
        private = ws.signing_key()
        raw = private.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        key = SigningKey(fingerprint(raw), raw.hex(), private)
        _CACHE.clear()
        _CACHE[cache_key] = key
    return key


def workspace_public_raw(ws: Workspace) -> bytes | None:
    """Raw bytes of WS/keys/signing.pub, or None when missing or unreadable."""
    from cryptography.hazmat.primitives import serialization

    try:
        pub = serialization.load_pem_public_key(ws.signing_public_pem())
        return pub.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    except (OSError, ValueError, TypeError):
        return None


def verify_signature(public_raw: bytes, sig_hex: str, message: bytes) -> bool:
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    try:
        Ed25519PublicKey.from_public_bytes(public_raw).verify(bytes.fromhex(sig_hex), message)
        return True
    except (InvalidSignature, ValueError, TypeError):
        return False


def mirror_dir(ws: Workspace) -> Path:
    return Path(ws.audit_mirror) / ws.workspace_id


def mirror_checkpoints_path(ws: Workspace) -> Path:
    return mirror_dir(ws) / "checkpoints.jsonl"


def mirror_key_path(ws: Workspace) -> Path:
    return mirror_dir(ws) / "key.json"


def read_mirror_key(ws: Workspace) -> dict | None:
    """The mirror's first-seen key record, or None if the mirror was never initialized."""
    try:
        data = json.loads(mirror_key_path(ws).read_bytes())
    except FileNotFoundError:
        return None
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}
