"""Guards backed by shared state: tenant and key rate limits, budgets, the response cache, and the
per-deployment gate (circuit breaker, concurrency cap, RPM cap).

Every guard reads and writes the :mod:`gateway.state` store only. When the store cannot answer,
the policy's fail mode decides: ``open`` serves the request anyway, ``closed`` refuses it with 503.
An outage is logged at most once per interval per feature and counted in ``outages``.

What a request really used is settled exactly, also across outages: a settlement the store cannot
take waits in this replica's queue (``settlement.py``) and is applied once it can, at most once per
request id; a request whose limits or budget failed open is counted when the store is back.
"""

from __future__ import annotations

import hashlib
import logging
import secrets
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import TypeVar

import orjson

from gateway.errors import BudgetExhausted, RateLimited, StateUnavailableError
from gateway.policy.decide import Decision
from gateway.policy.guards_schema import Budget, FailMode, RateLimits
from gateway.policy.policy_set import PolicySet
from gateway.request import ChatRequest
from gateway.state import rules
from gateway.state.base import Cap, Limit, StateUnavailable, Store
from gateway.state.settlement import Settlement, Settlements

log = logging.getLogger("gateway.guards")
T = TypeVar("T")
MINUTE = 60.0
OUTAGE_LOG_SECONDS = 30.0


@dataclass(frozen=True, slots=True)
class Grant:
    """What the guards took for one request, given back or corrected when it ends."""

    limits: tuple[Limit, ...] = ()
    windows: tuple[int, ...] = ()
    estimate_tokens: int = 0
    caps: tuple[Cap, ...] = ()
    reservation_id: str | None = None  # also when the budget failed open: settle counts the spend, frees a late copy
    id: str = ""  # the request's settlement id: its admission, reservation and settlement count once under it
    counted: bool = True  # False: the rate limits failed open; the store knows whether the admission landed
    tenant: str = ""


def new_id() -> str:
    return secrets.token_hex(12)


class Outages:
    """Counts store failures per feature and logs them at most once per interval."""

    def __init__(self, on_report: Callable[[str], None] = lambda feature: None) -> None:
        self.counts: Counter[str] = Counter()
        self.on_report = on_report
        self._logged: dict[str, float] = {}

    def report(self, feature: str, exc: Exception) -> None:
        self.counts[feature] += 1
        self.on_report(feature)
        now = time.monotonic()
        if now - self._logged.get(feature, -OUTAGE_LOG_SECONDS) >= OUTAGE_LOG_SECONDS:
            self._logged[feature] = now
            log.error(
                "shared state unavailable for %s (%s); this is logged once per %ss", feature, exc, OUTAGE_LOG_SECONDS
            )


class Guards:
    def __init__(self, store: Store, outages: Outages | None = None, settlements: Settlements | None = None) -> None:
        self.store = store
        self.outages = outages or Outages()
        self.settlements = settlements or Settlements(store, on_failure=self.settlement_failed)

    def settlement_failed(self, exc: StateUnavailable) -> None:
        self.outages.report("settlement", exc)

    async def _guarded(self, feature: str, fail: FailMode, call: Awaitable[T], fallback: T) -> T:
        try:
            return await call
        except StateUnavailable as exc:
            self.outages.report(feature, exc)
            if fail == "closed":
                raise StateUnavailableError(
                    f"The gateway cannot check {feature} right now; try again shortly."
                ) from None
            return fallback

    # --- rate limits -----------------------------------------------------------------------------

    async def admit(self, policy: PolicySet, tenant_id: str, key_hash: str, request: ChatRequest) -> Grant:
        """Count this request against the tenant's and the key's rpm/tpm, or raise RateLimited."""
        named = [
            *_limits(
                f"tenant {tenant_id!r}", f"rl:t:{tenant_id}", policy.tenants[tenant_id].limits, request, tenant_id
            ),
            *_limits(
                f"this key of tenant {tenant_id!r}",
                f"rl:k:{key_hash[:20]}",
                policy.key_limits.get(key_hash),
                request,
                tenant_id,
            ),
        ]
        if not named:
            return Grant()
        limits = tuple(limit for _, limit in named)
        fail, now, settlement = policy.state.rate_limits_fail, time.time(), new_id()
        admitting = self.store.counters.admit(limits, now, settlement)
        admission = await self._guarded("rate limits", fail, admitting, None)
        if admission is None:  # failed open: counted when it settles, unless its admission landed after all
            windows = tuple(rules.window_of(limit, now) for limit in limits)
            estimate = request.prompt_tokens_estimate
            return Grant(limits, windows, estimate, id=settlement, counted=False, tenant=tenant_id)
        if not admission.allowed and admission.refused is not None:
            name = next(n for n, limit in named if limit == admission.refused)
            unit = "tokens" if admission.refused.key.endswith(":tpm") else "requests"
            raise RateLimited(
                f"Rate limit reached for {name}: {admission.current} of {admission.refused.limit} {unit} per minute "
                f"used. Retry in {admission.retry_after_seconds:.0f} s.",
                retry_after=admission.retry_after_seconds,
            )
        return Grant(limits, admission.windows, request.prompt_tokens_estimate, id=settlement, tenant=tenant_id)

    # --- budgets ---------------------------------------------------------------------------------

    async def over_downgrade_line(self, policy: PolicySet, tenant_id: str) -> bool:
        """True when the tenant's budget says downgrade and its spend passed the line."""
        budget = policy.tenants[tenant_id].budget
        if budget is None or budget.on_exhausted != "downgrade":
            return False
        caps = _caps(tenant_id, budget, time.time())
        spent = await self._guarded("budgets", budget.fail, self.store.budgets.spent(caps), [0.0] * len(caps))
        return any(s >= budget.downgrade_at * cap.limit_usd for s, cap in zip(spent, caps, strict=True))

    async def budget_usage(self, policy: PolicySet) -> dict[tuple[str, str], float]:
        """(tenant, window) -> share of the budget spent or reserved, for the metrics page."""
        usage: dict[tuple[str, str], float] = {}
        now = time.time()
        for tenant_id, tenant in policy.tenants.items():
            if tenant.budget is None:
                continue
            caps = _caps(tenant_id, tenant.budget, now)
            spent = await self._guarded("budgets", "open", self.store.budgets.spent(caps), None)
            for cap, amount in zip(caps, spent or (), strict=False):
                usage[tenant_id, "daily" if ":d:" in cap.key else "monthly"] = amount / cap.limit_usd
        return usage

    async def reserve(self, policy: PolicySet, decision: Decision, grant: Grant) -> Grant:
        """Reserve the estimated cost of the first candidate in the tenant's budget, or raise BudgetExhausted."""
        budget = policy.tenants[decision.tenant].budget
        if budget is None or not decision.ranked:
            return grant
        now = time.time()
        caps = _caps(decision.tenant, budget, now)
        estimate = next(v.estimated_cost_usd for v in decision.verdicts if v.deployment is decision.ranked[0])
        rid = grant.id or new_id()
        reserving = self.store.budgets.reserve(caps, estimate, now, rid)
        reservation = await self._guarded("budgets", budget.fail, reserving, None)
        if reservation is None:  # failed open: nothing reserved (or a late copy, freed when it settles); spend counted
            return replace(grant, caps=caps, reservation_id=rid, id=rid, tenant=decision.tenant)
        if not reservation.allowed and reservation.refused is not None:
            cap = reservation.refused
            window = "daily" if ":d:" in cap.key else "monthly"
            raise BudgetExhausted(
                f"The {window} budget of tenant {decision.tenant!r} is used up: ${reservation.spent_usd:.6g} of "
                f"${cap.limit_usd:.6g} spent or reserved, and this request needs about ${estimate:.6g}.",
                retry_after=_window_end(window, now) - now,
            )
        return replace(grant, caps=caps, reservation_id=reservation.reservation_id, id=rid, tenant=decision.tenant)

    async def settle(self, grant: Grant, cost_usd: float, tokens: int) -> None:
        """Replace estimates by what the request really used (cost 0 and no tokens when it failed); when the
        store cannot take it now, it is queued and applied once it can (``settlement.py``)."""
        settlement = _settlement(grant, cost_usd, tokens)
        if settlement is not None:
            await self.settlements.submit(settlement)

    # --- response cache --------------------------------------------------------------------------

    def cache_key(self, policy: PolicySet, decision: Decision, request: ChatRequest) -> tuple[str, float] | None:
        """The tenant-scoped key and TTL of this request's cache entry, if its route or tenant caches."""
        if request.stream:
            return None
        route = policy.routes.get(decision.route) if decision.route else None
        spec = (route.cache if route else None) or policy.tenants[decision.tenant].cache
        if spec is None:
            return None
        # a request in another API (Anthropic's, Responses) is keyed by its own body: its answer may be that API's
        # (passed through)
        native = request.native
        endpoint: str
        if native is None:
            body, endpoint = request.body, request.endpoint
        else:
            body, endpoint = native.body, "messages" if native.api == "anthropic" else native.api
        digest = hashlib.sha256(orjson.dumps(body, option=orjson.OPT_SORT_KEYS)).hexdigest()
        return f"cache:{decision.tenant}:{policy.revision}:{endpoint}:{digest}", spec.ttl_seconds

    async def cached(self, policy: PolicySet, key: str) -> bytes | None:
        return await self._guarded("cache", policy.state.cache_fail, self.store.cache.get(key), None)

    async def remember(self, key: str, body: bytes, ttl: float) -> None:
        try:
            await self.store.cache.put(key, body, ttl)
        except StateUnavailable as exc:
            self.outages.report("cache", exc)


def _settlement(grant: Grant, cost_usd: float, tokens: int) -> Settlement | None:
    """The store updates that settle ``grant``: the spend, and per limit the correction of what admission
    counted (tpm: real tokens minus the estimate), or, when it may not have counted, the whole request."""
    limits, windows, deltas, unadmitted = [], [], [], []
    for limit, window in zip(grant.limits, grant.windows, strict=True):
        tpm = limit.key.endswith(":tpm")
        delta = tokens - grant.estimate_tokens if tpm else 0
        if delta or not grant.counted:
            limits.append(limit)
            windows.append(window)
            deltas.append(delta)
            unadmitted.append(tokens if tpm else limit.amount)
    if grant.reservation_id is None and not limits:
        return None
    return Settlement(
        grant.id, grant.tenant, cost_usd, tokens, grant.caps, grant.reservation_id,
        tuple(limits), tuple(windows), tuple(deltas), None if grant.counted else tuple(unadmitted),
    )  # fmt: skip


def _limits(
    name: str, base: str, spec: RateLimits | None, request: ChatRequest, tenant: str
) -> list[tuple[str, Limit]]:
    """A tenant's and its keys' limits share the tenant's scope: one atomic admit, one Redis Cluster slot."""
    if spec is None:
        return []
    out = []
    scope = f"tenant:{tenant}"
    if spec.rpm:
        out.append((name, Limit(f"{base}:rpm", spec.rpm, MINUTE, 1, scope)))
    if spec.tpm:
        out.append((name, Limit(f"{base}:tpm", spec.tpm, MINUTE, request.prompt_tokens_estimate, scope)))
    return out


def _caps(tenant: str, budget: Budget, now: float) -> tuple[Cap, ...]:
    day = datetime.fromtimestamp(now, UTC)
    caps, scope = [], f"tenant:{tenant}"
    if budget.daily_usd is not None:
        caps.append(Cap(f"budget:{tenant}:d:{day:%Y-%m-%d}", budget.daily_usd, 2 * 86400, scope))
    if budget.monthly_usd is not None:
        caps.append(Cap(f"budget:{tenant}:m:{day:%Y-%m}", budget.monthly_usd, 32 * 86400, scope))
    return tuple(caps)


def _window_end(window: str, now: float) -> float:
    day = datetime.fromtimestamp(now, UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    if window == "daily":
        return day.timestamp() + 86400
    first = day.replace(day=1)
    next_month = first.replace(year=first.year + first.month // 12, month=first.month % 12 + 1)
    return next_month.timestamp()
