"""Call the ranked deployments: retry each as its policy says (:mod:`.retrying`), then fall back to the next.

Only deployments in ``decision.ranked`` are ever called, so a fallback never leaves the policy.
Each deployment first passes the gate (breaker, concurrency cap, RPM cap); one that does not is
skipped like an unhealthy one. A stream counts as started once its first chunk arrived; before
that it may still fall back. Its concurrency lease is held until the stream ends (``release``), and
its outcome reaches the breaker then: a stream that breaks after its first chunk is a failure.

What reaches the shared breaker is kept to what says something about the deployment:
- errors that the request caused (``UpstreamRejected``: 4xx, input errors a server reports as 5xx,
  a value litellm cannot translate) are not counted and not retried;
- a request counts at most one failure per deployment, however often it is retried there;
- each tenant also has a breaker of its own per deployment that opens at half the threshold, and
  its failures stop counting for everyone once it has opened (see :mod:`gateway.upstream.gate`).

An attempt on a deployment that has candidates after it ends early enough to leave a quarter of the
remaining deadline (at most 30 s) for them, so a hung first deployment still falls back.
An upstream's ``Retry-After`` is honoured: up to a second is waited out before a retry there; a
longer one moves on to the next candidate, and a 429 to the client carries the shortest one seen.
The first try on a deployment runs bare; tenacity is entered only after it failed (:mod:`.retrying`).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass, replace
from functools import partial
from typing import TypeVar

from gateway.errors import RETRYABLE, AllCandidatesFailed, UpstreamBadResponse, UpstreamError
from gateway.policy.decide import Decision
from gateway.policy.policy_set import Deployment, PolicySet
from gateway.request import ChatRequest
from gateway.upstream import retrying, shape
from gateway.upstream.gate import DeploymentGate, Entry
from gateway.upstream.providers.anthropic_passthrough import AnthropicPassthrough, speaks
from gateway.upstream.providers.base import Json, Provider, Target
from gateway.upstream.providers.responses_passthrough import ResponsesPassthrough
from gateway.upstream.providers.responses_passthrough import speaks as speaks_responses

T = TypeVar("T")
log = logging.getLogger("gateway.call")
Providers = Callable[[str], Provider]  # provider kind -> adapter
CAPACITY_SKIPS = frozenset({"skipped_at_capacity", "skipped_rpm_cap"})
FALLBACK_SHARE = 0.25  # of the remaining deadline, kept for later candidates ...
FALLBACK_MAX_SECONDS = 30.0  # ... but never more than this


@dataclass(frozen=True, slots=True)
class Attempt:
    deployment: str
    error: str | None  # None when it succeeded
    seconds: float
    code: str = "ok"  # the error code (or skipped_<reason>), for metrics labels
    retry_after: float | None = None  # seconds, when the upstream said so

    @property
    def skipped(self) -> bool:
        return self.code.startswith("skipped_")


@dataclass(frozen=True, slots=True)
class Completed:
    deployment: Deployment
    body: Json
    attempts: tuple[Attempt, ...]
    passthrough: bool = False  # the body is the deployment's own answer in the client's API (request.native)


@dataclass(frozen=True, slots=True)
class Streaming:
    deployment: Deployment
    first: Json
    rest: AsyncIterator[Json]
    attempts: tuple[Attempt, ...]
    # when the stream ends: its outcome to the breaker (the error that ended it, or None), the lease back
    release: Callable[[UpstreamError | None], Awaitable[None]]
    passthrough: bool = False  # the chunks are the deployment's own events in the client's API (request.native)


@dataclass
class Caller:
    providers: Providers
    gate: DeploymentGate
    env: Mapping[str, str]  # where api_key_env names are looked up
    passthrough: AnthropicPassthrough | None = None  # for deployments that take the client's own body
    clock: retrying.Clock = time.monotonic  # deadlines and attempt times; tests give a fake one with ``sleep``
    sleep: retrying.Sleep = asyncio.sleep  # the pause between retries
    responses: ResponsesPassthrough | None = None  # for deployments with api: responses

    def _passes(self, dep: Deployment, request: ChatRequest) -> bool:
        return self._native(dep, request) is not None

    def _native(self, dep: Deployment, request: ChatRequest) -> AnthropicPassthrough | ResponsesPassthrough | None:
        """The adapter that sends the client's own body to this deployment, if it speaks the client's API."""
        if self.passthrough is not None and speaks(dep.spec.provider, request.native):
            return self.passthrough
        if self.responses is not None and speaks_responses(dep.spec.api, request.native):
            return self.responses
        return None

    async def complete(
        self, policy: PolicySet, decision: Decision, request: ChatRequest, deadline_seconds: float
    ) -> Completed:
        async def once(dep: Deployment, target: Target) -> Json:
            if request.traceparent is not None:
                target = replace(target, traceparent=request.traceparent)
            if request.native is not None and (native := self._native(dep, request)) is not None:
                answer = await native.complete(target, request.native)
            else:
                body = shape.upstream_body(request, target.upstream_model)
                answer = await self.providers(dep.spec.provider).complete(request.endpoint, target, body)
            # usage is what the tenant is billed by: a whole answer with mistyped counts is a bad answer (502,
            # retried, falls back); a stream's cannot be refused after its first byte and is estimated instead
            usage = answer.get("usage")
            if usage is not None and (problem := shape.usage_problem(usage, require_prompt=False)) is not None:
                raise UpstreamBadResponse(f"deployment {dep.id!r} answered with malformed usage ({problem})")
            return answer

        dep, body, attempts, entry = await self._first_success(policy, decision, deadline_seconds, once, True)
        await self.gate.leave(entry)
        return Completed(dep, shape.response(body, dep.model_id), attempts, self._passes(dep, request))

    async def stream(
        self, policy: PolicySet, decision: Decision, request: ChatRequest, deadline_seconds: float
    ) -> Streaming:
        async def once(dep: Deployment, target: Target) -> tuple[Json, AsyncIterator[Json]]:
            if request.traceparent is not None:
                target = replace(target, traceparent=request.traceparent)
            if request.native is not None and (native := self._native(dep, request)) is not None:
                chunks = native.stream(target, request.native)
            else:
                body = shape.upstream_body(request, target.upstream_model)
                chunks = self.providers(dep.spec.provider).stream(request.endpoint, target, body)
            try:
                return await anext(chunks), chunks
            except StopAsyncIteration:
                raise UpstreamBadResponse(f"deployment {dep.id!r} sent an empty stream") from None

        dep, (first, rest), attempts, entry = await self._first_success(policy, decision, deadline_seconds, once, False)
        started = self.clock()

        async def release(error: UpstreamError | None) -> None:
            try:
                if error is None or error.retryable:
                    await self.gate.record(policy, entry, error is None, self.clock() - started)
            finally:
                await self.gate.leave(entry)

        return Streaming(dep, first, rest, attempts, release, self._passes(dep, request))

    async def _first_success(
        self,
        policy: PolicySet,
        decision: Decision,
        deadline_seconds: float,
        once: Callable[[Deployment, Target], Awaitable[T]],
        record_success: bool,
    ) -> tuple[Deployment, T, tuple[Attempt, ...], Entry]:
        """The first deployment that answers, with its gate entry still held (the caller leaves it)."""
        attempts: list[Attempt] = []
        deadline = self.clock() + deadline_seconds
        for number, dep in enumerate(decision.ranked, 1):
            if self.clock() >= deadline:
                break
            entry = await self.gate.enter(policy, dep, decision.tenant)
            if isinstance(entry, str):
                attempts.append(Attempt(dep.id, f"skipped: {entry.replace('_', ' ')}", 0.0, f"skipped_{entry}"))
                continue
            own_deadline = deadline if number == len(decision.ranked) else _leave_room(deadline, self.clock())
            held = True
            try:
                result = await self._with_retries(policy, dep, entry, own_deadline, once, attempts, record_success)
                held = False
            except UpstreamError as exc:
                if isinstance(exc, RETRYABLE):
                    continue
                exc.attempts = tuple(attempts)
                raise
            finally:  # whatever was raised (a bug, a cancelled request), the lease goes back
                if held:
                    await asyncio.shield(self.gate.leave(entry))
            return dep, result, tuple(attempts), entry
        error = _all_failed(decision, attempts)
        error.attempts = tuple(attempts)
        raise error

    async def _with_retries(
        self,
        policy: PolicySet,
        dep: Deployment,
        entry: Entry,
        deadline: float,
        once: Callable[[Deployment, Target], Awaitable[T]],
        attempts: list[Attempt],
        record_success: bool,
    ) -> T:
        """Call one deployment; after a retryable failure, again as its ``retry:`` policy says (:mod:`.retrying`).

        The first try runs bare: tenacity (and the call it repeats) is built only on the failure path.
        """
        try:
            return await self._attempt(policy, dep, entry, deadline, once, attempts, record_success, False)
        except UpstreamError as exc:
            failure = exc
        # a request counts at most one failure per deployment: the first one, when it was retryable
        again = partial(self._attempt, policy, dep, entry, deadline, once, attempts, record_success, failure.retryable)
        return await retrying.again(
            dep.spec.retry, failure, again, deadline=deadline, probe=entry.probe, clock=self.clock, sleep=self.sleep
        )

    async def _attempt(
        self,
        policy: PolicySet,
        dep: Deployment,
        entry: Entry,
        deadline: float,
        once: Callable[[Deployment, Target], Awaitable[T]],
        attempts: list[Attempt],
        record_success: bool,
        counted: bool,  # a failure of this request was already counted against the deployment's breaker
    ) -> T:
        """One try, kept in ``attempts`` (audit, metrics, spans) and reported to the breaker."""
        started = self.clock()
        try:
            result = await once(dep, self._target(dep, deadline - started))
        except UpstreamError as exc:
            elapsed = self.clock() - started
            log.warning("attempt on deployment %s failed: %s", dep.id, exc.code)
            attempts.append(
                Attempt(dep.id, f"{exc.code}: {exc.message}", elapsed, exc.code or "error", exc.retry_after)
            )
            if exc.retryable and not counted:
                await self.gate.record(policy, entry, False, elapsed)
            raise
        elapsed = self.clock() - started
        attempts.append(Attempt(dep.id, None, elapsed))
        if record_success:
            await self.gate.record(policy, entry, True, elapsed)
        return result

    def _target(self, dep: Deployment, remaining: float) -> Target:
        spec = dep.spec
        return Target(
            deployment=dep.id,
            provider=spec.provider,
            upstream_model=spec.upstream_model or dep.model_id,
            base_url=spec.base_url,
            api_key=self.env.get(spec.api_key_env) if spec.api_key_env else None,
            timeout_seconds=max(min(spec.timeout_seconds, remaining), 0.001),
        )


def _leave_room(deadline: float, now: float) -> float:
    """The time by which a deployment with candidates after it must have answered, retries included."""
    remaining = deadline - now
    return deadline - min(remaining * FALLBACK_SHARE, FALLBACK_MAX_SECONDS)


def _all_failed(decision: Decision, attempts: list[Attempt]) -> AllCandidatesFailed:
    tried = "; ".join(f"{a.deployment}: {a.error}" for a in attempts if a.error) or "deadline reached before any call"
    codes = {a.code for a in attempts if a.error}
    if codes and codes <= CAPACITY_SKIPS:
        status, code = 429, "deployments_at_capacity"
    elif codes == {"rate_limit_exceeded"}:
        status, code = 429, "rate_limit_exceeded"
    elif codes == {"upstream_timeout"}:
        status, code = 504, "upstream_timeout"
    elif codes == {"upstream_bad_response"}:
        status, code = 502, "upstream_bad_response"
    else:
        status, code = 503, "all_candidates_failed"
    waits = [a.retry_after for a in attempts if a.retry_after is not None]
    return AllCandidatesFailed(
        f"Every allowed deployment failed ({', '.join(d.id for d in decision.ranked)}). Tried: {tried}",
        status=status,
        code=code,
        retry_after=min(waits) if status == 429 and waits else None,
    )
