"""Recompute everything and name the first bad record.

Checks, all from the files alone (the mirror's first-seen key is the trust anchor):

* records: each line's hash matches its bytes; ``seq`` runs 0, 1, 2, … by position;
  ``prev`` is the previous record's hash.
* checkpoints (local): linked by ``prev_cp`` (a hash of the previous checkpoint line,
  so the newest signature covers every older checkpoint byte for byte, signatures
  included); ``tree_size`` strictly increasing and never beyond the log; ``last_hash``
  equals the record it claims; signed by the anchor key; the newest one's Merkle
  root equals the root recomputed over all record hashes, and its signature verifies.
* mirror: every mirror checkpoint is byte-identical to a local one, in order; the
  newest mirror checkpoint is checked like the newest local one. A mirror checkpoint
  the workspace lacks means checkpoints.jsonl was rolled back or rewritten.

Why only the newest signatures by default: checkpoints are hash-linked, so checking
the newest signature vouches for all older checkpoint bytes; verifying 100k Ed25519
signatures would cost ~10 s. ``all_signatures=True`` checks every one anyway, and
when a newest signature fails every signature is checked to name the first bad one.

A crash can legitimately leave a torn last line (reported as ``torn_tail_bytes``, cut
off by the next append), records after the newest checkpoint (``unsigned``) and
local checkpoints missing from the mirror (``unmirrored``: a crash, or a mirror copy that
failed after the record was durable, reported in ``warnings``); none of these fails.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field

from pdbg.ledger.audit import keys as keymod
from pdbg.ledger.audit.encoding import GENESIS, SEAL_LEN, checkpoint_message, line_digest, split_sealed
from pdbg.ledger.audit.log import locked
from pdbg.ledger.audit.merkle import leaf_hash, root_of_leaf_hashes
from pdbg.policy.workspace import Workspace

_CP_KEYS = ("log", "tree_size", "root", "last_hash", "ts", "key_id", "prev_cp", "sig")


@dataclass(frozen=True)
class VerifyReport:
    """Outcome of :func:`verify`. ``first_bad_seq`` is the earliest record the problem
    touches (None when the problem is not about one record, e.g. a lost mirror)."""

    ok: bool
    records: int
    checkpoints: int
    first_bad_seq: int | None = None
    problem: str | None = None
    quarantined: tuple[dict, ...] = ()
    problems: tuple[dict, ...] = ()
    mirror_checkpoints: int = 0
    unsigned: int = 0
    unmirrored: int = 0
    torn_tail_bytes: int = 0
    root: str | None = None
    key_id: str | None = None

    def to_dict(self) -> dict:
        d = asdict(self)
        d["warnings"] = list(self.warnings)
        d["quarantined"] = list(self.quarantined)
        d["problems"] = list(self.problems)
        return d

    @property
    def warnings(self) -> tuple[str, ...]:
        """Conditions that are not tampering but that an operator should see."""
        out = []
        if self.unmirrored:
            out.append(f"the audit mirror is {self.unmirrored} checkpoint(s) behind (lag, not tampering: a mirror "
                       "copy failed after its record was durable); the next append copies a newer one")
        return tuple(out)

    @property
    def message(self) -> str:
        if self.ok:
            return f"audit log verifies: {self.records} records, {self.checkpoints} signed checkpoints"
        where = f"first bad record seq {self.first_bad_seq}: " if self.first_bad_seq is not None else ""
        return f"audit log does not verify: {where}{self.problem}"


@dataclass
class _Findings:
    items: list[tuple[int | None, str]] = field(default_factory=list)

    def add(self, seq: int | None, problem: str) -> None:
        self.items.append((seq, problem))

    def first(self) -> tuple[int | None, str | None]:
        if not self.items:
            return None, None
        with_seq = [i for i in self.items if i[0] is not None]
        return min(with_seq, key=lambda i: i[0]) if with_seq else self.items[0]


def _read(path) -> bytes | None:
    """A regular file's bytes, or None when it is missing or not a regular file (a mirror
    pointed at a device such as /dev/full would otherwise be read forever)."""
    import os
    import stat

    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            return None
        chunks = []
        while chunk := os.read(fd, 1 << 24):
            chunks.append(chunk)
        return b"".join(chunks)
    finally:
        os.close(fd)


def _split(data: bytes | None) -> tuple[list[bytes], bytes]:
    """Complete lines and the torn remainder after the last newline."""
    if not data:
        return [], b""
    lines = data.split(b"\n")
    torn = lines.pop()
    return lines, torn


def _scan_records(lines: list[bytes], found: _Findings) -> tuple[list[str | None], list[dict]]:
    """Check every record; return the stored hashes by position and quarantine notes."""
    hashes: list[str | None] = []
    quarantined: list[dict] = []
    prev = GENESIS
    loads, sha = json.loads, hashlib.sha256
    bad = False
    for i, line in enumerate(lines):
        try:
            rec = loads(line)
        except ValueError:
            rec = None
        if type(rec) is not dict:
            if not bad:
                found.add(i, f"record at position {i} is not a JSON object (damaged or inserted)")
                bad = True
            hashes.append(None)
            prev = None
            continue
        sealed = split_sealed(line)
        stored = rec.get("hash")
        hashes.append(stored if isinstance(stored, str) else None)
        if not bad:
            seq = rec.get("seq")
            if sealed is None or sealed[1] != stored or sha(sealed[0]).hexdigest() != stored:
                found.add(i, f"record seq {i}: its hash does not match its contents (edited)")
                bad = True
            elif type(seq) is not int or seq != i:
                if type(seq) is int and seq < i:
                    found.add(i, f"record at position {i} repeats seq {seq} (duplicated or reordered)")
                elif type(seq) is int:
                    found.add(i, f"record seq {i} is missing (the record at its position has seq {seq})")
                else:
                    found.add(i, f"record at position {i} has no valid seq")
                bad = True
            elif rec.get("prev") != prev:
                found.add(i, f"record seq {i}: prev does not match the hash of record {i - 1} "
                             "(a record before it was removed, inserted or replaced)")  # fmt: skip
                bad = True
        if rec.get("action") == "audit.quarantine":
            quarantined.append(
                {"seq": rec.get("seq"), "file": rec.get("file"), "bytes": rec.get("bytes"),
                 "quarantined_as": rec.get("quarantined_as")}
            )  # fmt: skip
        prev = stored
    return hashes, quarantined


def _parse_cp(line: bytes) -> dict | None:
    try:
        cp = json.loads(line)
    except ValueError:
        return None
    if type(cp) is not dict or any(k not in cp for k in _CP_KEYS) or type(cp["tree_size"]) is not int:
        return None
    return cp


def _cp_body(cp: dict) -> dict:
    return {k: v for k, v in cp.items() if k != "sig"}


def verify(ws: Workspace, *, all_signatures: bool = False) -> VerifyReport:
    """Verify records, checkpoints and the mirror; see the module docstring."""
    with locked(ws, exclusive=False):  # a consistent snapshot; appenders wait briefly
        audit = _read(ws.audit_path)
        local = _read(ws.checkpoints_path)
        mirror = _read(keymod.mirror_checkpoints_path(ws))
        mkey = keymod.read_mirror_key(ws)
    ws_pub = keymod.workspace_public_raw(ws)
    if not all_signatures:
        report = _fast_verify(ws, audit, local, mirror, mkey, ws_pub)
        if report is not None:
            return report
    return _full_verify(ws, audit, local, mirror, mkey, ws_pub, all_signatures)


_PREV_CP = b'"prev_cp":"'


def _fast_verify(ws, audit, local, mirror, mkey, ws_pub) -> VerifyReport | None:
    """The common case, cheaply: a report if everything verifies, else None (then the
    full pass runs to name the first bad record).

    Why it is enough: every record's bytes hash to its stored hash; the newest
    checkpoint is signed by the anchor key and its Merkle root over the stored hashes
    matches, so every signed record is exactly what the appender wrote (and the
    appender writes contiguous seq and correct prev); records after the newest
    checkpoint get the full seq/prev checks. Older checkpoints are bound to the newest
    by the prev_cp digest chain (checked on bytes; checkpoint lines hold only hex,
    numbers and timestamps, never caller text), and the mirror must be a byte-exact
    ordered subset of them.
    """
    if mkey is None or ws_pub is None:
        return None
    try:
        anchor_raw = bytes.fromhex(mkey["public_key"])
    except (KeyError, TypeError, ValueError):
        return None
    anchor_id = keymod.fingerprint(anchor_raw)
    if anchor_id != mkey.get("key_id") or mkey.get("workspace_id") != ws.workspace_id or ws_pub != anchor_raw:
        return None
    lines, torn = _split(audit)
    sha = hashlib.sha256
    hashes = []
    quarantined = []
    for line in lines:
        # split_sealed, inlined: this loop is the verify hot path
        if line[-SEAL_LEN : 9 - SEAL_LEN] != b',"hash":"' or line[-2:] != b'"}':
            return None
        stored = line[-66:-2].decode("ascii", "replace")
        if sha(line[:-SEAL_LEN] + b"}").hexdigest() != stored:
            return None
        hashes.append(stored)
        if b'"action":"audit.quarantine"' in line:
            rec = json.loads(line)
            if rec.get("action") == "audit.quarantine":
                quarantined.append({"seq": rec.get("seq"), "file": rec.get("file"), "bytes": rec.get("bytes"),
                                    "quarantined_as": rec.get("quarantined_as")})  # fmt: skip
    n = len(lines)
    cp_lines, _ = _split(local)
    key_bytes = b'"key_id":"' + anchor_id.encode() + b'"'
    log_bytes = b'"log":"' + ws.workspace_id.encode() + b'"'
    prev = GENESIS.encode()
    for line in cp_lines:
        at = line.find(_PREV_CP)
        if at < 0 or line[at + 11 : at + 75] != prev or key_bytes not in line or log_bytes not in line:
            return None
        prev = sha(line).hexdigest().encode()
    newest = _parse_cp(cp_lines[-1]) if cp_lines else None
    t = newest["tree_size"] if newest else 0
    if newest is not None:
        if not (0 < t <= n) or hashes[t - 1] != newest["last_hash"]:
            return None
        if root_of_leaf_hashes([leaf_hash(bytes.fromhex(h)) for h in hashes[:t]]).hex() != newest["root"]:
            return None
        if not keymod.verify_signature(anchor_raw, newest["sig"], checkpoint_message(_cp_body(newest))):
            return None
    prev_hash = hashes[t - 1] if t else GENESIS
    for i in range(t, n):  # unsigned tail (a crash between record and checkpoint): full checks
        try:
            rec = json.loads(lines[i])
        except ValueError:
            return None
        if type(rec) is not dict or rec.get("seq") != i or rec.get("prev") != prev_hash:
            return None
        prev_hash = hashes[i]
    m_lines, _ = _split(mirror)
    position = {line: j for j, line in enumerate(cp_lines)}
    last_pos = -1
    for line in m_lines:
        pos = position.get(line)
        if pos is None or pos <= last_pos:
            return None
        last_pos = pos
    return VerifyReport(
        ok=True, records=n, checkpoints=len(cp_lines), quarantined=tuple(quarantined),
        mirror_checkpoints=len(m_lines), unsigned=n - t, unmirrored=len(cp_lines) - 1 - last_pos,
        torn_tail_bytes=len(torn), root=newest["root"] if newest else None, key_id=anchor_id,
    )  # fmt: skip


def _full_verify(ws, audit, local, mirror, mkey, ws_pub, all_signatures) -> VerifyReport:
    """Every check on every record and checkpoint; names the first bad record."""
    found = _Findings()

    lines, torn = _split(audit)
    n = len(lines)
    hashes, quarantined = _scan_records(lines, found)

    # -- trust anchor -------------------------------------------------------------
    anchor_raw: bytes | None = None
    cp_lines, _cp_torn = _split(local)
    m_lines, _m_torn = _split(mirror)
    if mkey is None:
        if cp_lines or m_lines:
            found.add(None, f"the audit mirror at {keymod.mirror_dir(ws)} has no key record (mirror lost or moved)")
        anchor_raw = ws_pub
    else:
        try:
            anchor_raw = bytes.fromhex(mkey["public_key"])
            if keymod.fingerprint(anchor_raw) != mkey["key_id"] or mkey.get("workspace_id") != ws.workspace_id:
                raise ValueError
        except (KeyError, TypeError, ValueError):
            found.add(None, "the audit mirror's key record is damaged")
            anchor_raw = ws_pub
        if ws_pub is not None and anchor_raw is not None and ws_pub != anchor_raw:
            found.add(None, "the workspace signing key (keys/signing.pub) is not the key the mirror first saw (re-keyed)")
    anchor_id = keymod.fingerprint(anchor_raw) if anchor_raw else None

    # -- local checkpoints ----------------------------------------------------------
    cps: list[dict | None] = []
    prev_digest, prev_size = GENESIS, 0
    cp_bad = False
    for j, line in enumerate(cp_lines):
        cp = _parse_cp(line)
        cps.append(cp)
        if cp_bad:
            continue
        if cp is None:
            found.add(prev_size, f"checkpoint line {j + 1} is damaged")
            cp_bad = True
            continue
        t = cp["tree_size"]
        last_rec = max(t - 1, 0)
        if cp["prev_cp"] != prev_digest:
            found.add(max(prev_size - 1, 0), f"checkpoint line {j + 1} does not link to the checkpoint before it "
                                             "(a checkpoint was altered, removed or inserted)")  # fmt: skip
            cp_bad = True
        elif cp["log"] != ws.workspace_id:
            found.add(last_rec, f"checkpoint over {t} records belongs to another workspace")
            cp_bad = True
        elif anchor_id is not None and cp["key_id"] != anchor_id:
            found.add(last_rec, f"checkpoint over {t} records is signed by another key (re-signed)")
            cp_bad = True
        elif t <= prev_size:
            found.add(last_rec, f"checkpoint over {t} records comes after one over {prev_size} (out of order)")
            cp_bad = True
        elif t > n:
            found.add(n, f"audit.jsonl ends after {n} records but a signed checkpoint covers {t} "
                         "(records removed from the end)")  # fmt: skip
            cp_bad = True
        elif hashes[t - 1] != cp["last_hash"]:
            found.add(t - 1, f"record seq {t - 1} is not the record its signed checkpoint covers (replaced)")
            cp_bad = True
        prev_digest, prev_size = line_digest(line), t

    leaves_cache: list[bytes] | None = None

    def root_at(size: int) -> str:
        nonlocal leaves_cache
        if leaves_cache is None:
            leaves_cache = [leaf_hash(bytes.fromhex(h)) if h and len(h) == 64 else b"" for h in hashes]
        return root_of_leaf_hashes(leaves_cache[:size]).hex()

    def check_head(cp: dict, where: str) -> None:
        """Full check of a newest checkpoint: in range, root, signature."""
        t = cp["tree_size"]
        if t > n:
            if not any(s == n for s, _ in found.items):
                found.add(n, f"audit.jsonl ends after {n} records but the {where} signed checkpoint covers {t} "
                             "(records removed from the end)")  # fmt: skip
            return
        if t and root_at(t) != cp["root"]:
            found.add(t - 1, f"the {where} checkpoint's Merkle root does not match records 0..{t - 1}")
        if anchor_raw is None or not keymod.verify_signature(anchor_raw, cp["sig"], checkpoint_message(_cp_body(cp))):
            found.add(max(t - 1, 0), f"the {where} checkpoint over {t} records has a bad signature")

    newest = next((cp for cp in reversed(cps) if cp is not None), None)
    sig_scan = all_signatures
    if newest is not None:
        before = len(found.items)
        check_head(newest, "newest local")
        sig_scan = sig_scan or len(found.items) > before
    if sig_scan and anchor_raw is not None:
        for cp in cps:
            if cp is not None and not keymod.verify_signature(anchor_raw, cp["sig"], checkpoint_message(_cp_body(cp))):
                found.add(max(cp["tree_size"] - 1, 0), f"checkpoint over {cp['tree_size']} records has a bad signature")
                break

    # -- mirror -----------------------------------------------------------------------
    position = {line: j for j, line in enumerate(cp_lines)}
    local_max = max((cp["tree_size"] for cp in cps if cp is not None), default=0)
    last_pos = -1
    m_newest: dict | None = None
    for k, line in enumerate(m_lines):
        pos = position.get(line)
        if pos is not None and pos > last_pos:
            last_pos = pos
            continue
        cp = _parse_cp(line)
        if cp is None:
            found.add(None, f"mirror checkpoint line {k + 1} is damaged")
            break
        t = cp["tree_size"]
        if pos is not None:
            found.add(max(t - 1, 0), f"mirror checkpoint over {t} records is out of order")
        elif t > local_max:
            found.add(min(local_max, n), f"checkpoints.jsonl is behind its mirror: the mirror holds a checkpoint over "
                                         f"{t} records that the workspace lacks (rolled back)")  # fmt: skip
        elif t <= n and hashes[t - 1] != cp["last_hash"]:
            found.add(t - 1, f"record seq {t - 1} is not the record the mirror's checkpoint covers (history rewritten)")
        else:
            found.add(max(t - 1, 0), f"the checkpoint over {t} records differs from its mirror copy (rewritten)")
        break
    if m_lines:
        m_newest = _parse_cp(m_lines[-1])
        if m_newest is not None and m_newest != newest:
            check_head(m_newest, "newest mirror")

    seq, problem = found.first()
    newest_size = newest["tree_size"] if newest else 0
    return VerifyReport(
        ok=not found.items,
        records=n,
        checkpoints=len(cp_lines),
        first_bad_seq=seq,
        problem=problem,
        quarantined=tuple(quarantined),
        problems=tuple({"seq": s, "problem": p} for s, p in found.items),
        mirror_checkpoints=len(m_lines),
        unsigned=max(n - newest_size, 0),
        unmirrored=max(len(cp_lines) - 1 - last_pos, 0) if m_lines or cp_lines else 0,
        torn_tail_bytes=len(torn),
        root=newest["root"] if newest else None,
        key_id=anchor_id,
    )
