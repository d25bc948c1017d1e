"""The Redis backend: several replicas share limits, spend, leases, breakers and the cache.

Every operation is one Lua script (``redis_scripts.py``) or one command. Each socket step
(connect, send and read) times out after ``timeout_seconds``, and the whole call, including
the wait for a pooled connection, after twice that. Any failure to get an answer (refused,
reset, timed out, script error) surfaces as :class:`StateUnavailable`; no redis exception
leaves this module. After an outage the pool reconnects on the next call, and a restarted
server that lost the scripts gets them again (redis-py's ``Script`` falls back from EVALSHA
to SCRIPT LOAD on NOSCRIPT).

Keys, all under the store's prefix, each with a TTL:

=============================  =============================================  =======================
``rate:{limit.key}:{window}``  counter                                        window end + slack
``budget:{cap.key}``           hash: spent, reserved, r:{id} -> amount        ``cap.ttl_seconds``
``hold:{cap.key}``             ZSET: reservation id -> expires at             ``cap.ttl_seconds``
``lease:{key}``                ZSET: lease id -> expires at                   longest lease + slack
``breaker:{deployment}``       hash: status, opened_at, window_start,         window + cool-down +
                               failures, calls, probe_until                   probe, twice
``cache:{key}``                bytes                                          the entry's TTL
=============================  =============================================  =======================
"""

from __future__ import annotations

import asyncio
import math
import uuid
from collections.abc import Awaitable, Sequence
from typing import Any, TypeVar, cast

from redis.asyncio import BlockingConnectionPool, Redis
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError
from redis.retry import Retry

from gateway.state import rules
from gateway.state.base import (
    Admission,
    BreakerPolicy,
    Breakers,
    BreakerStatus,
    BreakerView,
    Budgets,
    Cache,
    Cap,
    Counters,
    Leases,
    Limit,
    Reservation,
    StateUnavailable,
)
from gateway.state.redis_scripts import BREAKER_FIELDS, SCRIPTS

T = TypeVar("T")
_FAILURES = (RedisError, OSError, asyncio.TimeoutError)


def _ms(seconds: float) -> int:
    return max(1, math.ceil(seconds * 1000))


class _Redis:
    """The client, its scripts, the key prefix and the deadline every call runs under."""

    def __init__(self, client: Redis, prefix: str, deadline_seconds: float) -> None:
        self.client = client
        self.prefix = prefix
        self.deadline = deadline_seconds
        self.scripts = {name: client.register_script(source) for name, source in SCRIPTS.items()}

    def key(self, kind: str, name: str) -> str:
        return f"{self.prefix}{kind}:{name}"

    async def call(self, pending: Awaitable[T]) -> T:
        try:
            async with asyncio.timeout(self.deadline):
                return await pending
        except _FAILURES as exc:
            detail = str(exc) or f"no answer within {self.deadline:g} s"
            raise StateUnavailable(f"redis: {type(exc).__name__}: {detail}") from exc

    async def run(self, script: str, keys: Sequence[str], args: Sequence[str | int | float]) -> Any:
        pending = cast(Awaitable[Any], self.scripts[script](keys=list(keys), args=list(args)))
        return await self.call(pending)


class RedisCounters:
    def __init__(self, redis: _Redis) -> None:
        self._redis = redis

    def _key(self, limit: Limit, window: int) -> str:
        return self._redis.key("rate", f"{limit.key}:{window}")

    async def admit(self, limits: Sequence[Limit], now: float) -> Admission:
        windows = tuple(rules.window_of(limit, now) for limit in limits)
        keys = [self._key(limit, window) for limit, window in zip(limits, windows, strict=True)]
        args: list[str | int | float] = []
        for limit, window in zip(limits, windows, strict=True):
            args += [limit.limit, limit.amount, _ms(rules.counter_ttl(limit, window, now))]
        refused, current = await self._redis.run("admit", keys, args)
        if not refused:
            return Admission(True, windows=windows)
        limit, window = limits[refused - 1], windows[refused - 1]
        return Admission(False, limit, int(current), rules.window_end(limit, window) - now, windows)

    async def adjust(self, limits: Sequence[Limit], windows: Sequence[int], deltas: Sequence[int]) -> None:
        keys = [self._key(limit, window) for limit, window in zip(limits, windows, strict=True)]
        await self._redis.run("adjust", keys, list(deltas))


class RedisBudgets:
    def __init__(self, redis: _Redis, reservation_seconds: float) -> None:
        self._redis = redis
        self._reservation_seconds = reservation_seconds

    def _keys(self, caps: Sequence[Cap]) -> list[str]:
        return [k for cap in caps for k in (self._redis.key("budget", cap.key), self._redis.key("hold", cap.key))]

    async def reserve(self, caps: Sequence[Cap], amount_usd: float, now: float) -> Reservation:
        reservation_id = uuid.uuid4().hex
        expires = now + self._reservation_seconds
        args: list[str | int | float] = [now, reservation_id, amount_usd, expires, rules.BUDGET_EPSILON]
        for cap in caps:
            args += [cap.limit_usd, _ms(cap.ttl_seconds)]
        refused, spent = await self._redis.run("reserve", self._keys(caps), args)
        if not refused:
            return Reservation(True, reservation_id)
        return Reservation(False, refused=caps[refused - 1], spent_usd=float(spent))

    async def settle(self, caps: Sequence[Cap], reservation_id: str, actual_usd: float) -> None:
        args: list[str | int | float] = [reservation_id, actual_usd, *(_ms(cap.ttl_seconds) for cap in caps)]
        await self._redis.run("settle", self._keys(caps), args)

    async def spent(self, caps: Sequence[Cap]) -> list[float]:
        keys = [self._redis.key("budget", cap.key) for cap in caps]
        return [float(v) for v in await self._redis.run("spent", keys, [])]


class RedisLeases:
    def __init__(self, redis: _Redis) -> None:
        self._redis = redis

    async def acquire(self, key: str, limit: int, lease_seconds: float, now: float) -> str | None:
        lease_id = uuid.uuid4().hex
        args: list[str | int | float] = [now, limit, now + lease_seconds, lease_id, _ms(rules.lease_ttl(lease_seconds))]
        acquired = await self._redis.run("acquire", [self._redis.key("lease", key)], args)
        return lease_id if acquired else None

    async def release(self, key: str, lease_id: str) -> None:
        await self._redis.call(self._redis.client.zrem(self._redis.key("lease", key), lease_id))

    async def held(self, key: str, now: float) -> int:
        return await self._redis.call(self._redis.client.zcount(self._redis.key("lease", key), f"({now!r}", "+inf"))


class RedisBreakers:
    def __init__(self, redis: _Redis, probe_seconds: float) -> None:
        self._redis = redis
        self._probe_seconds = probe_seconds

    def _key(self, deployment: str) -> str:
        return self._redis.key("breaker", deployment)

    def _ttl_ms(self, policy: BreakerPolicy) -> int:
        return _ms(rules.breaker_ttl(policy, self._probe_seconds))

    async def _states(self, deployments: Sequence[str]) -> list[rules.BreakerState]:
        flat = await self._redis.run("breaker_read", [self._key(d) for d in deployments], [])
        n = len(BREAKER_FIELDS)
        return [rules.BreakerState.from_fields(flat[i : i + n]) for i in range(0, len(flat), n)]

    async def statuses(self, deployments: Sequence[str], policy: BreakerPolicy, now: float) -> dict[str, BreakerStatus]:
        states = await self._states(deployments)
        return {d: rules.breaker_status(s, policy, now) for d, s in zip(deployments, states, strict=True)}

    async def allow_probe(self, deployment: str, policy: BreakerPolicy, now: float) -> bool:
        args = [now, policy.cooldown_seconds, self._probe_seconds, self._ttl_ms(policy)]
        return bool(await self._redis.run("breaker_probe", [self._key(deployment)], args))

    async def record(self, deployment: str, ok: bool, policy: BreakerPolicy, now: float) -> BreakerStatus:
        rate = -1.0 if policy.failure_rate is None else policy.failure_rate
        args: list[str | int | float] = [
            int(ok),
            now,
            policy.failures,
            policy.window_seconds,
            rate,
            policy.min_calls,
            policy.cooldown_seconds,
            self._ttl_ms(policy),
        ]
        status = await self._redis.run("breaker_record", [self._key(deployment)], args)
        return "open" if status == b"open" else "closed"

    async def view(self, deployments: Sequence[str], policy: BreakerPolicy, now: float) -> list[BreakerView]:
        states = await self._states(deployments)
        return [rules.breaker_view(d, s, policy, now) for d, s in zip(deployments, states, strict=True)]


class RedisCache:
    def __init__(self, redis: _Redis) -> None:
        self._redis = redis

    async def get(self, key: str) -> bytes | None:
        value = await self._redis.call(self._redis.client.get(self._redis.key("cache", key)))
        return cast(bytes | None, value)

    async def put(self, key: str, value: bytes, ttl_seconds: float) -> None:
        await self._redis.call(self._redis.client.set(self._redis.key("cache", key), value, px=_ms(ttl_seconds)))


class RedisStore:
    """All features in one Redis (or compatible) server, shared by every replica that points at it."""

    name: str = "redis"

    def __init__(
        self,
        client: Redis,
        *,
        prefix: str,
        timeout_seconds: float,
        reservation_seconds: float = rules.RESERVATION_SECONDS,
        probe_seconds: float = rules.PROBE_SECONDS,
    ) -> None:
        # the whole call: a connect (or a wait for a pooled connection) and a command
        self._redis = _Redis(client, prefix, 2 * timeout_seconds)
        self.counters: Counters = RedisCounters(self._redis)
        self.budgets: Budgets = RedisBudgets(self._redis, reservation_seconds)
        self.leases: Leases = RedisLeases(self._redis)
        self.breakers: Breakers = RedisBreakers(self._redis, probe_seconds)
        self.cache: Cache = RedisCache(self._redis)

    @classmethod
    async def connect(
        cls,
        url: str,
        *,
        prefix: str = "switchyard:",
        timeout_seconds: float = 0.05,
        max_connections: int = 32,
        reservation_seconds: float = rules.RESERVATION_SECONDS,
        probe_seconds: float = rules.PROBE_SECONDS,
    ) -> RedisStore:
        """A store on ``url`` (redis://, rediss://, unix://). Redis need not be up yet: calls raise
        :class:`StateUnavailable` until it is, and work from the first call after it comes up."""
        pool = BlockingConnectionPool.from_url(
            url,
            max_connections=max_connections,
            timeout=None,  # waiting for a free pooled connection: bounded by the deadline of each call
            socket_timeout=timeout_seconds,
            socket_connect_timeout=timeout_seconds,
            # one immediate retry, on a connection error only: a pooled connection the server
            # dropped (restart, idle timeout) is replaced at once; a timeout is never retried
            retry=Retry(NoBackoff(), 1, supported_errors=(RedisConnectionError,)),
            health_check_interval=5,
        )
        store = cls(
            Redis.from_pool(pool),
            prefix=prefix,
            timeout_seconds=timeout_seconds,
            reservation_seconds=reservation_seconds,
            probe_seconds=probe_seconds,
        )
        await store.ping()  # warm one connection; a Redis that is down is not an error here
        return store

    async def ping(self) -> bool:
        """True when Redis answered within the deadline."""
        try:
            return bool(await self._redis.call(self._redis.client.ping()))
        except StateUnavailable:
            return False

    async def aclose(self) -> None:
        await self._redis.client.aclose()
