"""The per-deployment gate: circuit breaker (shared), concurrency cap and RPM cap.

A deployment whose breaker is open, or that is at a cap, is skipped like an unhealthy one: the
next allowed candidate is tried; a denied one never is. Breaker statuses are read from the store
at most every ``refresh_seconds`` for ranking; the breaker itself is checked on every call.

Two breakers guard each call: the deployment's, shared by every tenant, and the calling tenant's own
for that deployment (key ``<deployment>@<tenant>``), which opens at half the failures (rounded up).
A tenant's failures count for everyone only while its own breaker is closed, so one tenant (whose
requests may be what fails) can add at most that half to the shared count and cannot open the
breaker for the others; once its own breaker opens, its requests skip the deployment. Failures from
two tenants open the shared breaker as before; a deployment only one tenant uses is guarded by that
tenant's breaker.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Awaitable
from dataclasses import dataclass, field, replace
from typing import Any, TypeVar

from gateway.policy.guards_schema import BreakerSpec
from gateway.policy.policy_set import Deployment, PolicySet
from gateway.state.base import BreakerPolicy, Limit, StateUnavailable, Store

log = logging.getLogger("gateway.gate")
T = TypeVar("T")
LEASE_SECONDS = 600.0  # a lease outlives any request; a crashed replica's leases expire after this
RECENT = 200  # attempts kept per deployment for the admin view (this replica)


@dataclass(frozen=True, slots=True)
class Entry:
    deployment: str
    lease: str | None
    probe: bool  # this call is the half-open probe of the shared breaker or of the tenant's
    closed: bool  # the shared breaker was closed when the call was let through
    tenant_breaker: str  # the key of the tenant's own breaker for this deployment
    tenant_closed: bool  # ... and whether it was closed


@dataclass
class _Recent:
    latencies: deque[float] = field(default_factory=lambda: deque(maxlen=RECENT))
    outcomes: deque[bool] = field(default_factory=lambda: deque(maxlen=RECENT))


# by id() of the spec they were built from: (spec, the shared breaker's policy, a tenant's breaker's policy)
_BREAKER_POLICIES: dict[int, tuple[BreakerSpec, BreakerPolicy, BreakerPolicy]] = {}


def breaker_policy(policy: PolicySet) -> BreakerPolicy:
    """The shared breaker's settings, built once per policy, not on each of the calls a request makes."""
    return _breaker_policies(policy)[0]


def _breaker_policies(policy: PolicySet) -> tuple[BreakerPolicy, BreakerPolicy]:
    """Looked up by the spec's identity (hashing a pydantic model runs Python code for every field)."""
    spec = policy.state.breaker
    known = _BREAKER_POLICIES.get(id(spec))
    if known is not None and known[0] is spec:
        return known[1], known[2]
    if len(_BREAKER_POLICIES) >= 8:  # old policies after reloads
        _BREAKER_POLICIES.clear()
    shared = BreakerPolicy(spec.failures, spec.window_seconds, spec.failure_rate, spec.min_calls, spec.cooldown_seconds)
    tenant = replace(shared, failures=-(-spec.failures // 2), min_calls=-(-spec.min_calls // 2))
    _BREAKER_POLICIES[id(spec)] = (spec, shared, tenant)
    return shared, tenant


class DeploymentGate:
    def __init__(self, store: Store, outages: Any, refresh_seconds: float = 0.5) -> None:
        self.store = store
        self.outages = outages
        self.refresh_seconds = refresh_seconds
        self._snapshot: frozenset[str] = frozenset()
        self._snapshot_at = -1.0
        self._recent: dict[str, _Recent] = {}
        self.down: dict[str, str] = {}  # deployment -> why its last health check failed (gateway.upstream.health)

    async def safe(self, call: Awaitable[T], fallback: T | None = None) -> T | None:
        """A store call that fails open (for the health checker)."""
        return await self._safe(call, fallback)

    async def _safe(self, call: Awaitable[T], fallback: T) -> T:
        try:
            return await call
        except StateUnavailable as exc:  # breakers and caps fail open: the gateway keeps serving
            self.outages.report("deployment gate", exc)
            return fallback

    async def unhealthy(self, policy: PolicySet) -> frozenset[str]:
        """Deployments whose breaker is open, from a snapshot at most ``refresh_seconds`` old.

        Half-open ones keep their place in the ranking, so the next request probes them and a
        recovered (cheap, self-hosted) deployment comes back into rotation by itself."""
        now = time.monotonic()
        if now - self._snapshot_at >= self.refresh_seconds:
            self._snapshot_at = now
            statuses = await self._safe(
                self.store.breakers.statuses(list(policy.deployments), breaker_policy(policy), time.time()), {}
            )
            self._snapshot = frozenset(d for d, status in statuses.items() if status == "open")
        return self._snapshot | self.down.keys() if self.down else self._snapshot

    async def statuses(self, policy: PolicySet) -> dict[str, str]:
        """Every deployment's breaker status, straight from the store (for metrics)."""
        now = time.time()
        statuses = await self._safe(
            self.store.breakers.statuses(list(policy.deployments), breaker_policy(policy), now), {}
        )
        return dict(statuses)

    async def enter(self, policy: PolicySet, dep: Deployment, tenant: str) -> Entry | str:
        """Permission for ``tenant`` to call ``dep``, or the reason to skip it."""
        breakers, now = breaker_policy(policy), time.time()
        if self.down and dep.id in self.down:
            return "health_down"
        own = f"{dep.id}@{tenant}"
        statuses = await self._safe(self.store.breakers.statuses([dep.id, own], breakers, now), {})
        status, own_status = statuses.get(dep.id, "closed"), statuses.get(own, "closed")
        probe = False
        if status == "open" or own_status == "open":
            return "breaker_open"
        for key, state in ((dep.id, status), (own, own_status)):
            if state == "half_open":
                if not await self._safe(self.store.breakers.allow_probe(key, breakers, now), True):
                    return "breaker_half_open"
                probe = True
        caps = dep.spec.caps
        if caps is not None and caps.rpm is not None:
            limit = Limit(f"cap:{dep.id}:rpm", caps.rpm, 60.0)
            admission = await self._safe(self.store.counters.admit([limit], now), None)
            if admission is not None and not admission.allowed:
                return "rpm_cap"
        lease = None
        if caps is not None and caps.max_concurrency is not None:
            lease = await self._safe(
                self.store.leases.acquire(f"lease:{dep.id}", caps.max_concurrency, LEASE_SECONDS, now), "unchecked"
            )
            if lease is None:
                return "at_capacity"
        return Entry(dep.id, lease, probe, status == "closed", own, own_status == "closed")

    async def record(self, policy: PolicySet, entry: Entry, ok: bool, seconds: float) -> None:
        """One attempt's outcome: feeds the shared breaker and this replica's recent latency and errors.

        A success through a closed count-based breaker changes nothing in the store, so it is not sent.
        A failure goes to the tenant's own breaker, and to the shared one while the tenant's was closed."""
        recent = self._recent.get(entry.deployment) or self._recent.setdefault(entry.deployment, _Recent())
        recent.latencies.append(seconds)
        recent.outcomes.append(ok)
        shared, own = _breaker_policies(policy)
        by_count = shared.failure_rate is None
        now = time.time()
        if not (ok and entry.tenant_closed and by_count):
            status = await self._safe(self.store.breakers.record(entry.tenant_breaker, ok, own, now), None)
            if status == "open" and not ok:
                log.warning("circuit breaker open for deployment %s for one tenant", entry.tenant_breaker)
        if (ok and entry.closed and by_count) or (not ok and not entry.tenant_closed and entry.closed):
            return
        status = await self._safe(self.store.breakers.record(entry.deployment, ok, shared, now), None)
        if status == "open" and not ok:
            log.warning("circuit breaker open for deployment %s", entry.deployment)

    async def leave(self, entry: Entry) -> None:
        if entry.lease is not None and entry.lease != "unchecked":
            await self._safe(self.store.leases.release(f"lease:{entry.deployment}", entry.lease), None)

    async def report(self, policy: PolicySet) -> list[dict[str, Any]]:
        """For /admin/deployments: breaker (shared), in-flight (shared), recent latency and errors (this replica)."""
        now = time.time()
        views = await self._safe(self.store.breakers.view(list(policy.deployments), breaker_policy(policy), now), [])
        by_id = {v.deployment: v for v in views}
        out = []
        for dep in policy.deployments.values():
            view, recent = by_id.get(dep.id), self._recent.get(dep.id, _Recent())
            in_flight = await self._safe(self.store.leases.held(f"lease:{dep.id}", now), None)
            latencies = sorted(recent.latencies)
            out.append(
                {
                    "deployment": dep.id,
                    "model": dep.model_id,
                    "available": dep.unavailable is None,
                    "unavailable_reason": dep.unavailable,
                    "breaker": view.status if view else "unknown",
                    "breaker_failures_in_window": view.failures if view else None,
                    "breaker_opened_at": view.opened_at if view else None,
                    "in_flight": in_flight,
                    "max_concurrency": dep.spec.caps.max_concurrency if dep.spec.caps else None,
                    "recent_attempts": len(recent.outcomes),
                    "recent_error_rate": (1 - sum(recent.outcomes) / len(recent.outcomes)) if recent.outcomes else None,
                    "recent_latency_p50_seconds": latencies[len(latencies) // 2] if latencies else None,
                    "recent_latency_p95_seconds": latencies[int(len(latencies) * 0.95)] if latencies else None,
                }
            )
        return out
