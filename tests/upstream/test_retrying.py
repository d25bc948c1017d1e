"""gateway/upstream/retrying.py: the tenacity retry policy of one deployment, on a fake clock.

Tenacity is given a clock and a sleep that only advances it, so pauses are read, not waited. The caller's
part (what each try leaves behind, the fallback after the last one) is in the second half, with the real
gate and store; retries through a real gateway in front of the stand-ins are in test_retry_gateway.py.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from gateway.errors import (
    AllCandidatesFailed,
    UpstreamError,
    UpstreamRateLimited,
    UpstreamRejected,
    UpstreamTimeout,
    UpstreamUnavailable,
)
from gateway.policy.retry_schema import RetrySpec
from gateway.state import MemoryStore
from gateway.state.guards import Outages
from gateway.upstream import retrying
from gateway.upstream.caller import Caller
from gateway.upstream.gate import DeploymentGate
from gateway.upstream.providers.base import Json, Target
from tests.factories import chat
from tests.upstream.test_caller import ANSWER, FakeProvider, named, policy


class FakeTime:
    """A monotonic clock that moves only when slept on (or when a test moves it)."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.pauses: list[float] = []

    def clock(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.pauses.append(seconds)
        self.now += seconds


class Calls:
    """A retried call that raises ``errors`` in turn, then answers ``"ok"`` (or raises ``always``); counts calls."""

    def __init__(
        self,
        *errors: BaseException,
        always: BaseException | None = None,
        time: FakeTime | None = None,
        takes: float = 0,
    ) -> None:
        self.errors, self.always, self.count, self.time, self.takes = list(errors), always, 0, time, takes

    async def __call__(self) -> str:
        self.count += 1
        if self.time is not None:
            self.time.now += self.takes
        if self.errors:
            raise self.errors.pop(0)
        if self.always is not None:
            raise self.always
        return "ok"


def down() -> UpstreamUnavailable:
    return UpstreamUnavailable("deployment 'x' answered 503")


async def again(spec: RetrySpec, first: UpstreamError, call: Calls, time: FakeTime, **options: Any) -> str:
    options = {"deadline": time.now + 60, "probe": False} | options
    return await retrying.again(spec, first, call, clock=time.clock, sleep=time.sleep, **options)


@pytest.mark.anyio
@pytest.mark.parametrize("tries", [1, 2, 5])
async def test_attempts_counts_every_try_the_first_included(tries: int) -> None:
    time, call = FakeTime(), Calls(always=down())
    with pytest.raises(UpstreamUnavailable):
        await again(RetrySpec(attempts=tries), down(), call, time)
    assert call.count == tries - 1, "the first try was made (and failed) before tenacity"
    assert len(time.pauses) == tries - 1


@pytest.mark.anyio
async def test_a_retry_that_answers_returns_its_answer() -> None:
    time, call = FakeTime(), Calls(down(), UpstreamTimeout("timed out"))
    assert await again(RetrySpec(attempts=5), down(), call, time) == "ok"
    assert call.count == 3 and len(time.pauses) == 3


@pytest.mark.anyio
async def test_backoff_is_full_jitter_under_a_doubling_ceiling_capped_at_max_backoff_seconds() -> None:
    spec = RetrySpec(attempts=6, backoff_seconds=0.1, max_backoff_seconds=0.5)
    ceilings = [0.1, 0.2, 0.4, 0.5, 0.5]  # before tries 2..6
    columns: list[list[float]] = [[] for _ in ceilings]
    for _ in range(300):
        time = FakeTime()
        with pytest.raises(UpstreamUnavailable):
            await again(spec, down(), Calls(always=down()), time)
        for column, pause in zip(columns, time.pauses, strict=True):
            column.append(pause)
    for ceiling, pauses in zip(ceilings, columns, strict=True):
        assert all(0 <= p <= ceiling for p in pauses), f"a pause above {ceiling}"
        assert max(pauses) > 0.9 * ceiling and min(pauses) < 0.1 * ceiling, "spread over the whole range"


@pytest.mark.anyio
async def test_no_pause_at_all_with_backoff_zero() -> None:
    time = FakeTime()
    with pytest.raises(UpstreamUnavailable):
        await again(RetrySpec(attempts=4, backoff_seconds=0, max_backoff_seconds=0), down(), Calls(always=down()), time)
    assert time.pauses == [0, 0, 0]


@pytest.mark.anyio
async def test_it_stops_when_the_next_pause_would_end_past_the_deadline() -> None:
    time = FakeTime()
    call = Calls(always=down(), time=time, takes=1.0)  # every try takes a second to fail
    spec = RetrySpec(attempts=10, backoff_seconds=0, max_backoff_seconds=0)
    with pytest.raises(UpstreamUnavailable):
        await again(spec, down(), call, time, deadline=time.now + 2.5)
    assert call.count == 3, "tries at +0, +1, +2 s; at +3 s the deadline has passed"


@pytest.mark.anyio
async def test_a_short_retry_after_is_waited_out_unless_it_ends_past_the_deadline() -> None:
    time, call = FakeTime(), Calls()
    limited = UpstreamRateLimited("answered 429", retry_after=0.4)
    spec = RetrySpec(attempts=2, backoff_seconds=0.01, max_backoff_seconds=0.01)
    assert await again(spec, limited, call, time) == "ok"
    assert time.pauses == [0.4], "the upstream's wait, longer than the backoff"

    time, call = FakeTime(), Calls()
    with pytest.raises(UpstreamRateLimited):
        await again(spec, limited, call, time, deadline=time.now + 0.3)
    assert call.count == 0 and time.pauses == []


@pytest.mark.anyio
async def test_a_long_retry_after_is_not_waited_out_here() -> None:
    time, call = FakeTime(), Calls()
    limited = UpstreamRateLimited("answered 429", retry_after=retrying.RETRY_AFTER_WAIT_SECONDS + 0.5)
    with pytest.raises(UpstreamRateLimited) as info:
        await again(RetrySpec(attempts=5), limited, call, time, deadline=time.now + 3600)
    assert info.value is limited and call.count == 0 and time.pauses == []


@pytest.mark.anyio
async def test_errors_outside_the_retryable_tuple_are_not_retried() -> None:
    rejected = UpstreamRejected("deployment 'x' answered 400")
    time, call = FakeTime(), Calls()
    with pytest.raises(UpstreamRejected):
        await again(RetrySpec(attempts=5), rejected, call, time)
    assert call.count == 0

    call = Calls(UpstreamRejected("deployment 'x' answered 400"))  # a retry that the upstream rejects
    with pytest.raises(UpstreamRejected):
        await again(RetrySpec(attempts=5), down(), call, time)
    assert call.count == 1

    call = Calls(RuntimeError("a bug"))
    with pytest.raises(RuntimeError):
        await again(RetrySpec(attempts=5), down(), call, time)
    assert call.count == 1


@pytest.mark.anyio
async def test_an_error_that_would_fail_the_same_way_again_only_falls_back() -> None:
    tls = down()
    tls.retry_same = False  # what the adapters set for TLS failures and size limits
    time, call = FakeTime(), Calls()
    with pytest.raises(UpstreamUnavailable):
        await again(RetrySpec(attempts=5), tls, call, time)
    assert call.count == 0


@pytest.mark.anyio
async def test_a_failed_breaker_probe_is_not_retried() -> None:
    time, call = FakeTime(), Calls()
    with pytest.raises(UpstreamUnavailable):
        await again(RetrySpec(attempts=5), down(), call, time, probe=True)
    assert call.count == 0


@pytest.mark.anyio
async def test_a_cancelled_pause_cancels_the_retry() -> None:
    async def forever(seconds: float) -> None:
        await asyncio.sleep(3600)

    call = Calls()
    task = asyncio.create_task(
        retrying.again(
            RetrySpec(attempts=3), down(), call, deadline=1e12, probe=False, clock=lambda: 0.0, sleep=forever
        )
    )
    await asyncio.sleep(0.01)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert call.count == 0


# -- through the caller ---------------------------------------------------------------------------------------


def fake_caller(provider: FakeProvider, store: MemoryStore, time: FakeTime) -> Caller:
    return Caller(lambda kind: provider, DeploymentGate(store, Outages()), {}, clock=time.clock, sleep=time.sleep)


@pytest.mark.anyio
async def test_every_try_is_an_attempt_and_the_fallback_comes_after_the_last(tmp_path: Path) -> None:
    loaded, store, time = policy(tmp_path, retry={"attempts": 3}), MemoryStore(), FakeTime()

    def first_down(target: Target) -> Json:
        if target.deployment == "us-open-a":
            raise UpstreamUnavailable(f"deployment {target.deployment!r} answered 503")
        return ANSWER

    provider = FakeProvider(first_down)
    completed = await fake_caller(provider, store, time).complete(loaded, named(loaded), chat(model="us-open"), 10)
    assert [t.deployment for t in provider.targets] == ["us-open-a"] * 3 + ["us-open-b"]
    assert [(a.deployment, a.code) for a in completed.attempts] == [("us-open-a", "upstream_unavailable")] * 3 + [
        ("us-open-b", "ok")
    ]
    assert len(time.pauses) == 2 and all(p <= 0.1 for p in time.pauses), "default backoff: 0.05, then 0.1"


@pytest.mark.anyio
async def test_a_success_at_the_first_try_never_pauses(tmp_path: Path) -> None:
    loaded, store, time = policy(tmp_path, retry={"attempts": 5}), MemoryStore(), FakeTime()
    provider = FakeProvider(lambda target: ANSWER)
    completed = await fake_caller(provider, store, time).complete(loaded, named(loaded), chat(model="us-open"), 10)
    assert len(completed.attempts) == 1 and time.pauses == []


@pytest.mark.anyio
async def test_the_legacy_max_retries_still_counts_retries(tmp_path: Path) -> None:
    loaded, store, time = policy(tmp_path, max_retries=1), MemoryStore(), FakeTime()

    def fail(target: Target) -> Json:
        raise UpstreamTimeout(f"deployment {target.deployment!r} timed out")

    provider = FakeProvider(fail)
    with pytest.raises(AllCandidatesFailed) as info:
        await fake_caller(provider, store, time).complete(loaded, named(loaded), chat(model="us-open"), 10)
    assert [t.deployment for t in provider.targets] == ["us-open-a", "us-open-a", "us-open-b", "us-open-b"]
    assert info.value.status == 504 and len(info.value.attempts) == 4
