"""Retrying one deployment after its first try failed, with tenacity.

The policy, per deployment (``retry:`` in the policy file, :class:`~gateway.policy.retry_schema.RetrySpec`):

- which errors: the explicit tuple ``RETRYABLE`` (429, timeouts, 5xx and unreachable, unparseable answers),
  and of those only the ones the same upstream may be asked again (``retry_same``: a TLS failure or a size
  limit would fail the same way, so they go straight to the next candidate);
- how many times: ``attempts`` tries in all, the first included;
- the pause: full jitter over an exponential ceiling (tenacity's ``wait_random_exponential``: uniform in
  0 .. ``min(max_backoff_seconds, backoff_seconds * 2**(n-1))``), or the upstream's ``Retry-After`` when longer;
- when to stop early: the pause would end at or past the deadline of this deployment's attempt, the upstream
  asked to wait longer than :data:`RETRY_AFTER_WAIT_SECONDS` (the next candidate is tried instead), or the
  failed try was the breaker's half-open probe (it re-opened the breaker).

The first try runs bare in the caller, so a request that succeeds never builds a tenacity object (they cost
about 3% of the gateway's CPU when every request went through one). After a retryable failure, :func:`again`
replays that failure into ``AsyncRetrying`` as its attempt 1, and tenacity decides everything after it.
Each try, the replayed one included, is made by the caller's ``call``, which records it for audit and metrics.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

from tenacity import AsyncRetrying, RetryCallState, retry_if_exception, stop_after_attempt, wait_random_exponential
from tenacity.stop import stop_base

from gateway.errors import RETRYABLE, UpstreamError
from gateway.policy.retry_schema import RetrySpec

T = TypeVar("T")
Clock = Callable[[], float]
Sleep = Callable[[float], Awaitable[None]]
RETRY_AFTER_WAIT_SECONDS = 1.0  # the longest upstream Retry-After waited out before retrying the same deployment


def worth_retrying(error: BaseException) -> bool:
    """Whether the same deployment may be asked again after ``error`` (anything else is raised as it is)."""
    return isinstance(error, RETRYABLE) and error.retry_same


def _retry_after(state: RetryCallState) -> float:
    error = state.outcome.exception() if state.outcome is not None else None
    return (error.retry_after or 0.0) if isinstance(error, UpstreamError) else 0.0


@dataclass(frozen=True, slots=True)
class _Pause:
    """The backoff, or the upstream's Retry-After when that is longer."""

    backoff: wait_random_exponential

    def __call__(self, state: RetryCallState) -> float:
        return max(self.backoff(state), _retry_after(state))


class _PastDeadline(stop_base):
    """Stop when the coming pause would end at or after ``deadline`` (on ``clock``)."""

    def __init__(self, deadline: float, clock: Clock) -> None:
        self.deadline, self.clock = deadline, clock

    def __call__(self, retry_state: RetryCallState) -> bool:
        return self.clock() + retry_state.upcoming_sleep >= self.deadline


class _LongRetryAfter(stop_base):
    """Stop when the upstream asked for a longer wait than is worth spending here: the next candidate may answer."""

    def __call__(self, retry_state: RetryCallState) -> bool:
        return _retry_after(retry_state) > RETRY_AFTER_WAIT_SECONDS


def retrying(spec: RetrySpec, deadline: float, clock: Clock, sleep: Sleep) -> AsyncRetrying:
    """The tenacity controller for one deployment's retries within ``deadline``."""
    return AsyncRetrying(
        retry=retry_if_exception(worth_retrying),
        stop=stop_after_attempt(spec.attempts) | _PastDeadline(deadline, clock) | _LongRetryAfter(),
        wait=_Pause(wait_random_exponential(multiplier=spec.backoff_seconds, max=spec.max_backoff_seconds)),
        sleep=sleep,
        reraise=True,  # when it gives up, the last failure itself, not tenacity's RetryError
    )


async def again(
    spec: RetrySpec,
    first: UpstreamError,
    call: Callable[[], Awaitable[T]],
    *,
    deadline: float,
    probe: bool,
    clock: Clock,
    sleep: Sleep,
) -> T:
    """After the first try failed with ``first``: retry ``call`` as ``spec`` says, or raise the last failure."""
    if spec.attempts == 1 or probe or not worth_retrying(first):
        raise first
    replay: UpstreamError | None = first
    async for attempt in retrying(spec, deadline, clock, sleep):
        with attempt:
            if replay is not None:
                failed, replay = replay, None
                raise failed
            return await call()
    raise AssertionError("unreachable: tenacity returns the last try's answer or raises its failure")
