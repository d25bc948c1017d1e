"""The Redis backend: several replicas share limits, spend, leases, breakers and the cache.

Every operation is one Lua script (``redis_scripts.py``) or one command. Each socket step
(connect, send and read) times out after ``timeout_seconds``, and the whole call, including
the wait for a pooled connection, after twice that. Any failure to get an answer (refused,
reset, timed out, script error) surfaces as :class:`StateUnavailable`; no redis exception
leaves this module. After an outage the pool reconnects on the next call, and a restarted
server that lost the scripts gets them again (redis-py's ``Script`` falls back from EVALSHA
to SCRIPT LOAD on NOSCRIPT).

Keys, all under the store's prefix, each with a TTL. The keys one script updates together carry
one hash tag, ``{scope}`` (a tenant's limits and caps: ``tenant:<id>``; otherwise the key itself),
so on a Redis Cluster every script touches one slot; a call whose keys span scopes is refused in
every mode, so a standalone test catches what a cluster would reject:

==========================================  ======================================  =====================
``{scope}:rate:{limit.key}:{window}``       counter                                 window end + slack
``{scope}:budget:{cap.key}``                hash: spent, reserved, r:{id} -> amount  ``cap.ttl_seconds``
``{scope}:hold:{cap.key}``                  ZSET: reservation id -> expires at      ``cap.ttl_seconds``
``{scope}:settled:{id}``                    hash: admitted, counters, budget (one   its windows' counters;
                                            request's parts applied, so a retry     ``SETTLED_SECONDS``
                                            counts once)                            with a budget
``lease:{key}``                             ZSET: lease id -> expires at            longest lease + slack
``breaker:{deployment}``                    hash: status, opened_at, window_start,  window + cool-down +
                                            failures, calls, probe_until            probe, twice
``cache:{key}``                             bytes                                   the entry's TTL
==========================================  ======================================  =====================

(``{scope}`` is literal braces around the scope.) Reading several breakers at once on a cluster
is one read per slot. With ``wait_replicas`` set, a budget reservation or settlement returns only
after that many replicas have it (``WAIT`` on the connection that wrote it), so a primary that dies
right after cannot take an acknowledged reservation with it. (On a cluster, a write that was
redirected (MOVED/ASK) in the middle of a slot migration is re-sent alone, and its WAIT then
vouches for nothing; that window is a resharding, not a failover.)
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
import uuid
from collections.abc import Awaitable, Sequence
from typing import Any, TypeVar, cast

from redis.asyncio import Redis
from redis.crc import key_slot
from redis.exceptions import NoScriptError, RedisClusterException, RedisError

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
from gateway.state.redis_clients import Client, is_cluster, open_client
from gateway.state.redis_scripts import BREAKER_FIELDS, SCRIPTS
from gateway.state.redis_target import RedisTarget, checked

log = logging.getLogger("gateway.state")
T = TypeVar("T")
WARN_SECONDS = 30.0
_FAILURES = (RedisError, RedisClusterException, OSError, asyncio.TimeoutError)


def _ms(seconds: float) -> int:
    return max(1, math.ceil(seconds * 1000))


class _Redis:
    """The client, its scripts, the key prefix and the deadline every call runs under."""

    def __init__(self, client: Client, prefix: str, deadline_seconds: float, wait_replicas: int = 0) -> None:
        if "{" in prefix or "}" in prefix:
            raise ValueError(f"the key prefix {prefix!r} may not hold braces: they would become the hash tag")
        self.client = client
        self.prefix = prefix
        self.deadline = deadline_seconds
        self.cluster = is_cluster(client)
        self.wait_replicas = wait_replicas
        self.scripts = {name: client.register_script(source) for name, source in SCRIPTS.items()}
        self._warned = -WARN_SECONDS

    def key(self, kind: str, name: str) -> str:
        return f"{self.prefix}{kind}:{name}"

    def scoped(self, kind: str, scope: str, name: str) -> str:
        return f"{self.prefix}{{{scope}}}:{kind}:{name}"

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

    async def run_durable(self, script: str, keys: Sequence[str], args: Sequence[str | int | float]) -> Any:
        """``run``, then wait (on the same connection) until ``wait_replicas`` replicas have the write."""
        if not self.wait_replicas:
            return await self.run(script, keys, args)
        return await self.call(self._written_and_waited(script, keys, args))

    async def _written_and_waited(self, script: str, keys: Sequence[str], args: Sequence[str | int | float]) -> Any:
        result, replicas = await self._pipeline(script, keys, args)
        if isinstance(result, NoScriptError):  # a new or restarted server: load the script, once
            await self.client.script_load(SCRIPTS[script])
            result, replicas = await self._pipeline(script, keys, args)
        for value in (result, replicas):
            if isinstance(value, Exception):
                raise value
        if int(replicas) < self.wait_replicas and time.monotonic() - self._warned >= WARN_SECONDS:
            self._warned = time.monotonic()
            log.warning("redis: a budget write reached %s of %s replicas in time", replicas, self.wait_replicas)
        return result

    async def _pipeline(self, script: str, keys: Sequence[str], args: Sequence[str | int | float]) -> list[Any]:
        pipe = self.client.pipeline(transaction=False)
        pipe.execute_command("EVALSHA", self.scripts[script].sha, len(keys), *keys, *args)
        where = {"target_nodes": self.client.get_node_from_key(keys[0])} if self.cluster else {}  # type: ignore[union-attr]
        # at most half the socket timeout (a quarter of the deadline), so the reply is read in time
        pipe.execute_command("WAIT", self.wait_replicas, _ms(self.deadline / 4), **where)
        return await pipe.execute(raise_on_error=False)

    async def run_per_slot(self, script: str, keys: Sequence[str], width: int) -> list[Any]:
        """A read-only script over keys that may live on several slots: one call per slot on a cluster."""
        if not self.cluster or len(keys) < 2:
            return list(await self.run(script, keys, []))
        slots: dict[int, list[int]] = {}
        for index, key in enumerate(keys):
            slots.setdefault(key_slot(key.encode()), []).append(index)
        groups = list(slots.values())
        answers = await asyncio.gather(*(self.run(script, [keys[i] for i in group], []) for group in groups))
        out: list[Any] = [None] * (len(keys) * width)
        for group, answer in zip(groups, answers, strict=True):
            for position, index in enumerate(group):
                out[index * width : (index + 1) * width] = answer[position * width : (position + 1) * width]
        return out


def _scope_of(items: Sequence[Limit] | Sequence[Cap]) -> str:
    """The one scope of keys updated together (a key without one is its own)."""
    scopes = {item.scope or item.key for item in items}
    if len(scopes) > 1:
        raise ValueError(f"keys updated together must share one scope (one Redis Cluster slot), not {sorted(scopes)}")
    return scopes.pop() if scopes else ""


class RedisCounters:
    def __init__(self, redis: _Redis) -> None:
        self._redis = redis

    def _keys(self, limits: Sequence[Limit], windows: Sequence[int], settlement: str) -> list[str]:
        scope = _scope_of(limits)
        keys = [self._redis.scoped("rate", scope, f"{x.key}:{w}") for x, w in zip(limits, windows, strict=True)]
        return [*keys, self._redis.scoped("settled", scope, settlement or "-")]

    async def admit(self, limits: Sequence[Limit], now: float, settlement: str = "") -> Admission:
        windows = tuple(rules.window_of(limit, now) for limit in limits)
        keys = self._keys(limits, windows, settlement)
        args: list[str | int | float] = []
        for limit, window in zip(limits, windows, strict=True):
            args += [limit.limit, limit.amount, _ms(rules.counter_ttl(limit, window, now))]
        args.append(_marker_ms(settlement, limits, windows, now))
        refused, current = await self._redis.run("admit", keys, args)
        if not refused:
            return Admission(True, windows=windows)
        limit, window = limits[refused - 1], windows[refused - 1]
        return Admission(False, limit, int(current), rules.window_end(limit, window) - now, windows)

    async def adjust(
        self,
        limits: Sequence[Limit],
        windows: Sequence[int],
        deltas: Sequence[int],
        settlement: str = "",
        unadmitted: Sequence[int] | None = None,
        now: float | None = None,
    ) -> None:
        now = time.time() if now is None else now
        args: list[str | int | float] = [_marker_ms(settlement, limits, windows, now), "0" if unadmitted else "1"]
        for limit, window, delta, other in zip(limits, windows, deltas, unadmitted or deltas, strict=True):
            live = rules.live_counter_ttl(limit, window, now) if unadmitted else 0.0
            args += [delta, other, _ms(live) if live > 0 else 0]
        await self._redis.run("adjust", self._keys(limits, windows, settlement), args)


def _marker_ms(settlement: str, limits: Sequence[Limit], windows: Sequence[int], now: float) -> int:
    """How long a settlement's admission is remembered: while its windows' counters live (0: no id)."""
    if not settlement:
        return 0
    return max(_ms(rules.counter_ttl(limit, window, now)) for limit, window in zip(limits, windows, strict=True))


class RedisBudgets:
    def __init__(self, redis: _Redis, reservation_seconds: float, settled_seconds: float) -> None:
        self._redis = redis
        self._reservation_seconds = reservation_seconds
        self._settled_ms = _ms(settled_seconds)

    def _keys(self, caps: Sequence[Cap]) -> list[str]:
        scope = _scope_of(caps)
        return [self._redis.scoped(kind, scope, cap.key) for cap in caps for kind in ("budget", "hold")]

    def _marker(self, caps: Sequence[Cap], reservation_id: str) -> str:
        return self._redis.scoped("settled", _scope_of(caps), reservation_id or "-")

    async def reserve(
        self, caps: Sequence[Cap], amount_usd: float, now: float, reservation_id: str = ""
    ) -> Reservation:
        reservation_id = reservation_id or uuid.uuid4().hex
        expires = now + self._reservation_seconds
        args: list[str | int | float] = [now, reservation_id, amount_usd, expires, rules.BUDGET_EPSILON]
        for cap in caps:
            args += [cap.limit_usd, _ms(cap.ttl_seconds)]
        keys = [*self._keys(caps), self._marker(caps, reservation_id)]
        refused, spent = await self._redis.run_durable("reserve", keys, args)
        if not refused:
            return Reservation(True, reservation_id)
        return Reservation(False, refused=caps[refused - 1], spent_usd=float(spent))

    async def settle(self, caps: Sequence[Cap], reservation_id: str, actual_usd: float) -> None:
        args: list[str | int | float] = [reservation_id, actual_usd, *(_ms(cap.ttl_seconds) for cap in caps)]
        args.append(self._settled_ms if reservation_id else 0)
        await self._redis.run_durable("settle", [*self._keys(caps), self._marker(caps, reservation_id)], args)

    async def spent(self, caps: Sequence[Cap]) -> list[float]:
        keys = self._keys(caps)[::2]
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
        n = len(BREAKER_FIELDS)
        flat = await self._redis.run_per_slot("breaker_read", [self._key(d) for d in deployments], n)
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
    """All features in one Redis deployment (a server, a cluster, or a Sentinel-managed primary),
    shared by every replica that points at it."""

    name: str = "redis"

    def __init__(
        self,
        client: Client,
        *,
        prefix: str,
        timeout_seconds: float,
        reservation_seconds: float = rules.RESERVATION_SECONDS,
        probe_seconds: float = rules.PROBE_SECONDS,
        wait_replicas: int = 0,
        helpers: Sequence[Redis] = (),
        settled_seconds: float = rules.SETTLED_SECONDS,
    ) -> None:
        self._helpers = helpers  # closed with the client (a Sentinel client's connections to the sentinels)
        # the whole call: a connect (or a wait for a pooled connection) and a command
        self._redis = _Redis(client, prefix, 2 * timeout_seconds, wait_replicas)
        self.counters: Counters = RedisCounters(self._redis)
        self.budgets: Budgets = RedisBudgets(self._redis, reservation_seconds, settled_seconds)
        self.leases: Leases = RedisLeases(self._redis)
        self.breakers: Breakers = RedisBreakers(self._redis, probe_seconds)
        self.cache: Cache = RedisCache(self._redis)

    @classmethod
    async def connect(
        cls,
        target: str | RedisTarget,
        *,
        prefix: str = "switchyard:",
        timeout_seconds: float | None = None,
        max_connections: int = 32,
        reservation_seconds: float = rules.RESERVATION_SECONDS,
        probe_seconds: float = rules.PROBE_SECONDS,
        wait_replicas: int | None = None,
    ) -> RedisStore:
        """A store on ``target`` (a standalone URL: redis://, rediss://, unix://; or a RedisTarget of any
        mode). Redis need not be up yet: calls raise :class:`StateUnavailable` until it is, and work from
        the first call after it comes up. ``timeout_seconds`` and ``wait_replicas`` override the target's."""
        if isinstance(target, str):
            target = RedisTarget("standalone", target)
        if timeout_seconds is not None:
            target = RedisTarget(target.mode, target.url, target.master, target.wait_replicas, timeout_seconds)
        if wait_replicas is not None:
            target = RedisTarget(target.mode, target.url, target.master, wait_replicas, target.timeout_seconds)
        target = checked(target)
        client, helpers = open_client(target, max_connections)
        store = cls(
            client,
            helpers=helpers,
            prefix=prefix,
            timeout_seconds=target.timeout_seconds,
            reservation_seconds=reservation_seconds,
            probe_seconds=probe_seconds,
            wait_replicas=target.wait_replicas,
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
        for helper in self._helpers:
            await helper.aclose()
