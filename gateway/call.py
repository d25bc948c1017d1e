"""Call the ranked deployments: retry each with jittered backoff, then fall back to the next.

Only deployments in ``decision.ranked`` are ever called, so a fallback never leaves the policy.
A stream counts as started once its first chunk arrived; before that it may still fall back.
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import TypeVar

from tenacity import (
    AsyncRetrying,
    retry_if_exception_type,
    stop_after_attempt,
    stop_before_delay,
    wait_random_exponential,
)

from gateway import shape
from gateway.errors import RETRYABLE, AllCandidatesFailed, UpstreamBadResponse, UpstreamError
from gateway.health import HealthBoard
from gateway.policy.decide import Decision
from gateway.policy.policy_set import Deployment
from gateway.providers.base import Json, Provider, Target
from gateway.request import ChatRequest

T = TypeVar("T")
log = logging.getLogger("gateway.call")
Providers = Callable[[str], Provider]  # provider kind -> adapter


@dataclass(frozen=True, slots=True)
class Attempt:
    deployment: str
    error: str | None  # None when it succeeded
    seconds: float
    code: str = "ok"  # the error code, for metrics labels


@dataclass(frozen=True, slots=True)
class Completed:
    deployment: Deployment
    body: Json
    attempts: tuple[Attempt, ...]


@dataclass(frozen=True, slots=True)
class Streaming:
    deployment: Deployment
    first: Json
    rest: AsyncIterator[Json]
    attempts: tuple[Attempt, ...]


@dataclass
class Caller:
    providers: Providers
    health: HealthBoard
    env: Mapping[str, str]  # where api_key_env names are looked up
    backoff_seconds: float = 0.05

    async def complete(self, decision: Decision, request: ChatRequest, deadline_seconds: float) -> Completed:
        async def once(dep: Deployment, target: Target) -> Json:
            body = shape.upstream_body(request, target.upstream_model)
            return await self.providers(dep.spec.provider).complete(request.endpoint, target, body)

        dep, body, attempts = await self._first_success(decision, deadline_seconds, once)
        return Completed(dep, shape.response(body, dep.model_id), attempts)

    async def stream(self, decision: Decision, request: ChatRequest, deadline_seconds: float) -> Streaming:
        async def once(dep: Deployment, target: Target) -> tuple[Json, AsyncIterator[Json]]:
            body = shape.upstream_body(request, target.upstream_model)
            chunks = self.providers(dep.spec.provider).stream(request.endpoint, target, body)
            try:
                return await anext(chunks), chunks
            except StopAsyncIteration:
                raise UpstreamBadResponse(f"deployment {dep.id!r} sent an empty stream") from None

        dep, (first, rest), attempts = await self._first_success(decision, deadline_seconds, once)
        return Streaming(dep, first, rest, attempts)

    async def _first_success(
        self,
        decision: Decision,
        deadline_seconds: float,
        once: Callable[[Deployment, Target], Awaitable[T]],
    ) -> tuple[Deployment, T, tuple[Attempt, ...]]:
        attempts: list[Attempt] = []
        deadline = time.monotonic() + deadline_seconds
        for dep in decision.ranked:
            if time.monotonic() >= deadline:
                break
            try:
                result = await self._with_retries(dep, deadline, once, attempts)
            except RETRYABLE:
                self.health.failure(dep.id)
                continue
            except UpstreamError as exc:
                exc.attempts = tuple(attempts)
                raise
            self.health.success(dep.id)
            return dep, result, tuple(attempts)
        error = _all_failed(decision, attempts)
        error.attempts = tuple(attempts)
        raise error

    async def _with_retries(
        self,
        dep: Deployment,
        deadline: float,
        once: Callable[[Deployment, Target], Awaitable[T]],
        attempts: list[Attempt],
    ) -> T:
        retrying = AsyncRetrying(
            retry=retry_if_exception_type(RETRYABLE),
            stop=stop_after_attempt(dep.spec.max_retries + 1) | stop_before_delay(max(deadline - time.monotonic(), 0)),
            wait=wait_random_exponential(multiplier=self.backoff_seconds, max=2.0),
            reraise=True,
        )
        async for attempt in retrying:
            with attempt:
                started = time.monotonic()
                try:
                    result = await once(dep, self._target(dep, deadline - started))
                except UpstreamError as exc:
                    log.warning("attempt on deployment %s failed: %s", dep.id, exc.code)
                    elapsed = time.monotonic() - started
                    attempts.append(Attempt(dep.id, f"{exc.code}: {exc.message}", elapsed, exc.code or "error"))
                    raise
                attempts.append(Attempt(dep.id, None, time.monotonic() - started))
                return result
        raise AssertionError("unreachable: tenacity reraises the last error")

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


def _all_failed(decision: Decision, attempts: list[Attempt]) -> AllCandidatesFailed:
    tried = "; ".join(f"{a.deployment}: {a.error}" for a in attempts if a.error) or "deadline reached before any call"
    codes = {a.code for a in attempts if a.error}
    if codes == {"rate_limit_exceeded"}:
        status, code = 429, "rate_limit_exceeded"
    elif codes == {"upstream_timeout"}:
        status, code = 504, "upstream_timeout"
    elif codes == {"upstream_bad_response"}:
        status, code = 502, "upstream_bad_response"
    else:
        status, code = 503, "all_candidates_failed"
    return AllCandidatesFailed(
        f"Every allowed deployment failed ({', '.join(d.id for d in decision.ranked)}). Tried: {tried}",
        status=status,
        code=code,
    )
