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
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from pdbg import clock
from pdbg.dp.accounting import Cost
from pdbg.errors import PdbgError
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


__all__ = ["CacheEntry", "KEY_VERSION", "ReleaseCache", "SCHEMA", "cache_key"]
