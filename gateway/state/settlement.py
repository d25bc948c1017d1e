"""Settling what requests really used, exactly, across shared-state outages.

A finished request replaces its estimates by its real usage: the budget reservation by the spend, the
tpm counts by the tokens. When the store cannot answer, the settlement waits in this replica's queue
(bounded: past ``max_pending`` a settlement is dropped, counted and logged) and is retried with
backoff (tenacity) until the store answers; while the queue holds anything, new settlements join it
behind the others instead of trying first. On shutdown the queue is drained for a bounded time, and
what could not be settled is logged.

A retry is safe because every part is applied at most once per request id (the store keeps a marker
per id, see ``base.Counters`` and ``base.Budgets``): a settlement whose first try timed out but did
land, on a paused Redis that answers later, is not counted again. The same holds for a request
admitted while the store was unreachable (its limits and budget failed open): its settlement carries
both the deltas for an admission that counted and for one that did not, and the store, which knows
whether the admission landed, applies the right ones, once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import Counter, defaultdict, deque
from collections.abc import Callable
from dataclasses import dataclass

from tenacity import AsyncRetrying, RetryCallState, retry_if_exception_type, stop_after_delay, wait_random_exponential
from tenacity.stop import stop_base

from gateway.state.base import Cap, Limit, StateUnavailable, Store

log = logging.getLogger("gateway.guards")
MAX_PENDING = 10_000  # settlements one replica keeps while the store is away (a few hundred bytes each)
DRAIN_SECONDS = 5.0  # how long shutdown waits for the store to take what is queued
BATCH = 32  # settlements sent at once once the store answers again (the pool has 32 connections)
BACKOFF_FIRST_SECONDS = 0.05
BACKOFF_MAX_SECONDS = 2.0
DROP_LOG_SECONDS = 30.0


@dataclass(frozen=True, slots=True)
class Settlement:
    """One request's real usage, to apply to the store once: its budget spend and its rate-limit deltas."""

    id: str  # the request's settlement id (its reservation id when it has a budget)
    tenant: str
    cost_usd: float
    tokens: int
    caps: tuple[Cap, ...] = ()
    reservation_id: str | None = None  # None: no budget to settle
    limits: tuple[Limit, ...] = ()
    windows: tuple[int, ...] = ()
    deltas: tuple[int, ...] = ()  # per limit, when the admission counted
    unadmitted: tuple[int, ...] | None = None  # per limit, when it did not (the limits failed open); None: it did

    async def apply(self, store: Store) -> None:
        """Raises StateUnavailable when the store did not answer (then some parts may or may not have landed)."""
        if self.reservation_id is not None:
            await store.budgets.settle(self.caps, self.reservation_id, self.cost_usd)
        if self.limits:
            await store.counters.adjust(self.limits, self.windows, self.deltas, self.id, self.unadmitted, time.time())


class _Until(stop_base):
    """Stop retrying once ``stopping`` says so (shutdown takes over with its own bounded wait)."""

    def __init__(self, stopping: Callable[[], bool]) -> None:
        self.stopping = stopping

    def __call__(self, retry_state: RetryCallState) -> bool:
        return self.stopping()


class Settlements:
    """This replica's settlements: applied at once when the store answers, else queued and retried."""

    def __init__(
        self,
        store: Store,
        *,
        max_pending: int = MAX_PENDING,
        on_failure: Callable[[StateUnavailable], None] = lambda exc: None,
        on_depth: Callable[[int], None] = lambda depth: None,
        on_drop: Callable[[], None] = lambda: None,
        backoff: tuple[float, float] = (BACKOFF_FIRST_SECONDS, BACKOFF_MAX_SECONDS),
    ) -> None:
        self.store = store
        self.max_pending = max_pending
        self.pending: deque[Settlement] = deque()
        self.dropped = 0
        self.queued = 0  # settlements that ever waited in the queue
        self._on_failure, self._on_depth, self._on_drop = on_failure, on_depth, on_drop
        self._backoff = backoff
        self._task: asyncio.Task[None] | None = None
        self._stopping = False
        self._probing = True  # after a failure, the head goes alone until the store answers
        self._drop_logged = -DROP_LOG_SECONDS

    async def submit(self, settlement: Settlement) -> None:
        """Apply it now, or queue it when the store does not answer (or others are already waiting)."""
        if not self.pending and not self._stopping:
            try:
                await settlement.apply(self.store)
                return
            except StateUnavailable as exc:
                self._on_failure(exc)
        self._enqueue(settlement)

    def _enqueue(self, settlement: Settlement) -> None:
        if len(self.pending) >= self.max_pending:
            self._drop(settlement)
            return
        self.pending.append(settlement)
        self.queued += 1
        self._on_depth(len(self.pending))
        if not self._stopping and (self._task is None or self._task.done()):
            self._task = asyncio.create_task(self._retry(), name="settlement-retry")

    def _drop(self, settlement: Settlement) -> None:
        self.dropped += 1
        self._on_drop()
        now = time.monotonic()
        if now - self._drop_logged >= DROP_LOG_SECONDS:
            self._drop_logged = now
            log.error(
                "settlement queue full (%s waiting for shared state): dropped tenant %r's $%.6g and %s tokens "
                "(%s dropped so far; this is logged once per %ss)",
                self.max_pending, settlement.tenant, settlement.cost_usd, settlement.tokens, self.dropped,
                DROP_LOG_SECONDS,
            )  # fmt: skip

    async def _retry(self) -> None:
        await self._flush_with_backoff(_Until(lambda: self._stopping))

    async def _flush_with_backoff(self, stop: stop_base) -> None:
        first, cap = self._backoff
        retrying = AsyncRetrying(
            retry=retry_if_exception_type(StateUnavailable),
            wait=wait_random_exponential(multiplier=first, max=cap),
            stop=stop,
            reraise=True,
        )
        try:
            async for attempt in retrying:
                with attempt:
                    await self._flush()
        except StateUnavailable:
            pass  # stopped: what is left stays queued for the drain

    async def _flush(self) -> None:
        """Apply the queue in order: the head alone (is the store back?), then batches; raise on a failure."""
        while self.pending:
            size = 1 if self._probing else min(BATCH, len(self.pending))
            batch = [self.pending[i] for i in range(size)]
            results = await asyncio.gather(*(s.apply(self.store) for s in batch), return_exceptions=True)
            failed = []
            for settlement, result in zip(batch, results, strict=True):
                if isinstance(result, StateUnavailable):
                    failed.append(settlement)
                elif isinstance(result, BaseException):  # a bug, not an outage: retrying would not help
                    log.error("settlement of tenant %r failed and is dropped: %r", settlement.tenant, result)
                    self.dropped += 1
                    self._on_drop()
            for _ in batch:
                self.pending.popleft()
            self.pending.extendleft(reversed(failed))
            self._on_depth(len(self.pending))
            self._probing = bool(failed)
            if failed:
                raise StateUnavailable(f"{len(failed)} of {len(batch)} settlements not applied")

    async def drain(self, seconds: float = DRAIN_SECONDS) -> int:
        """At shutdown: stop the background retries, then retry what is queued for at most ``seconds``;
        log what could not be settled, and return how many that is."""
        self._stopping = True
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self.pending:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(seconds):
                    await self._flush_with_backoff(stop_after_delay(seconds))
        left = len(self.pending)
        if left:
            log.error("shutdown: %s settlements could not be applied to shared state: %s", left, self._summary())
        return left

    def _summary(self) -> str:
        cost: defaultdict[str, float] = defaultdict(float)
        tokens: Counter[str] = Counter()
        for settlement in self.pending:
            cost[settlement.tenant] += settlement.cost_usd
            tokens[settlement.tenant] += settlement.tokens
        return "; ".join(f"tenant {t!r}: ${cost[t]:.6g}, {tokens[t]} tokens" for t in sorted(tokens))
