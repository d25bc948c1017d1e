"""Side channel: what one request did, gathered while it runs and handed as a record to the sinks.

Nothing here feeds routing: metrics and the audit log read records, never the other way.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import Any, Protocol

from gateway import shape
from gateway.call import Attempt, Streaming
from gateway.errors import GatewayError, UpstreamError
from gateway.policy.decide import Decision
from gateway.policy.policy_set import Deployment, PolicySet
from gateway.providers.base import Json
from gateway.record import RequestRecord

Sink = Callable[[RequestRecord], None]


class Observation:
    def __init__(self, sinks: Sequence[Sink], policy: PolicySet, endpoint: str, request_id: str) -> None:
        self.sinks = sinks
        self.policy = policy
        self.endpoint = endpoint
        self.request_id = request_id
        self.time = time.time()
        self.started = time.perf_counter()
        self.decision: Decision | None = None
        self.dep: Deployment | None = None
        self.attempts: tuple[Attempt, ...] = ()
        self.tokens = (0, 0)
        self.upstream_seconds = 0.0
        self.ttft: float | None = None
        self.prompt: str | None = None
        self.completion: list[str] | None = None
        self.cache: str | None = None

    def decided(self, decision: Decision, prompt: str) -> None:
        self.decision = decision
        if self.policy.tenants[decision.tenant].audit_content:
            self.prompt, self.completion = prompt, []

    def called(self, dep: Deployment, attempts: tuple[Attempt, ...]) -> None:
        self.dep, self.attempts = dep, attempts
        self.upstream_seconds += sum(a.seconds for a in attempts)

    def called_failed(self, error: GatewayError) -> None:
        """The call failed as a whole: keep the attempts it made, for metrics and the audit."""
        self.attempts = tuple(error.attempts)
        self.upstream_seconds += sum(a.seconds for a in self.attempts)

    def answered(self, body: Json) -> None:
        """An answer body or stream chunk: keep its usage, and its text when the audit wants it."""
        if body.get("usage"):
            self.tokens = shape.usage_of(body)
        if self.completion is not None:
            self.completion.append(shape.text_of(body))

    def first_byte(self) -> None:
        if self.ttft is None:
            self.ttft = time.perf_counter() - self.started

    def cached(self, hit: bool, deployment: Deployment | None) -> None:
        self.cache = "hit" if hit else "miss"
        if hit:
            self.dep = deployment  # who made the answer; the hit itself costs nothing

    def finish(
        self, status: int, error_code: str | None = None, upstream_streaming_seconds: float = 0.0
    ) -> RequestRecord:
        record = self._record(status, error_code, upstream_streaming_seconds)
        for sink in self.sinks:
            sink(record)
        return record

    def _record(self, status: int, error_code: str | None, streaming: float) -> RequestRecord:
        total = time.perf_counter() - self.started
        decision, dep = self.decision, self.dep
        route = decision.route if decision and decision.route else "none"
        cost, counterfactual = self._costs(dep, route)
        denied = sorted({v.rule for verdict in decision.verdicts for v in verdict.violations}) if decision else []
        return RequestRecord(
            request_id=self.request_id,
            time=self.time,
            endpoint=self.endpoint,
            tenant=decision.tenant if decision else "none",
            route=route,
            tier=(decision.tier or "none") if decision else "none",
            model=dep.model_id if dep else (decision.requested_model if decision and not decision.route else "none"),
            status=status,
            error_code=error_code,
            decision=decision,
            deployment=dep,
            attempts=self.attempts,
            input_tokens=self.tokens[0],
            output_tokens=self.tokens[1],
            cost_usd=cost,
            counterfactual_cost_usd=counterfactual,
            seconds=total,
            overhead_seconds=max(total - self.upstream_seconds - streaming, 0.0),
            ttft_seconds=self.ttft,
            denied_rules=tuple(denied),
            policy_revision=self.policy.revision,
            cache=self.cache,
            content=self._content(),
        )

    def _costs(self, dep: Deployment | None, route: str) -> tuple[float, float]:
        if dep is None or self.cache == "hit":
            return 0.0, 0.0
        prompt, completion = self.tokens
        cost = (prompt * dep.price.input + completion * dep.price.output) / 1e6
        baseline = self.policy.baseline_prices.get(route)
        if baseline is None:
            return cost, cost
        return cost, (prompt * baseline.input + completion * baseline.output) / 1e6

    def _content(self) -> dict[str, Any] | None:
        if self.prompt is None:
            return None
        return {"prompt": self.prompt, "completion": "".join(self.completion or ())}


class Encoder(Protocol):
    def feed(self, chunk: Json) -> bytes: ...
    def finish(self) -> bytes: ...
    def error(self, exc: UpstreamError) -> bytes: ...


async def observed(
    outcome: Streaming, obs: Observation, after: Callable[[RequestRecord], Awaitable[None]], encoder: Encoder
) -> AsyncIterator[bytes]:
    """The client's events for the upstream's chunks; when they end, the request is recorded and ``after``
    runs, then the last events (or the error event of a stream that failed after its first byte) go out."""
    status, code = 200, None
    waited = 0.0
    chunk: Json | None = outcome.first
    try:
        while chunk is not None:
            obs.answered(chunk)
            obs.first_byte()
            event = encoder.feed(chunk)
            if event:
                yield event
            before = time.perf_counter()
            chunk = await anext(outcome.rest, None)
            waited += time.perf_counter() - before
    except UpstreamError as exc:
        status, code = exc.status, exc.code
        tail = encoder.error(exc)
    else:
        tail = encoder.finish()
    finally:
        aclose = getattr(outcome.rest, "aclose", None)
        if aclose is not None:
            await aclose()
        await outcome.release()
        await after(obs.finish(status, code, waited))
    yield tail
