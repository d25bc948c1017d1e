"""gateway/upstream/caller.py: what a failed call leaves behind, how often it retries, how long an attempt may take.

The provider here is a small fake of the Provider protocol (complete and stream), so that a test can
raise what no real upstream makes the adapters raise: a bug, a cancellation. The gate and the store
are the real ones.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from gateway.classify import load_default_classifier
from gateway.errors import AllCandidatesFailed, UpstreamRateLimited, UpstreamTimeout, UpstreamUnavailable
from gateway.policy.decide import Decision, decide
from gateway.policy.policy_set import PolicySet
from gateway.policyfiles.loader import load_policy_dir
from gateway.routing.pipeline import Routing, route
from gateway.state import MemoryStore
from gateway.state.guards import Guards, Outages
from gateway.upstream.caller import Caller
from gateway.upstream.gate import DeploymentGate, breaker_policy
from gateway.upstream.providers.base import Endpoint, Json, Target
from tests.factories import chat, deployment, small_policy, tenant

URLS = {"a": "http://127.0.0.1:9/v1", "b": "http://127.0.0.1:9/v1", "c": "http://127.0.0.1:9/v1"}
ANSWER: Json = {"choices": [{"index": 0, "message": {"role": "assistant", "content": "ok"}}], "usage": {}}
Behaviour = Callable[[Target], Any]  # returns an answer or raises


class FakeProvider:
    """Calls ``behaviour(target)`` for each call and remembers the targets it was given."""

    def __init__(self, behaviour: Behaviour) -> None:
        self.behaviour = behaviour
        self.targets: list[Target] = []

    async def complete(self, endpoint: Endpoint, target: Target, body: Json) -> Json:
        self.targets.append(target)
        result = self.behaviour(target)
        if asyncio.iscoroutine(result):
            result = await result
        return dict(result)

    async def stream(self, endpoint: Endpoint, target: Target, body: Json) -> AsyncIterator[Json]:
        yield await self.complete(endpoint, target, body)

    async def aclose(self) -> None:
        pass


def policy(tmp_path: Path, **deployment_fields: Any) -> PolicySet:
    deployments = {
        "us-open-a": deployment("us-open", URLS["a"], caps={"max_concurrency": 4}, **deployment_fields),
        "us-open-b": deployment("us-open", URLS["b"], **deployment_fields),
    }
    tenants = {"open": tenant("open-key", budget={"daily_usd": 1.0}), "other": tenant("other-key")}
    state = {"breaker": {"failures": 4, "window_seconds": 30, "cooldown_seconds": 30}}
    routes = {"auto": {"tiers": {"simple": ["us-open"], "standard": ["us-open"], "complex": ["us-open"]}}}
    directory = small_policy(tmp_path / "p", URLS, deployments=deployments, tenants=tenants, state=state, routes=routes)
    return load_policy_dir(directory, {})


def caller_for(provider: FakeProvider, store: MemoryStore) -> Caller:
    return Caller(lambda kind: provider, DeploymentGate(store, Outages()), {})


def named(policy: PolicySet, tenant_id: str = "open", model: str = "us-open") -> Decision:
    return decide(policy, tenant_id, chat(model=model), load_default_classifier())


async def in_flight(store: MemoryStore, deployment_id: str = "us-open-a") -> int:
    return await store.leases.held(f"lease:{deployment_id}", time.time())


@pytest.mark.anyio
@pytest.mark.parametrize("raised", [RuntimeError("a bug"), asyncio.CancelledError()], ids=["bug", "cancelled"])
async def test_a_lease_goes_back_whatever_the_call_raises(tmp_path: Path, raised: BaseException) -> None:
    loaded, store = policy(tmp_path), MemoryStore()

    def fail(target: Target) -> Json:
        raise raised

    caller = caller_for(FakeProvider(fail), store)
    for _ in range(6):  # more than max_concurrency: a leaked lease would turn these into at_capacity skips
        with pytest.raises(type(raised)):
            await caller.complete(loaded, named(loaded), chat(model="us-open"), 10)
    assert await in_flight(store) == 0


@pytest.mark.anyio
async def test_a_budget_reservation_goes_back_when_the_call_raises_a_bug(tmp_path: Path) -> None:
    loaded, store = policy(tmp_path), MemoryStore()

    def fail(target: Target) -> Json:
        raise RuntimeError("a bug")

    caller = caller_for(FakeProvider(fail), store)
    routing = Routing(loaded, caller, Guards(store), caller.gate)
    body = b'{"model": "us-open", "messages": [{"role": "user", "content": "hi"}]}'
    with pytest.raises(RuntimeError):
        await route(routing, "chat", body, {"authorization": "Bearer open-key"}, lambda decision, text: None)
    spent = await routing.guards.budget_usage(loaded)
    assert spent[("open", "daily")] == 0.0, "the reservation was settled at zero"


@pytest.mark.anyio
async def test_retries_of_one_request_count_once_against_the_breaker(tmp_path: Path) -> None:
    loaded, store = policy(tmp_path, max_retries=3), MemoryStore()

    def fail(target: Target) -> Json:
        raise UpstreamUnavailable(f"deployment {target.deployment!r} answered 500")

    caller = caller_for(FakeProvider(fail), store)
    with pytest.raises(AllCandidatesFailed):
        await caller.complete(loaded, named(loaded, "other"), chat(model="us-open"), 10)
    views = {v.deployment: v for v in await store.breakers.view(["us-open-a"], breaker_policy(loaded), time.time())}
    assert views["us-open-a"].failures == 1, "four tries, one failure counted"


@pytest.mark.anyio
async def test_a_long_upstream_retry_after_moves_on_and_reaches_the_client(tmp_path: Path) -> None:
    loaded, store = policy(tmp_path, max_retries=3), MemoryStore()

    def limited(target: Target) -> Json:
        raise UpstreamRateLimited(f"deployment {target.deployment!r} answered 429", retry_after=3600)

    provider = FakeProvider(limited)
    started = time.monotonic()
    with pytest.raises(AllCandidatesFailed) as info:
        await caller_for(provider, store).complete(loaded, named(loaded), chat(model="us-open"), 10)
    assert time.monotonic() - started < 1.0
    assert [t.deployment for t in provider.targets] == ["us-open-a", "us-open-b"], "no retry within the hour"
    assert info.value.status == 429 and info.value.retry_after == 3600


@pytest.mark.anyio
async def test_a_short_upstream_retry_after_is_waited_out(tmp_path: Path) -> None:
    loaded, store = policy(tmp_path, max_retries=1), MemoryStore()
    calls: list[float] = []

    def limited_once(target: Target) -> Json:
        calls.append(time.monotonic())
        if len(calls) == 1:
            raise UpstreamRateLimited("answered 429", retry_after=0.3)
        return ANSWER

    completed = await caller_for(FakeProvider(limited_once), store).complete(
        loaded, named(loaded), chat(model="us-open"), 10
    )
    assert completed.deployment.id == "us-open-a" and calls[1] - calls[0] >= 0.3


@pytest.mark.anyio
async def test_an_attempt_with_a_fallback_after_it_leaves_room_for_the_fallback(tmp_path: Path) -> None:
    loaded, store = policy(tmp_path, timeout_seconds=10), MemoryStore()

    async def hang_then_answer(target: Target) -> Json:
        if target.deployment == "us-open-a":
            await asyncio.sleep(target.timeout_seconds + 0.05)
            raise UpstreamTimeout(f"deployment {target.deployment!r} timed out")
        return ANSWER

    provider = FakeProvider(hang_then_answer)
    completed = await caller_for(provider, store).complete(loaded, named(loaded), chat(model="us-open"), 2.0)
    assert completed.deployment.id == "us-open-b"
    first, second = provider.targets
    assert first.timeout_seconds == pytest.approx(1.5, abs=0.05), "a quarter of the deadline kept back"
    assert second.timeout_seconds <= 0.5


@pytest.mark.anyio
async def test_an_answer_with_malformed_usage_is_a_bad_answer_that_falls_back(tmp_path: Path) -> None:
    loaded, store = policy(tmp_path, max_retries=0), MemoryStore()

    def usage_as_text(target: Target) -> Json:
        if target.deployment == "us-open-a":
            return ANSWER | {"usage": {"prompt_tokens": "12", "completion_tokens": 3, "total_tokens": 15}}
        return ANSWER | {"usage": {"prompt_tokens": 12, "completion_tokens": 3, "total_tokens": 15}}

    completed = await caller_for(FakeProvider(usage_as_text), store).complete(
        loaded, named(loaded), chat(model="us-open"), 10
    )
    assert completed.deployment.id == "us-open-b"
    assert completed.attempts[0].code == "upstream_bad_response" and "usage.prompt_tokens" in str(
        completed.attempts[0].error
    )
