"""What only the memory backend needs: it stays bounded without anyone reading old keys again."""

from __future__ import annotations

import pytest

from gateway.state.base import BreakerPolicy, Cap, Limit
from gateway.state.expiring import ExpiringMap
from gateway.state.memory import MemoryStore
from tests.factories import FakeClock

pytestmark = pytest.mark.anyio


async def test_old_entries_are_swept_even_when_never_read_again() -> None:
    clock = FakeClock()
    store = MemoryStore(clock=clock)

    async def touch_everything(i: int) -> None:
        now = 1_800_000_000.0 + i
        await store.counters.admit([Limit(f"rl:tenant:{i}:rpm", 10, 60.0)], now)
        await store.budgets.reserve([Cap(f"budget:{i}:daily", 5.0, 120)], 1.0, now)
        await store.leases.acquire(f"lease:{i}", 1, 30, now)
        await store.breakers.record(f"dep-{i}", False, BreakerPolicy(), now)
        await store.cache.put(f"t{i}:k", b"v", 60)

    for i in range(500):  # a stream of tenants, keys and deployments that come once and never again
        await touch_everything(i)
    assert store.entries() == 2500
    clock.now += 10_000  # longer than any of those lifetimes
    await touch_everything(10_000)  # a map sweeps itself when written to (one never written cannot grow)
    assert store.entries() == 5


async def test_the_cache_is_bounded_by_entries_least_recently_used_first() -> None:
    store = MemoryStore(cache_entries=3)
    for key in ("a", "b", "c"):
        await store.cache.put(key, key.encode(), 60)
    assert await store.cache.get("a") == b"a"  # now "b" is the least recently used
    await store.cache.put("d", b"d", 60)
    assert [await store.cache.get(k) for k in ("a", "b", "c", "d")] == [b"a", None, b"c", b"d"]


def test_an_expired_entry_cannot_be_revived_by_replace() -> None:
    clock = FakeClock()
    entries: ExpiringMap[int] = ExpiringMap(clock)
    entries.put("k", 1, 10)
    assert entries.replace("k", 2)
    clock.now = 10
    assert not entries.replace("k", 3)
    assert entries.get("k") is None


def test_extend_never_shortens_a_lifetime() -> None:
    clock = FakeClock()
    entries: ExpiringMap[str] = ExpiringMap(clock)
    entries.put("k", "long", 100)
    entries.extend("k", "short", 10)
    clock.now = 50
    assert entries.get("k") == "short"
