"""Side channel: what one request did, gathered while it runs and handed as a record to the sinks.

Nothing here feeds routing: metrics and the audit log read records, never the other way.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import Any, Protocol

from gateway.errors import GatewayError, UpstreamError
from gateway.observe.record import RequestRecord, UsageEstimate
from gateway.policy.decide import Decision
from gateway.policy.policy_set import Deployment, PolicySet
from gateway.request import CHARS_PER_TOKEN, ChatRequest
from gateway.upstream import shape
from gateway.upstream.caller import Attempt, Streaming
from gateway.upstream.providers.base import Json

Sink = Callable[[RequestRecord], None]
Tokens = tuple[int, int]  # prompt, completion


class Usage:
    """What one upstream answer used: the upstream's own counts when they come, else the gateway's estimate.

    A stream's usage comes on its last chunk, so a stream the client leaves, or the upstream drops, has none;
    settled with zero it would cost nothing and give its rate-limit tokens and budget reservation back. Its
    estimate is the prompt estimate (as admitted) plus the output counted from the chunks: ``max(chunks with
    text, ceil(characters / 4))``, since self-hosted servers send about a token per chunk and others batch.
    """

    __slots__ = ("chars", "final", "invalid", "pieces", "prompt_estimate", "reported")

    def __init__(self, prompt_estimate: int) -> None:
        self.prompt_estimate = prompt_estimate
        self.reported: Tokens | None = None  # the latest well-formed usage the upstream sent
        self.final = False  # that usage came on the usage-only chunk (or a whole answer): nothing comes after it
        self.invalid = False  # a usage came malformed
        self.chars = 0
        self.pieces = 0

    def chunk(self, chunk: Json) -> None:
        """One stream chunk: count its text (a few lookups and an add), keep its usage if it has one."""
        chars = shape.output_chars(chunk)
        if chars:
            self.chars += chars
            self.pieces += 1
        if chunk.get("usage") is not None:
            self._report(chunk, final=not chunk.get("choices"))

    def answer(self, body: Json) -> None:
        self.chars, self.pieces = shape.output_chars(body), 0
        if body.get("usage") is not None:
            self._report(body, final=True)

    def _report(self, body: Json, final: bool) -> None:
        counts = shape.usage_of(body)
        if counts is None:
            self.invalid = True
        else:
            self.reported, self.final = counts, final or self.final

    def settled(self, ending: UsageEstimate | None) -> tuple[Tokens, UsageEstimate | None]:
        """The tokens to record and settle, and why they are estimated (None: the upstream's own).

        ``ending`` says why a stream ended early; a whole answer or a finished stream has None."""
        if self.reported is not None and (self.final or ending is None):
            return self.reported, None
        prompt, output = self.reported or (0, 0)
        counted = max(self.pieces, -(-self.chars // CHARS_PER_TOKEN))
        reason = ending or ("usage_invalid" if self.invalid else "usage_missing")
        return (prompt or self.prompt_estimate, max(output, counted)), reason


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
        self.usage: Usage | None = None  # from the moment an upstream answers
        self.upstream_seconds = 0.0
        self.ttft: float | None = None
        self.prompt: str | None = None
        self.completion: list[str] | None = None
        self.cache: str | None = None
        self.traceparent: str | None = None
        self.decided_seconds: float | None = None
        self.tenant = "none"  # known once the key is checked, before any decision
        self.requested_model: str | None = None
        self.refused_by: str | None = None  # the rule that refused the request before any decision

    def identified(self, tenant: str, request: ChatRequest) -> None:
        """The key's tenant and the model the client asked for, known before the decision (which may refuse)."""
        self.tenant, self.requested_model = tenant, request.requested_model or request.model

    def decided(self, decision: Decision, prompt: str) -> None:
        self.decision = decision
        self.decided_seconds = time.perf_counter() - self.started
        if self.policy.tenants[decision.tenant].audit_content:
            self.prompt, self.completion = prompt, []

    def called(self, dep: Deployment, attempts: tuple[Attempt, ...], prompt_tokens_estimate: int) -> None:
        """An upstream answers (whole or as a stream); its usage is counted from here on."""
        self.dep, self.attempts = dep, attempts
        self.upstream_seconds += sum(a.seconds for a in attempts)
        self.usage = Usage(prompt_tokens_estimate)

    def called_failed(self, error: GatewayError) -> None:
        """The call failed as a whole: keep the attempts it made, for metrics and the audit."""
        self.attempts = tuple(error.attempts)
        self.refused_by = error.rule
        self.upstream_seconds += sum(a.seconds for a in self.attempts)

    def answered(self, body: Json) -> None:
        """A whole answer: keep its usage, and its text when the audit wants it."""
        if self.usage is not None:
            self.usage.answer(body)
        if self.completion is not None:
            self.completion.append(shape.text_of(body))

    def streamed(self, chunk: Json) -> None:
        """A stream chunk: count it, keep its usage, and its text when the audit wants it."""
        if self.usage is not None:
            self.usage.chunk(chunk)
        if self.completion is not None:
            self.completion.append(shape.text_of(chunk))

    def first_byte(self) -> None:
        if self.ttft is None:
            self.ttft = time.perf_counter() - self.started

    def cached(self, hit: bool, deployment: Deployment | None) -> None:
        self.cache = "hit" if hit else "miss"
        if hit:
            self.dep = deployment  # who made the answer; the hit itself costs nothing

    def finish(
        self,
        status: int,
        error_code: str | None = None,
        upstream_streaming_seconds: float = 0.0,
        ending: UsageEstimate | None = None,
    ) -> RequestRecord:
        """Record the request and hand it to the sinks; ``ending`` says why a stream ended before its end."""
        record = self._record(status, error_code, upstream_streaming_seconds, ending)
        for sink in self.sinks:
            sink(record)
        return record

    def _record(
        self, status: int, error_code: str | None, streaming: float, ending: UsageEstimate | None
    ) -> RequestRecord:
        total = time.perf_counter() - self.started
        decision, dep = self.decision, self.dep
        route = decision.route if decision and decision.route else "none"
        tokens, estimated = self.usage.settled(ending) if self.usage is not None else ((0, 0), None)
        cost, counterfactual = self._costs(dep, route, tokens)
        denied = sorted({v.rule for verdict in decision.verdicts for v in verdict.violations}) if decision else []
        if self.refused_by is not None:  # limits.max_prompt_chars: counted with the rules in gateway_policy_denials
            denied = [self.refused_by]
        return RequestRecord(
            request_id=self.request_id,
            time=self.time,
            endpoint=self.endpoint,
            tenant=decision.tenant if decision else self.tenant,
            route=route,
            tier=(decision.tier or "none") if decision else "none",
            model=dep.model_id if dep else (decision.resolved_model if decision and not decision.route else "none"),
            status=status,
            error_code=error_code,
            decision=decision,
            deployment=dep,
            attempts=self.attempts,
            input_tokens=tokens[0],
            output_tokens=tokens[1],
            cost_usd=cost,
            counterfactual_cost_usd=counterfactual,
            seconds=total,
            overhead_seconds=max(total - self.upstream_seconds - streaming, 0.0),
            ttft_seconds=self.ttft,
            denied_rules=tuple(denied),
            policy_revision=self.policy.revision,
            cache=self.cache,
            content=self._content(),
            usage_estimated=estimated,
            traceparent=self.traceparent,
            decided_seconds=self.decided_seconds,
            requested_model=decision.requested_model if decision else self.requested_model,
        )

    def _costs(self, dep: Deployment | None, route: str, tokens: Tokens) -> tuple[float, float]:
        if dep is None or self.cache == "hit":
            return 0.0, 0.0
        prompt, completion = tokens
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


CLIENT_CLOSED = 499


async def observed(
    outcome: Streaming, obs: Observation, after: Callable[[RequestRecord], Awaitable[None]], encoder: Encoder
) -> AsyncIterator[bytes]:
    """The client's events for the upstream's chunks; when they end, the request is recorded and ``after``
    runs, then the last events (or the error event of a stream that failed after its first byte) go out.

    A stream the client leaves (the generator is closed, or its task cancelled) or the upstream breaks is
    recorded with estimated usage (:class:`Usage`), never with none; one the client left is recorded with
    status 499 and error code ``client_cancelled`` (the client saw a 200 head, but not the answer's end)."""
    failure: UpstreamError | None = None  # what broke the stream: its status and code, and the breaker's outcome
    ending: UsageEstimate | None = None
    waited = 0.0
    chunk: Json | None = outcome.first
    try:
        while chunk is not None:
            obs.streamed(chunk)
            obs.first_byte()
            event = encoder.feed(chunk)
            if event:
                yield event
            before = time.perf_counter()
            chunk = await anext(outcome.rest, None)
            waited += time.perf_counter() - before
    except UpstreamError as exc:
        failure, ending = exc, "upstream_failed"
        tail = encoder.error(exc)
    except (GeneratorExit, asyncio.CancelledError):
        ending = "client_cancelled"
        raise
    else:
        tail = encoder.finish()
    finally:
        aclose = getattr(outcome.rest, "aclose", None)
        if aclose is not None:
            await aclose()
        await outcome.release(failure)
        status, code = (200, None) if failure is None else (failure.status, failure.code)
        if ending == "client_cancelled":  # nginx's 499: the client closed the connection before the end
            status, code = CLIENT_CLOSED, "client_cancelled"
        await after(obs.finish(status, code, waited, ending))
    yield tail
