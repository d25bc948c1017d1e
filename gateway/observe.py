"""Side channel: what one request did, recorded to metrics when it ends. Nothing here feeds routing."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator

from gateway import shape
from gateway.call import Attempt, Streaming
from gateway.errors import UpstreamError
from gateway.metrics import Metrics
from gateway.policy.decide import Decision
from gateway.policy.policy_set import Deployment
from gateway.providers.base import Json


class Observation:
    def __init__(self, metrics: Metrics, endpoint: str) -> None:
        self.metrics = metrics
        self.endpoint = endpoint
        self.started = time.perf_counter()
        self.upstream_seconds = 0.0
        self.tenant = self.route = self.tier = self.model = self.deployment = "none"
        self.dep: Deployment | None = None
        metrics.in_flight.inc()

    def decided(self, decision: Decision) -> None:
        self.tenant = decision.tenant
        self.route = decision.route or "none"
        self.tier = decision.tier or "none"
        self.model = decision.requested_model if decision.route is None else "none"

    def called(self, dep: Deployment, attempts: tuple[Attempt, ...]) -> None:
        self.dep, self.model, self.deployment = dep, dep.model_id, dep.id
        for attempt in attempts:
            self.metrics.attempts.labels(
                attempt.deployment, "ok" if attempt.error is None else attempt.error.split(":")[0]
            ).inc()
            self.upstream_seconds += attempt.seconds
        if len(attempts) > 1:
            self.metrics.fallbacks.labels(self.route).inc()

    def usage(self, body: Json) -> None:
        if self.dep is None:
            return
        prompt, completion = shape.usage_of(body)
        self.metrics.tokens.labels(self.dep.id, "input").inc(prompt)
        self.metrics.tokens.labels(self.dep.id, "output").inc(completion)
        cost = (prompt * self.dep.price.input + completion * self.dep.price.output) / 1e6
        self.metrics.cost.labels(self.tenant, self.dep.id).inc(cost)

    def finish(self, status: int, streamed_upstream_seconds: float = 0.0) -> None:
        total = time.perf_counter() - self.started
        m = self.metrics
        m.in_flight.dec()
        m.requests.labels(
            self.endpoint, self.tenant, self.route, self.tier, self.model, self.deployment, str(status)
        ).inc()
        m.duration.labels(self.endpoint, self.route).observe(total)
        m.overhead.labels(self.endpoint).observe(max(total - self.upstream_seconds - streamed_upstream_seconds, 0.0))


async def observed(outcome: Streaming, obs: Observation) -> AsyncIterator[Json]:
    """The upstream's chunks, unchanged; usage is recorded and the request finished when they end."""
    status = 200
    waited = 0.0
    chunk: Json | None = outcome.first
    try:
        while chunk is not None:
            if chunk.get("usage"):
                obs.usage(chunk)
            yield chunk
            before = time.perf_counter()
            chunk = await anext(outcome.rest, None)
            waited += time.perf_counter() - before
    except UpstreamError as exc:
        status = exc.status
        raise
    finally:
        aclose = getattr(outcome.rest, "aclose", None)
        if aclose is not None:
            await aclose()
        obs.finish(status, waited)
