"""Release cache: stable keys, identical replays, first writer wins."""

from __future__ import annotations

import threading
from datetime import datetime, timezone

import pytest

from pdbg.dp.accounting import Cost, query_cost
from pdbg.errors import PdbgError
from pdbg.ledger.cache import ReleaseCache, cache_key

COST = query_cost("pure", 0.2, grant_delta=0.0)
BASE = dict(
    normalized_sql="SELECT service, COUNT(*) FROM requests GROUP BY service",
    params={"since": "2026-11-01T00:00:00Z", "min_status": 500},
    policy_digest="p" * 64,
    cost=COST,
    data_version=3,
    case="INC-7",
    dataset="requests",
)


def key(**overrides) -> str:
    return cache_key(**{**BASE, **overrides})


def test_key_is_deterministic_and_order_insensitive():
    assert key() == key(params={"min_status": 500, "since": "2026-11-01T00:00:00Z"})
    assert len(key()) == 64 and int(key(), 16) >= 0


@pytest.mark.parametrize(
    "change",
    [
        {"data_version": 4},
        {"case": "INC-8"},
        {"dataset": "traces"},
        {"cost": query_cost("pure", 0.3, grant_delta=0.0)},
        {"cost": query_cost("pure", 0.2, grant_delta=0.0, selection_delta=1e-9)},
        {"cost": Cost(rho=0.2, epsilon=0.2)},
        {"policy_digest": "q" * 64},
        {"normalized_sql": "SELECT region, COUNT(*) FROM requests GROUP BY region"},
        {"params": {"since": "2026-11-01T00:00:00Z", "min_status": 400}},
        {"params": {"since": "2026-11-01T00:00:00Z", "min_status": 500.0}},
        {"params": {"since": "2026-11-01T00:00:00Z", "min_status": True}},
    ],
)
def test_key_changes_with_every_part(change):
    assert key(**change) != key()


def test_key_accepts_times_and_refuses_opaque_objects():
    t = datetime(2026, 11, 1, tzinfo=timezone.utc)
    assert key(params={"t": t}) == key(params={"t": t})
    assert key(params={"t": t}) != key(params={"t": t.isoformat()})
    with pytest.raises(PdbgError):
        key(params={"x": object()})


def test_hundred_gets_return_the_identical_payload(ws):
    payload = {"release_id": "rel-1", "rows": [{"service": "api", "errors": 41.7, "ci": [30.1, 53.3]}]}
    with ReleaseCache(ws) as cache:
        assert cache.get(key()) is None
        entry, stored = cache.put(key(), case="INC-7", dataset="requests", data_version=3, payload=payload, cost=COST)
        assert stored and entry.payload == payload
        seen = [cache.get(key()).payload for _ in range(100)]
        assert all(p == payload for p in seen)
        hit = cache.get(key())
        assert hit.hits == 101 and hit["release_id"] == "rel-1" and hit.get("missing") is None
        assert hit.cost["units"] == COST.units()
    with ReleaseCache(ws) as again:  # survives a kernel restart
        assert again.get(key(), count_hit=False).payload == payload


def test_first_writer_wins(ws):
    with ReleaseCache(ws) as cache:
        first, a = cache.put(key(), case="INC-7", dataset="requests", data_version=3, payload={"v": 1}, cost=COST)
        second, b = cache.put(key(), case="INC-7", dataset="requests", data_version=3, payload={"v": 2}, cost=COST)
    assert (a, b) == (True, False)
    assert first.payload == second.payload == {"v": 1}


def test_concurrent_writers_all_see_one_answer(ws):
    results, barrier = [], threading.Barrier(6)

    def writer(i: int) -> None:
        with ReleaseCache(ws) as cache:  # one connection per thread, as kernels would have
            barrier.wait()
            entry, stored = cache.put(
                key(), case="INC-7", dataset="requests", data_version=3, payload={"v": i}, cost=COST
            )
            results.append((entry.payload, stored))

    threads = [threading.Thread(target=writer, args=(i,)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sum(stored for _, stored in results) == 1
    assert len({p["v"] for p, _ in results}) == 1


def test_list_case_and_evict(ws):
    with ReleaseCache(ws) as cache:
        for v in (1, 2, 3):
            cache.put(key(data_version=v), case="INC-7", dataset="requests", data_version=v, payload={"v": v}, cost=COST)
        cache.put(key(case="INC-9"), case="INC-9", dataset="requests", data_version=3, payload={"v": 9}, cost=COST)
        listed = cache.list_case("INC-7")
        assert [e.data_version for e in listed] == [1, 2, 3]
        assert all(e.case == "INC-7" for e in listed)
        assert [e.payload for e in cache.list_case("INC-7", with_payload=False)] == [None] * 3
        assert listed[0].to_dict()["payload"] == {"v": 1}
        assert cache.evict_dataset("requests", below_version=3) == 2
        assert [e.data_version for e in cache.list_case("INC-7")] == [3]
        assert cache.list_case("INC-9")[0].payload == {"v": 9}
