"""Redis Cluster and Sentinel beyond the shared store tests (which run on both): where keys land,
and a primary killed mid-run (no acknowledged budget reservation lost; the store recovers by itself)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterator

import pytest
from redis import Redis
from redis.crc import key_slot

from gateway.state.base import Cap, Limit, StateUnavailable
from gateway.state.redis_store import RedisStore
from gateway.state.redis_target import RedisTarget
from tests.state.topologies import RedisClusterServers, RedisSentinelServers

pytestmark = pytest.mark.anyio

NOW = 1_800_000_000.0
AMOUNT = 0.01


def tenant_caps(tenant: str) -> list[Cap]:
    scope = f"tenant:{tenant}"
    return [
        Cap(f"budget:{tenant}:d:2027-01-15", 1000.0, 600, scope),
        Cap(f"budget:{tenant}:m:2027-01", 1000.0, 600, scope),
    ]


async def test_keys_of_different_tenants_land_on_different_slots(redis_cluster: RedisClusterServers) -> None:
    prefix = "slots:"
    store = await RedisStore.connect(RedisTarget("cluster", redis_cluster.url), prefix=prefix, timeout_seconds=1.0)
    try:
        for tenant in ("acme", "globex"):
            rpm = Limit(f"rl:t:{tenant}:rpm", 10, 60.0, scope=f"tenant:{tenant}")
            key_rpm = Limit("rl:k:0123456789abcdef:rpm", 10, 60.0, scope=f"tenant:{tenant}")
            assert (await store.counters.admit([rpm, key_rpm], NOW)).allowed
            assert (await store.budgets.reserve(tenant_caps(tenant), AMOUNT, NOW)).allowed
    finally:
        await store.aclose()
    slots: dict[str, set[int]] = {"acme": set(), "globex": set()}
    for port in redis_cluster.ports:
        with Redis(port=port) as node:
            for key in node.keys(prefix + "*"):  # primaries hold them; replicas list the same keys
                tenant = "acme" if b"tenant:acme" in key else "globex"
                slots[tenant].add(int(node.execute_command("CLUSTER KEYSLOT", key)))
    # every key of a tenant (its limits, its keys' limits, budgets, holds) on one slot; the two tenants apart
    assert slots == {"acme": {key_slot(b"tenant:acme")}, "globex": {key_slot(b"tenant:globex")}}
    assert slots["acme"] != slots["globex"]


async def test_keys_of_different_scopes_are_never_updated_together(redis_cluster: RedisClusterServers) -> None:
    store = await RedisStore.connect(RedisTarget("cluster", redis_cluster.url), prefix="mixed:", timeout_seconds=1.0)
    try:
        with pytest.raises(ValueError, match="share one scope"):
            await store.budgets.reserve([*tenant_caps("acme"), *tenant_caps("globex")], AMOUNT, NOW)
    finally:
        await store.aclose()


@pytest.fixture
def private_cluster() -> Iterator[RedisClusterServers]:
    servers = RedisClusterServers().start()
    yield servers
    servers.close()


@pytest.fixture
def private_sentinel() -> Iterator[RedisSentinelServers]:
    servers = RedisSentinelServers().start()
    yield servers
    servers.close()


async def reserve_through_a_failover(target: RedisTarget, kill: Callable[[], None]) -> tuple[float, float, float, int]:
    """Reserve AMOUNT again and again; after 20 acknowledged reservations ``kill()`` the primary, and go
    on until 20 more were acknowledged. Returns (acknowledged, unknown outcome, spent, acks after the kill)."""
    store = await RedisStore.connect(target, prefix="failover:", timeout_seconds=0.25, wait_replicas=1)
    caps = tenant_caps("acme")
    acked = unknown = 0.0
    after = 0
    killed_at = 0.0
    try:
        deadline = time.monotonic() + 30
        while after < 20:
            assert time.monotonic() < deadline, f"no recovery: {after} acknowledged after the kill"
            try:
                reservation = await store.budgets.reserve(caps, AMOUNT, NOW)
            except StateUnavailable:
                unknown += AMOUNT
                await asyncio.sleep(0.05)
                continue
            assert reservation.allowed
            acked += AMOUNT
            if killed_at:
                after += 1
            elif acked >= 20 * AMOUNT - 1e-9:
                kill()
                killed_at = time.monotonic()
        recovered = time.monotonic() - killed_at
        spent = (await store.budgets.spent(caps))[0]
    finally:
        await store.aclose()
    print(f"{target.mode}: acknowledged ${acked:.2f}, unknown ${unknown:.2f}, spent ${spent:.2f}, {recovered:.1f} s")
    return acked, unknown, spent, after


async def test_a_killed_cluster_primary_loses_no_acknowledged_reservation(
    private_cluster: RedisClusterServers,
) -> None:
    primary = private_cluster.primary_of("tenant:acme")
    target = RedisTarget("cluster", private_cluster.url)
    acked, unknown, spent, after = await reserve_through_a_failover(target, lambda: private_cluster.kill(primary))
    assert after == 20  # the promoted replica took over, found by the client itself
    assert private_cluster.primary_of("tenant:acme") != primary
    # nothing acknowledged was lost; a call whose answer was lost may or may not have landed
    assert acked - 1e-9 <= spent <= acked + unknown + 1e-9


async def test_a_sentinel_failover_loses_no_acknowledged_reservation(private_sentinel: RedisSentinelServers) -> None:
    primary = private_sentinel.current_primary()
    target = RedisTarget("sentinel", private_sentinel.url, master=private_sentinel.master)
    acked, unknown, spent, after = await reserve_through_a_failover(target, lambda: private_sentinel.kill(primary))
    assert after == 20
    assert private_sentinel.current_primary() == private_sentinel.replica
    assert acked - 1e-9 <= spent <= acked + unknown + 1e-9
