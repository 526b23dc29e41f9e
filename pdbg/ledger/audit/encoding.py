"""Canonical encoding of audit records and checkpoints, and the record hash.

Why a fixed byte format: a hash chain proves nothing unless a third party can
recompute every hash from the file alone. The encoding is therefore spelled out
here and nowhere else.

Canonical JSON
    ``json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False,
    allow_nan=False)`` encoded as UTF-8: keys sorted by code point, no whitespace,
    non-ASCII characters written as UTF-8 (not ``\\u`` escapes), NaN/Infinity refused.
    Python's escaping of control characters, ``"`` and ``\\`` applies, so a record is
    always exactly one line.

Record hash
    ``hash = SHA-256(canonical(record without "hash"))`` as lowercase hex.

Record line (one per record in audit.jsonl)
    The canonical body with the hash member placed last::

        canonical(body)[:-1] + b',"hash":"' + hash + b'"}' + b"\\n"

    A verifier can either parse the line, drop ``hash`` and re-encode, or (faster,
    and what :func:`split_sealed` does) cut the fixed 75-byte hash member off the end
    and hash the remaining bytes plus ``}``; for lines pdbg wrote both give the same
    bytes. Any byte changed anywhere in the body changes the hash.

Checkpoint line (checkpoints.jsonl and its mirror)
    The same layout with ``sig`` instead of ``hash``: ``sig`` is the Ed25519 signature
    (hex) over ``CHECKPOINT_DOMAIN + canonical(checkpoint without "sig")``. The domain
    prefix keeps a checkpoint signature from ever being valid for any other message
    signed with the workspace key.
"""

from __future__ import annotations

import enum
import hashlib
import json
from datetime import date, datetime
from decimal import Decimal
from pathlib import PurePath

GENESIS = "0" * 64
CHECKPOINT_DOMAIN = b"pdbg audit checkpoint v1\n"

_HASH_KEY = b',"hash":"'
_SIG_KEY = b',"sig":"'
SEAL_LEN = len(_HASH_KEY) + 64 + 2  # ,"hash":"<64 hex>"}


def _jsonable(value):
    """Deterministic JSON forms for the few non-JSON types callers commonly pass."""
    if isinstance(value, datetime):
        from pdbg import clock

        return clock.iso(value) if value.tzinfo else value.isoformat()
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, (PurePath, Decimal)):
        return str(value)
    if isinstance(value, (set, frozenset)):
        return sorted(value)
    raise TypeError(f"values of type {type(value).__name__} cannot be stored in the audit log")


def canonical(obj: dict) -> bytes:
    """The canonical JSON bytes of ``obj`` (see the module docstring)."""
    return json.dumps(
        obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False, default=_jsonable
    ).encode("utf-8")


def seal_record(body: dict) -> tuple[str, bytes]:
    """Hash a record body and return ``(hash, line)``; ``line`` ends with a newline."""
    c = canonical(body)
    h = hashlib.sha256(c).hexdigest()
    return h, c[:-1] + _HASH_KEY + h.encode("ascii") + b'"}\n'


def split_sealed(line: bytes) -> tuple[bytes, str] | None:
    """``(hashed bytes, stored hash)`` of a record line without its newline, or None if
    the line does not end with a hash member in the canonical position."""
    if len(line) <= SEAL_LEN or line[-SEAL_LEN : -SEAL_LEN + len(_HASH_KEY)] != _HASH_KEY or line[-2:] != b'"}':
        return None
    try:
        stored = line[-66:-2].decode("ascii")
    except UnicodeDecodeError:
        return None
    return line[:-SEAL_LEN] + b"}", stored


def checkpoint_message(body: dict) -> bytes:
    """The bytes an Ed25519 checkpoint signature covers."""
    return CHECKPOINT_DOMAIN + canonical(body)


def checkpoint_line(body: dict, sig_hex: str) -> bytes:
    """The checkpoint line (with newline): canonical body with ``sig`` last."""
    return canonical(body)[:-1] + _SIG_KEY + sig_hex.encode("ascii") + b'"}\n'


def line_digest(line: bytes) -> str:
    """SHA-256 hex of one line without its newline: links each checkpoint to the one before."""
    return hashlib.sha256(line).hexdigest()
