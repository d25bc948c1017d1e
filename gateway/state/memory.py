"""The in-process backend: one replica, one event loop.

Every update runs without an ``await`` inside it, so it is atomic with respect to other tasks on
the loop. The ``now`` arguments drive the rules (windows, reservations, leases, breakers); entry
lifetimes (the analogue of Redis TTLs) follow ``clock``, the process' monotonic clock by default.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

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
)
from gateway.state.expiring import ExpiringMap

Clock = Callable[[], float]


class Markers:
    """What was applied of each settlement (``admitted``, ``counters``, ``budget``), so a repeat counts once."""

    def __init__(self, marks: ExpiringMap[set[str]]) -> None:
        self._marks = marks

    def has(self, settlement: str, part: str) -> bool:
        return bool(settlement) and part in (self._marks.get(settlement) or ())

    def mark(self, settlement: str, part: str, ttl_seconds: float) -> None:
        if settlement:
            self._marks.extend(settlement, {*(self._marks.get(settlement) or ()), part}, ttl_seconds)


class MemoryCounters:
    def __init__(self, counts: ExpiringMap[int], markers: Markers) -> None:
        self._counts = counts  # "key:window" -> units
        self._markers = markers

    async def admit(self, limits: Sequence[Limit], now: float, settlement: str = "") -> Admission:
        windows = tuple(rules.window_of(limit, now) for limit in limits)
        if self._markers.has(settlement, "counters"):
            return Admission(True, windows=windows)
        keys = [f"{limit.key}:{window}" for limit, window in zip(limits, windows, strict=True)]
        counts = [self._counts.get(key) or 0 for key in keys]
        for limit, window, current in zip(limits, windows, counts, strict=True):
            if current + limit.amount > limit.limit:
                retry_after = rules.window_end(limit, window) - now
                return Admission(False, limit, current, retry_after, windows)
        for limit, window, key, current in zip(limits, windows, keys, counts, strict=True):
            self._counts.put(key, current + limit.amount, rules.counter_ttl(limit, window, now))
        self._markers.mark(settlement, "admitted", _marker_ttl(limits, windows, now))
        return Admission(True, windows=windows)

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
        if self._markers.has(settlement, "counters"):
            return
        admitted = unadmitted is None or self._markers.has(settlement, "admitted")
        chosen = deltas if admitted or unadmitted is None else unadmitted
        for limit, window, delta in zip(limits, windows, chosen, strict=True):
            key = f"{limit.key}:{window}"
            current = self._counts.get(key)
            live = rules.live_counter_ttl(limit, window, now)
            if current is not None and delta:
                self._counts.replace(key, max(current + delta, 0))
            elif current is None and not admitted and delta > 0 and live > 0:
                self._counts.put(key, delta, live)
        self._markers.mark(settlement, "counters", _marker_ttl(limits, windows, now))


def _marker_ttl(limits: Sequence[Limit], windows: Sequence[int], now: float) -> float:
    ttls = [rules.counter_ttl(limit, window, now) for limit, window in zip(limits, windows, strict=True)]
    return max(ttls, default=0.0)


@dataclass(slots=True)
class _Budget:
    spent: float = 0.0
    reserved: float = 0.0
    holds: dict[str, tuple[float, float]] = field(default_factory=dict)  # reservation id -> (amount, expires at)

    def drop_expired(self, now: float) -> None:
        for rid, (amount, expires) in list(self.holds.items()):
            if expires <= now:
                self.reserved -= amount
                del self.holds[rid]
        self._tidy()

    def release(self, reservation_id: str) -> None:
        amount, _ = self.holds.pop(reservation_id, (0.0, 0.0))
        self.reserved -= amount
        self._tidy()

    def _tidy(self) -> None:
        if not self.holds or self.reserved < 0:
            self.reserved = 0.0  # no float dust left behind once nothing is reserved


class MemoryBudgets:
    def __init__(
        self, caps: ExpiringMap[_Budget], markers: Markers, reservation_seconds: float, settled_seconds: float
    ) -> None:
        self._caps = caps
        self._markers = markers
        self._reservation_seconds = reservation_seconds
        self._settled_seconds = settled_seconds

    async def reserve(
        self, caps: Sequence[Cap], amount_usd: float, now: float, reservation_id: str = ""
    ) -> Reservation:
        reservation_id = reservation_id or uuid.uuid4().hex
        if self._markers.has(reservation_id, "budget"):
            return Reservation(True, reservation_id)
        budgets = [self._caps.get(cap.key) or _Budget() for cap in caps]
        for cap, budget in zip(caps, budgets, strict=True):
            budget.drop_expired(now)
            if budget.spent + budget.reserved + amount_usd > cap.limit_usd + rules.BUDGET_EPSILON:
                return Reservation(False, refused=cap, spent_usd=budget.spent + budget.reserved)
        for cap, budget in zip(caps, budgets, strict=True):
            budget.reserved += amount_usd
            budget.holds[reservation_id] = (amount_usd, now + self._reservation_seconds)
            self._caps.put(cap.key, budget, cap.ttl_seconds)
        return Reservation(True, reservation_id)

    async def settle(self, caps: Sequence[Cap], reservation_id: str, actual_usd: float) -> None:
        if self._markers.has(reservation_id, "budget"):
            return
        for cap in caps:
            budget = self._caps.get(cap.key) or _Budget()
            budget.release(reservation_id)
            budget.spent += actual_usd
            self._caps.put(cap.key, budget, cap.ttl_seconds)
        self._markers.mark(reservation_id, "budget", self._settled_seconds)

    async def spent(self, caps: Sequence[Cap]) -> list[float]:
        budgets = [self._caps.get(cap.key) for cap in caps]
        return [b.spent + b.reserved if b else 0.0 for b in budgets]


class MemoryLeases:
    def __init__(self, leases: ExpiringMap[dict[str, float]]) -> None:
        self._leases = leases  # key -> lease id -> expires at

    async def acquire(self, key: str, limit: int, lease_seconds: float, now: float) -> str | None:
        leases = {lid: expires for lid, expires in (self._leases.get(key) or {}).items() if expires > now}
        if len(leases) >= limit:
            self._leases.replace(key, leases)
            return None
        lease_id = uuid.uuid4().hex
        leases[lease_id] = now + lease_seconds
        self._leases.extend(key, leases, rules.lease_ttl(lease_seconds))
        return lease_id

    async def release(self, key: str, lease_id: str) -> None:
        leases = self._leases.get(key)
        if leases is not None:
            leases.pop(lease_id, None)

    async def held(self, key: str, now: float) -> int:
        return sum(expires > now for expires in (self._leases.get(key) or {}).values())


class MemoryBreakers:
    def __init__(self, states: ExpiringMap[rules.BreakerState], probe_seconds: float) -> None:
        self._states = states
        self._probe_seconds = probe_seconds

    def _state(self, deployment: str) -> rules.BreakerState:
        return self._states.get(deployment) or rules.BreakerState()

    async def statuses(self, deployments: Sequence[str], policy: BreakerPolicy, now: float) -> dict[str, BreakerStatus]:
        return {d: rules.breaker_status(self._state(d), policy, now) for d in deployments}

    async def allow_probe(self, deployment: str, policy: BreakerPolicy, now: float) -> bool:
        state = self._states.get(deployment)
        if state is None:
            return True
        allowed = rules.allow_probe(state, policy, now, self._probe_seconds)
        self._states.put(deployment, state, rules.breaker_ttl(policy, self._probe_seconds))
        return allowed

    async def record(self, deployment: str, ok: bool, policy: BreakerPolicy, now: float) -> BreakerStatus:
        state = self._state(deployment)
        status = rules.record(state, ok, policy, now)
        self._states.put(deployment, state, rules.breaker_ttl(policy, self._probe_seconds))
        return status

    async def view(self, deployments: Sequence[str], policy: BreakerPolicy, now: float) -> list[BreakerView]:
        return [rules.breaker_view(d, self._state(d), policy, now) for d in deployments]


class MemoryCache:
    def __init__(self, entries: ExpiringMap[bytes]) -> None:
        self._entries = entries

    async def get(self, key: str) -> bytes | None:
        return self._entries.get(key)

    async def put(self, key: str, value: bytes, ttl_seconds: float) -> None:
        self._entries.put(key, value, ttl_seconds)


class MemoryStore:
    """Everything in this process: the default when no ``REDIS_URL`` is set."""

    name: str = "memory"

    def __init__(
        self,
        *,
        cache_entries: int = 10_000,
        reservation_seconds: float = rules.RESERVATION_SECONDS,
        probe_seconds: float = rules.PROBE_SECONDS,
        clock: Clock = time.monotonic,
        settled_seconds: float = rules.SETTLED_SECONDS,
    ) -> None:
        counts: ExpiringMap[int] = ExpiringMap(clock)
        caps: ExpiringMap[_Budget] = ExpiringMap(clock)
        leases: ExpiringMap[dict[str, float]] = ExpiringMap(clock)
        states: ExpiringMap[rules.BreakerState] = ExpiringMap(clock)
        cached: ExpiringMap[bytes] = ExpiringMap(clock, max_entries=cache_entries)
        marks: ExpiringMap[set[str]] = ExpiringMap(clock)
        self._maps: tuple[ExpiringMap[Any], ...] = (counts, caps, leases, states, cached, marks)
        markers = Markers(marks)
        self.counters: Counters = MemoryCounters(counts, markers)
        self.budgets: Budgets = MemoryBudgets(caps, markers, reservation_seconds, settled_seconds)
        self.leases: Leases = MemoryLeases(leases)
        self.breakers: Breakers = MemoryBreakers(states, probe_seconds)
        self.cache: Cache = MemoryCache(cached)

    def entries(self) -> int:
        """Entries currently kept (live or not yet swept), across all features: for tests and metrics."""
        return sum(len(m) for m in self._maps)

    async def ping(self) -> bool:
        return True

    async def aclose(self) -> None:
        for entries in self._maps:
            entries.clear()
