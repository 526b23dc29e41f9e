"""Release cache: the same question on the same data within a case gets the same answer.

Why (DESIGN.md §2): re-running a notebook must reproduce its answers and spend nothing,
and asking the same query again must not yield fresh noise that could be averaged
away. So a release is stored under a key over everything that determines its
distribution: normalized query (AST after parameter binding), parameters, the bounds /
policy digest, the cost, the data version, the case and the dataset.

Table (this module owns it)::

    release_cache(key PK, case_id, dataset, data_version, payload TEXT (JSON),
                  cost TEXT (JSON), created, hits, last_hit)

Payloads are already-noised DP releases (never exact aggregates), so the cache holds
nothing that the investigator has not been allowed to see.

Binding (DESIGN.md invariant 12): the session's charged ``query`` record carries
``result_digest = payload_digest(payload)``, the sha256 of the canonical JSON stored here.
Whenever a stored answer is shown again (cache hit, ``Session.replay``, postmortem replay)
:func:`check_release` compares the entry with the digest its record bound and raises
:class:`ReleaseTampered` (naming the release id, never a value) on a mismatch or when no
record names the release; ``pdbg audit verify --deep`` runs :func:`verify_releases` over
every entry. Records written before digests existed bind nothing (``legacy``): they are
served, and ``--deep`` lists them.

Hits: ``get(count_hit=False)`` (the session's hit path) takes no write lock; the audit
log's ``query`` records with ``cached: true`` are the count of record.

Ordering and races: the session writes the cache *after* the charge is committed
(audit append -> ledger commit -> ``put``). Writing earlier could leave a cached answer
whose charge a crash then released - a free release. Two kernels that miss the cache
for the same key at the same time both reserve, both are charged, and both ``put``:
the first writer wins (``INSERT OR IGNORE`` then read back) and both return that one
stored answer. The loser's charge stands: over-counting is safe, and its own noisy
answer is discarded without being shown, so repetition still gains nothing.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from pdbg import clock
from pdbg.dp.accounting import Cost
from pdbg.errors import AuditError, PdbgError
from pdbg.ledger.state import StateStore, write_tx

SCHEMA = """
CREATE TABLE IF NOT EXISTS release_cache (
    key          TEXT PRIMARY KEY,
    case_id      TEXT NOT NULL,
    dataset      TEXT NOT NULL,
    data_version INTEGER NOT NULL,
    payload      TEXT NOT NULL,
    cost         TEXT NOT NULL,
    created      TEXT NOT NULL,
    hits         INTEGER NOT NULL DEFAULT 0,
    last_hit     TEXT
);
CREATE INDEX IF NOT EXISTS release_cache_by_case ON release_cache (case_id, created);
"""

KEY_VERSION = "pdbg-release-cache/1"


def _jsonable(obj: Any) -> Any:
    """Canonical JSON form of key parts: sorted keys, exact numbers, ISO times."""
    if isinstance(obj, Cost):
        return {"accounting": obj.accounting, "units": obj.units()}
    if isinstance(obj, Mapping):
        return {str(k): _jsonable(v) for k, v in sorted(obj.items(), key=lambda kv: str(kv[0]))}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, (set, frozenset)):
        return sorted((_jsonable(v) for v in obj), key=lambda v: json.dumps(v, sort_keys=True))
    if isinstance(obj, bool) or obj is None or isinstance(obj, (int, str)):
        return obj
    if isinstance(obj, float):
        return {"float": repr(obj)}  # repr round-trips (nan/inf too); keeps 1.0 distinct from 1
    if isinstance(obj, Decimal):
        return {"decimal": str(obj)}
    if isinstance(obj, (datetime, date)):
        return {"time": obj.isoformat()}
    raise PdbgError(
        f"cannot use a value of type {type(obj).__name__} in a release cache key",
        "Pass query parameters as numbers, strings, booleans, dates or lists of them.",
    )


def cache_key(
    normalized_sql: str,
    params: Mapping[str, Any] | None,
    policy_digest: str,
    cost: Cost | Mapping[str, Any],
    data_version: int,
    case: str,
    dataset: str,
) -> str:
    """SHA-256 hex over a canonical JSON of everything that determines a release.

    ``policy_digest`` covers the contribution bounds in force (policy bounds plus any
    tighter bounds the query asked for; a plan digest is a fine value). The cost enters
    as exact units, so the same query at another ε is a different release.
    """
    doc = {
        "v": KEY_VERSION,
        "sql": normalized_sql,
        "params": _jsonable(dict(params or {})),
        "bounds": policy_digest,
        "cost": _jsonable(cost),
        "data_version": int(data_version),
        "case": case,
        "dataset": dataset,
    }
    canon = json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canon.encode()).hexdigest()


@dataclass(frozen=True)
class CacheEntry:
    key: str
    case: str
    dataset: str
    data_version: int
    payload: Any
    cost: dict
    created: str
    hits: int

    def __getitem__(self, name: str) -> Any:
        """``entry[k]`` reads ``entry.payload[k]`` (payloads are JSON objects in practice)."""
        return self.payload[name]

    def get(self, name: str, default: Any = None) -> Any:
        return self.payload.get(name, default) if isinstance(self.payload, dict) else default

    def to_dict(self) -> dict:
        return {
            "key": self.key,
            "case": self.case,
            "dataset": self.dataset,
            "data_version": self.data_version,
            "payload": self.payload,
            "cost": self.cost,
            "created": self.created,
            "hits": self.hits,
        }


class ReleaseCache(StateStore):
    """Stored noisy releases in ``WS/state.sqlite``."""

    SCHEMA = SCHEMA

    def get(self, key: str, *, count_hit: bool = True) -> CacheEntry | None:
        """The stored release for ``key``, or None. Counts the hit (for the history panel)."""
        if count_hit:
            with write_tx(self.conn) as c:
                c.execute(
                    "UPDATE release_cache SET hits = hits + 1, last_hit = ? WHERE key = ?", (clock.iso(), key)
                )
                row = c.execute("SELECT * FROM release_cache WHERE key = ?", (key,)).fetchone()
        else:
            row = self.conn.execute("SELECT * FROM release_cache WHERE key = ?", (key,)).fetchone()
        return _entry(row) if row else None

    def put(
        self,
        key: str,
        *,
        case: str,
        dataset: str,
        data_version: int,
        payload: Any,
        cost: Cost | Mapping[str, Any],
    ) -> tuple[CacheEntry, bool]:
        """Store a release; the first writer wins. Returns (stored entry, whether this call stored it).

        Callers must show the returned entry's payload, not their own, so that two
        concurrent kernels present one answer (see the module docstring).
        """
        payload_text = json.dumps(payload, sort_keys=True, separators=(",", ":"), allow_nan=True)
        cost_doc = cost.to_dict() if isinstance(cost, Cost) else dict(cost)
        with write_tx(self.conn) as c:
            cur = c.execute(
                "INSERT OR IGNORE INTO release_cache (key, case_id, dataset, data_version, payload, cost, created) "
                "VALUES (?, ?, ?, ?, ?, ?, ?)",
                (key, case, dataset, int(data_version), payload_text, json.dumps(cost_doc, sort_keys=True), clock.iso()),
            )
            inserted = cur.rowcount == 1
            row = c.execute("SELECT * FROM release_cache WHERE key = ?", (key,)).fetchone()
        return _entry(row), inserted

    def list_case(self, case: str, *, with_payload: bool = True) -> list[CacheEntry]:
        """Releases stored for a case, oldest first (postmortem / history panel)."""
        rows = self.conn.execute(
            "SELECT * FROM release_cache WHERE case_id = ? ORDER BY created, key", (case,)
        ).fetchall()
        entries = [_entry(r) for r in rows]
        if not with_payload:
            entries = [CacheEntry(**{**e.__dict__, "payload": None}) for e in entries]
        return entries

    def evict_dataset(self, dataset: str, *, below_version: int) -> int:
        """Delete releases of ``dataset`` computed on versions older than ``below_version``.

        They can never be served again (the key includes the version); retention may
        want them gone together with the data they were computed from.
        """
        with write_tx(self.conn) as c:
            cur = c.execute(
                "DELETE FROM release_cache WHERE dataset = ? AND data_version < ?", (dataset, int(below_version))
            )
            return cur.rowcount


def payload_digest(payload: Any) -> str:
    """sha256 of the payload's canonical JSON: exactly the text ``put`` stores."""
    text = json.dumps(payload, sort_keys=True, separators=(",", ":"), allow_nan=True)
    return hashlib.sha256(text.encode()).hexdigest()


class ReleaseTampered(AuditError):
    """A stored answer differs from the one its audit record bound (or no record binds it)."""


_LEGACY = ""   # a binding record written before digests existed
_INDEX: dict[str, tuple[int, int, dict[str, str]]] = {}   # audit path -> (inode, bytes read, release -> digest)
_INDEX_LOCK = threading.Lock()


def bound_digests(ws) -> dict[str, str]:
    """release_id -> digest bound by its charged ``query`` record ("" for legacy records).

    Reads only the bytes appended since the last call (the log is append-only; a
    replaced file, by inode or size, is read again from the start)."""
    path = str(ws.audit_path)
    with _INDEX_LOCK:
        try:
            st = os.stat(path)
        except FileNotFoundError:
            return {}
        ino, done, index = _INDEX.get(path, (st.st_ino, 0, {}))
        if ino != st.st_ino or st.st_size < done:
            ino, done, index = st.st_ino, 0, {}
        if st.st_size > done:
            with open(path, "rb") as f:
                f.seek(done)
                data = f.read(st.st_size - done)
            cut = data.rfind(b"\n") + 1
            for line in data[:cut].split(b"\n"):
                if b'"release_id"' not in line or b'"cached":false' not in line:
                    continue
                try:
                    rec = json.loads(line)
                except ValueError:
                    continue
                if rec.get("action") == "query" and rec.get("cached") is False and rec.get("release_id"):
                    index.setdefault(str(rec["release_id"]), str(rec.get("result_digest") or _LEGACY))
            done += cut
        _INDEX[path] = (ino, done, index)
        return index


def check_release(ws, entry: CacheEntry) -> str:
    """The entry's digest if it is the answer its record bound; ReleaseTampered otherwise."""
    rid = entry.get("release_id")
    digest = payload_digest(entry.payload)
    bound = bound_digests(ws).get(str(rid)) if rid else None
    if bound is None:
        raise ReleaseTampered(f"release {rid} has no audit record binding it; refusing to show it",
                              "Run `pdbg audit verify WS --deep` and report the release id to an auditor.")
    if bound and bound != digest:
        raise ReleaseTampered(f"release {rid} differs from the answer its audit record bound; refusing to show it",
                              "The release cache was altered: run `pdbg audit verify WS --deep` and report the "
                              "release id to an auditor.")
    return digest


def verify_releases(ws) -> dict:
    """Compare every cached release with the digest its record bound (``verify --deep``)."""
    bound = bound_digests(ws)
    bad, legacy, n = [], [], 0
    with ReleaseCache(ws) as cache:
        rows = cache.conn.execute("SELECT payload FROM release_cache ORDER BY created, key").fetchall()
    for (text,) in rows:
        n += 1
        try:
            payload = json.loads(text)
            rid = str(payload.get("release_id"))
        except (ValueError, AttributeError):
            bad.append({"release_id": None, "problem": "cache entry is not a JSON release"})
            continue
        b = bound.get(rid)
        if b is None:
            bad.append({"release_id": rid, "problem": "no audit record binds this release"})
        elif not b:
            legacy.append(rid)
        elif b != payload_digest(payload):
            bad.append({"release_id": rid, "problem": "differs from the answer its audit record bound"})
    return {"releases": n, "mismatches": bad, "legacy": legacy}


def _entry(row) -> CacheEntry:
    return CacheEntry(
        key=row["key"],
        case=row["case_id"],
        dataset=row["dataset"],
        data_version=row["data_version"],
        payload=json.loads(row["payload"]),
        cost=json.loads(row["cost"]),
        created=row["created"],
        hits=row["hits"],
    )


__all__ = ["CacheEntry", "KEY_VERSION", "ReleaseCache", "ReleaseTampered", "SCHEMA", "bound_digests", "cache_key",
           "check_release", "payload_digest", "verify_releases"]
