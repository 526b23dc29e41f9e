"""Audit-log benchmark: durable appends/s and verify records/s.

    .venv/bin/python benchmarks/audit.py [--appends 1000] [--records 100000] [--json]

* raw fsync/s    one 300-byte append + fsync on one file: the disk's ceiling right now
                 (report it with the numbers: a busy disk moves everything)
* append         AuditLog.append, one process, sequential: record fsync, signed
                 checkpoint fsync, mirror copy fsync per record (durable, per-record
                 tail-truncation evidence)
* append x8      8 processes appending concurrently (total appends/s)
* append_many    group commit, batches of 50: one fsync round + one signature per batch
* verify         pdbg.ledger.audit.verify on N records with one checkpoint per record
                 (the files are written directly in the exact on-disk format, then the
                 head/mirror are consistent, so verify does all its work)
Goals (issue 3): >= 500 appends/s durable, verify >= 100k records/s.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from pdbg import clock
from pdbg.ledger.audit import AuditLog, verify
from pdbg.ledger.audit import keys as keymod
from pdbg.ledger.audit.encoding import GENESIS, checkpoint_line, checkpoint_message, line_digest, seal_record
from pdbg.ledger.audit.merkle import Frontier
from pdbg.policy.workspace import MIRROR_ENV, create_layout


def fresh(root: Path, name: str):
    return create_layout(root / name, audit_mirror=root / f"{name}.mirror")


def raw_fsync_rate(root: Path, n: int = 300) -> float:
    fd = os.open(root / "probe", os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    t = time.perf_counter()
    for _ in range(n):
        os.write(fd, b"x" * 300 + b"\n")
        os.fsync(fd)
    rate = n / (time.perf_counter() - t)
    os.close(fd)
    return rate


def bench_append(root: Path, n: int) -> float:
    ws = fresh(root, "append")
    log = AuditLog(ws)
    log.append("bench", "warmup")
    t = time.perf_counter()
    for i in range(n):
        log.append("alice", "query", case="INC-7", sql="SELECT service, COUNT(*) FROM requests GROUP BY service",
                   cost_units={"privacy": 125000000000000, "delta": 0}, cache_hit=False, i=i)  # fmt: skip
    return n / (time.perf_counter() - t)


CHILD = """
import sys
from pdbg.policy.workspace import Workspace
from pdbg.ledger.audit import AuditLog
log = AuditLog(Workspace(sys.argv[1]))
for i in range(int(sys.argv[2])):
    log.append(sys.argv[3], "query", i=i)
"""


def bench_concurrent(root: Path, n_per: int, procs: int = 8) -> float:
    ws = fresh(root, "concurrent")
    AuditLog(ws).append("bench", "warmup")
    env = {k: v for k, v in os.environ.items() if k != MIRROR_ENV}
    t = time.perf_counter()
    ps = [subprocess.Popen([sys.executable, "-c", CHILD, str(ws.root), str(n_per), f"p{k}"], env=env)
          for k in range(procs)]  # fmt: skip
    assert all(p.wait() == 0 for p in ps)
    dt = time.perf_counter() - t  # includes 8 interpreter start-ups: a lower bound
    assert verify(ws).ok
    return procs * n_per / dt


def bench_batched(root: Path, n: int, batch: int = 50) -> float:
    log = AuditLog(fresh(root, "batched"))
    t = time.perf_counter()
    for b in range(n // batch):
        log.append_many([("alice", "query", {"i": b * batch + i, "case": "INC-7"}) for i in range(batch)])
    return (n // batch) * batch / (time.perf_counter() - t)


def build_log(ws, n: int) -> None:
    """Write n records + n checkpoints exactly as appends would, minus the fsyncs."""
    key = keymod.load_signing_key(ws)
    f, prev, prev_cp = Frontier(), GENESIS, GENESIS
    recs, cps = [], []
    ts = clock.iso()
    for i in range(n):
        body = {"seq": i, "ts": ts, "actor": f"user{i % 17}", "action": "query", "severity": "info",
                "case": f"INC-{i % 5}", "sql": "SELECT service, COUNT(*) FROM requests GROUP BY service",
                "cost_units": {"privacy": 125000000000000, "delta": 0}, "charged": True, "prev": prev}  # fmt: skip
        prev, line = seal_record(body)
        recs.append(line)
        f.append(bytes.fromhex(prev))
        cpb = {"log": ws.workspace_id, "tree_size": i + 1, "root": f.root().hex(), "last_hash": prev,
               "ts": ts, "key_id": key.key_id, "prev_cp": prev_cp}  # fmt: skip
        cp = checkpoint_line(cpb, key.sign(checkpoint_message(cpb)))
        cps.append(cp)
        prev_cp = line_digest(cp[:-1])
    ws.audit_path.write_bytes(b"".join(recs))
    ws.checkpoints_path.write_bytes(b"".join(cps))
    mdir = keymod.mirror_dir(ws)
    mdir.mkdir(parents=True)
    (mdir / "checkpoints.jsonl").write_bytes(b"".join(cps))
    (mdir / "key.json").write_text(json.dumps({"workspace_id": ws.workspace_id, "key_id": key.key_id,
                                               "public_key": key.public_hex, "first_seen": ts}))  # fmt: skip


def bench_verify(root: Path, n: int) -> tuple[float, float]:
    ws = fresh(root, "verify")
    build_log(ws, n)
    best = 0.0
    for _ in range(3):
        t = time.perf_counter()
        rep = verify(ws)
        best = max(best, n / (time.perf_counter() - t))
        assert rep.ok and rep.records == n, rep.problems
    t = time.perf_counter()
    AuditLog(ws).append("bench", "after-build")  # first append on a foreign head: one full rescan
    rescan_s = time.perf_counter() - t
    return best, rescan_s


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--appends", type=int, default=1000)
    ap.add_argument("--records", type=int, default=100_000)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    os.environ.pop(MIRROR_ENV, None)
    with tempfile.TemporaryDirectory(prefix="pdbg-bench-audit-", dir=os.environ.get("BENCH_DIR")) as tmp:
        root = Path(tmp)
        out = {"raw_fsync_per_s": raw_fsync_rate(root)}
        out["append_per_s_durable"] = bench_append(root, args.appends)
        out["append_per_s_8_processes"] = bench_concurrent(root, max(args.appends // 8, 10))
        out["append_many_per_s_batch50"] = bench_batched(root, args.appends)
        out["raw_fsync_per_s_after"] = raw_fsync_rate(root)
        out["verify_records_per_s"], out["rescan_append_s"] = bench_verify(root, args.records)
        out["verify_records"] = args.records
    if args.json:
        print(json.dumps(out, sort_keys=True))
        return
    print(f"raw fsync/s (disk now)        {out['raw_fsync_per_s']:10.0f}  (after: {out['raw_fsync_per_s_after']:.0f})")
    print(f"append/s durable, 1 process   {out['append_per_s_durable']:10.0f}  (goal >= 500)")
    print(f"append/s durable, 8 processes {out['append_per_s_8_processes']:10.0f}")
    print(f"append_many/s (batches of 50) {out['append_many_per_s_batch50']:10.0f}")
    print(f"verify records/s ({args.records} records, one checkpoint each) {out['verify_records_per_s']:10.0f}  (goal >= 100000)")
    print(f"first append after a foreign change (full rescan of {args.records}) {out['rescan_append_s']:.2f} s")


if __name__ == "__main__":
    main()
