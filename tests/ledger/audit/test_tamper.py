"""Tamper suite: every way of rewriting history is caught by verify, which names the
first bad record. Starts from 10 records (seq 0..9), one signed checkpoint each."""

from __future__ import annotations

import json

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from pdbg.errors import AuditError
from pdbg.ledger.audit import AuditLog, verify
from pdbg.ledger.audit import keys as keymod
from pdbg.ledger.audit.encoding import (
    GENESIS,
    checkpoint_line,
    checkpoint_message,
    line_digest,
    seal_record,
)
from pdbg.ledger.audit.merkle import Frontier

from .conftest import loads, read_lines, write_lines


def rechain(lines: list[bytes], start: int) -> list[bytes]:
    """What a careful attacker does after changing record ``start``: recompute every
    hash from there on so the chain itself is consistent again."""
    out = list(lines[:start])
    prev = loads(out[-1])["hash"] if out else GENESIS
    for i, line in enumerate(lines[start:], start):
        rec = loads(line)
        rec.pop("hash")
        rec["prev"], rec["seq"] = prev, i
        prev, new = seal_record(rec)
        out.append(new[:-1])
    return out


def resign(ws, record_lines: list[bytes], private=None, keep: int = 0) -> None:
    """Regenerate checkpoints.jsonl (one per record, after the first ``keep`` lines)
    over the given records, signed with ``private`` (default: the workspace key)."""
    private = private or ws.signing_key()
    raw = private.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    cps = read_lines(ws.checkpoints_path)[:keep]
    prev_cp = line_digest(cps[-1]) if cps else GENESIS
    f = Frontier()
    for i, line in enumerate(record_lines):
        f.append(bytes.fromhex(loads(line)["hash"]))
        if i < keep:
            continue
        body = {"log": ws.workspace_id, "tree_size": f.size, "root": f.root().hex(),
                "last_hash": loads(line)["hash"], "ts": loads(line)["ts"],
                "key_id": keymod.fingerprint(raw), "prev_cp": prev_cp}  # fmt: skip
        cp = checkpoint_line(body, private.sign(checkpoint_message(body)).hex())[:-1]
        cps.append(cp)
        prev_cp = line_digest(cp)
    write_lines(ws.checkpoints_path, cps)


def install_new_key(ws) -> Ed25519PrivateKey:
    sk = Ed25519PrivateKey.generate()
    (ws.keys_dir / "signing.key").write_bytes(
        sk.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    (ws.keys_dir / "signing.pub").write_bytes(
        sk.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    return sk


def edit(line: bytes, **changes) -> bytes:
    """Change fields but keep the stored hash and valid JSON (a naive edit)."""
    rec = loads(line)
    rec.update(changes)
    return json.dumps(rec, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def expect_bad(ws, seq, fragment=None):
    rep = verify(ws)
    assert not rep.ok, rep
    assert rep.first_bad_seq == seq, rep.problems
    if fragment:
        assert fragment in rep.problem, rep.problem
    return rep


def test_clean_log_verifies(ws10):
    rep = verify(ws10)
    assert rep.ok, rep.problems
    assert (rep.records, rep.checkpoints, rep.mirror_checkpoints, rep.unsigned) == (10, 10, 10, 0)
    assert verify(ws10, all_signatures=True).ok


# -- records ---------------------------------------------------------------------------


def test_edit_keeping_valid_json(ws10):
    lines = read_lines(ws10.audit_path)
    lines[4] = edit(lines[4], actor="mallory")
    write_lines(ws10.audit_path, lines)
    expect_bad(ws10, 4, "edited")


def test_edit_with_recomputed_hash(ws10):
    lines = read_lines(ws10.audit_path)
    lines[4] = edit(lines[4], n=999)
    lines = lines[:4] + rechain(lines, 4)[4:5] + lines[5:]
    write_lines(ws10.audit_path, lines)
    expect_bad(ws10, 4)


def test_edit_with_whole_chain_recomputed(ws10):
    lines = read_lines(ws10.audit_path)
    lines[4] = edit(lines[4], n=999)
    write_lines(ws10.audit_path, rechain(lines, 4))
    expect_bad(ws10, 4, "replaced")


def test_edit_rechained_and_resigned_with_the_real_key(ws10):
    """An attacker holding the workspace key rewrites records and checkpoints alike;
    only the mirror still remembers the truth."""
    lines = read_lines(ws10.audit_path)
    lines[4] = edit(lines[4], n=999)
    lines = rechain(lines, 4)
    write_lines(ws10.audit_path, lines)
    resign(ws10, lines, keep=4)
    expect_bad(ws10, 4, "mirror")


def test_delete_middle(ws10):
    lines = read_lines(ws10.audit_path)
    write_lines(ws10.audit_path, lines[:4] + lines[5:])
    expect_bad(ws10, 4, "missing")


def test_delete_middle_and_rechain(ws10):
    lines = read_lines(ws10.audit_path)
    write_lines(ws10.audit_path, rechain(lines[:4] + lines[5:], 4))
    expect_bad(ws10, 4)


@pytest.mark.parametrize("k", [1, 3, 10])
def test_delete_last_k(ws10, k):
    lines = read_lines(ws10.audit_path)
    write_lines(ws10.audit_path, lines[: 10 - k])
    expect_bad(ws10, 10 - k, "removed from the end")


def test_delete_last_k_records_and_checkpoints_caught_by_mirror(ws10):
    write_lines(ws10.audit_path, read_lines(ws10.audit_path)[:7])
    write_lines(ws10.checkpoints_path, read_lines(ws10.checkpoints_path)[:7])
    expect_bad(ws10, 7)


def test_reorder(ws10):
    lines = read_lines(ws10.audit_path)
    lines[3], lines[6] = lines[6], lines[3]
    write_lines(ws10.audit_path, lines)
    expect_bad(ws10, 3)


def test_duplicate(ws10):
    lines = read_lines(ws10.audit_path)
    write_lines(ws10.audit_path, lines[:6] + [lines[5]] + lines[6:])
    expect_bad(ws10, 6, "repeats seq 5")


def test_insert_forged_record(ws10):
    lines = read_lines(ws10.audit_path)
    forged = loads(lines[4])
    forged.pop("hash")
    forged.update(actor="mallory", action="access.approve")
    _, new = seal_record(forged)
    write_lines(ws10.audit_path, lines[:4] + [new[:-1]] + lines[4:])
    expect_bad(ws10, 4)


def test_insert_and_rechain(ws10):
    lines = read_lines(ws10.audit_path)
    forged = loads(lines[4])
    forged["actor"] = "mallory"
    write_lines(ws10.audit_path, rechain(lines[:4] + [json.dumps(forged).encode()] + lines[4:], 4))
    expect_bad(ws10, 4)


def test_garbage_line(ws10):
    lines = read_lines(ws10.audit_path)
    lines[2] = b"not json at all"
    write_lines(ws10.audit_path, lines)
    expect_bad(ws10, 2)


# -- keys and checkpoints ---------------------------------------------------------------


def test_resign_everything_with_another_key(ws10):
    sk = install_new_key(ws10)
    resign(ws10, read_lines(ws10.audit_path), private=sk)
    rep = expect_bad(ws10, 0, "another key")
    assert any("re-keyed" in p["problem"] for p in rep.problems)
    with pytest.raises(AuditError, match="not the key the audit mirror first saw"):
        AuditLog(ws10).append("mallory", "query")


def test_rewrite_from_record_5_and_resign_with_another_key(ws10):
    lines = read_lines(ws10.audit_path)
    lines[5] = edit(lines[5], actor="mallory")
    lines = rechain(lines, 5)
    write_lines(ws10.audit_path, lines)
    resign(ws10, lines, private=install_new_key(ws10), keep=5)
    expect_bad(ws10, 5)


def test_checkpoint_file_rolled_back(ws10):
    write_lines(ws10.checkpoints_path, read_lines(ws10.checkpoints_path)[:6])
    expect_bad(ws10, 6, "rolled back")
    with pytest.raises(AuditError, match="behind its mirror"):
        AuditLog(ws10).append("alice", "query")


def test_checkpoint_file_deleted(ws10):
    ws10.checkpoints_path.unlink()
    expect_bad(ws10, 0, "rolled back")


@pytest.mark.parametrize("index, seq", [(4, 4), (9, 9), (0, 0)])
def test_corrupt_signature(ws10, index, seq):
    cps = read_lines(ws10.checkpoints_path)
    cp = loads(cps[index])
    cp["sig"] = ("0" if cp["sig"][0] != "0" else "1") + cp["sig"][1:]
    cps[index] = checkpoint_line({k: v for k, v in cp.items() if k != "sig"}, cp["sig"])[:-1]
    write_lines(ws10.checkpoints_path, cps)
    expect_bad(ws10, seq)


def test_corrupt_newest_signature_in_both_copies(ws10):
    mirror = keymod.mirror_checkpoints_path(ws10)
    for path in (ws10.checkpoints_path, mirror):
        cps = read_lines(path)
        cp = loads(cps[-1])
        cp["sig"] = "00" * 64
        cps[-1] = checkpoint_line({k: v for k, v in cp.items() if k != "sig"}, cp["sig"])[:-1]
        write_lines(path, cps)
    expect_bad(ws10, 9, "bad signature")


def test_edited_checkpoint_root(ws10):
    cps = read_lines(ws10.checkpoints_path)
    cps[-1] = cps[-1].replace(b'"root":"', b'"root":"f', 1)[:]
    write_lines(ws10.checkpoints_path, cps)
    assert not verify(ws10).ok


def test_mirror_lost(ws10):
    keymod.mirror_key_path(ws10).unlink()
    rep = verify(ws10)
    assert not rep.ok and rep.first_bad_seq is None and "mirror" in rep.problem
    with pytest.raises(AuditError, match="mirror"):
        AuditLog(ws10).append("alice", "query")


def test_messages_never_contain_record_content(ws10):
    lines = read_lines(ws10.audit_path)
    lines[4] = edit(lines[4], text="SECRET-VALUE-123")
    write_lines(ws10.audit_path, lines)
    rep = verify(ws10)
    assert "SECRET-VALUE-123" not in json.dumps(rep.to_dict())
