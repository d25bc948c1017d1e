"""One redis-py client per mode (``redis_target.py`` says which), all with the same timeouts and retry rule.

- standalone: a blocking pool on one server.
- cluster: ``RedisCluster`` on the seed nodes; it follows MOVED/ASK and, when a primary stops answering,
  reloads the slot map so the promoted replica takes over.
- sentinel: a client on the primary the sentinels name; after a failover its pool asks them again.

One immediate retry, on a connection error only: a pooled connection the server dropped is replaced at
once (a cluster client also re-reads the slot map first). A timeout is never retried on one server.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from redis.asyncio import BlockingConnectionPool, Redis
from redis.asyncio.cluster import ClusterNode, RedisCluster
from redis.asyncio.retry import Retry as AsyncRetry
from redis.asyncio.sentinel import Sentinel
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError

from gateway.state.redis_target import RedisMode, RedisTarget

Client = Redis | RedisCluster
Opened = tuple[Client, list[Redis]]  # the client, and the ones it uses that close with it (the sentinels)


def _retry() -> AsyncRetry:  # an asyncio client takes the asyncio Retry (redis-py 8.2 warns on the other)
    return AsyncRetry(NoBackoff(), 1, supported_errors=(RedisConnectionError,))


def _cluster_retry() -> AsyncRetry:
    return AsyncRetry(NoBackoff(), 1)


def _standalone(target: RedisTarget, max_connections: int) -> Opened:
    pool = BlockingConnectionPool.from_url(
        target.url,
        max_connections=max_connections,
        timeout=None,  # waiting for a free pooled connection: bounded by the deadline of each call
        socket_timeout=target.timeout_seconds,
        socket_connect_timeout=target.timeout_seconds,
        retry=_retry(),
        health_check_interval=5,
    )
    return Redis.from_pool(pool), []


def _cluster(target: RedisTarget, max_connections: int) -> Opened:
    username, password = target.credentials()
    client = RedisCluster(
        startup_nodes=[ClusterNode(a.host, a.port) for a in target.addresses(6379)],
        username=username,
        password=password,
        ssl=target.tls,
        max_connections=max_connections,  # per node
        socket_timeout=target.timeout_seconds,
        socket_connect_timeout=target.timeout_seconds,
        retry=_cluster_retry(),  # the cluster client retries after re-reading the slot map (redis-py's own error list)
        require_full_coverage=False,  # while a primary is being replaced, the other slots keep working
    )
    return client, []


def _sentinel(target: RedisTarget, max_connections: int) -> Opened:
    username, password = target.credentials()
    timeouts = {"socket_timeout": target.timeout_seconds, "socket_connect_timeout": target.timeout_seconds}
    sentinel = Sentinel(  # type: ignore[no-untyped-call, unused-ignore]
        [(a.host, a.port) for a in target.addresses(26379)],
        sentinel_kwargs=timeouts,  # the sentinels themselves: no credentials, no TLS
        socket_timeout=target.timeout_seconds,
        socket_connect_timeout=target.timeout_seconds,
    )
    client: Redis = sentinel.master_for(
        target.master,
        username=username,
        password=password,
        db=target.db(),
        ssl=target.tls,
        max_connections=max_connections,
        retry=_retry(),
        health_check_interval=5,
    )
    return client, list(sentinel.sentinels)


CLIENTS: dict[RedisMode, Callable[[RedisTarget, int], Opened]] = {
    "standalone": _standalone,
    "cluster": _cluster,
    "sentinel": _sentinel,
}


def open_client(target: RedisTarget, max_connections: int) -> Opened:
    return CLIENTS[target.mode](target, max_connections)


def is_cluster(client: Any) -> bool:
    return isinstance(client, RedisCluster)
