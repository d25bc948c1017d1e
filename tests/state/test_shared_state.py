"""Replicas agreeing through one real Redis: rate limits, budgets, breakers, cache; and Redis going away."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from gateway.routing.auth import hash_key
from gateway.standin.control import Fault
from tests.audit_file import audit_entries
from tests.conftest import OPENAI_KEY, Upstreams
from tests.factories import deployment, small_policy, tenant
from tests.processes import Served, serve

HI = {"model": "auto", "messages": [{"role": "user", "content": "hi"}]}


def shared_policy(directory: Path, upstreams: Upstreams) -> Path:
    v1 = upstreams.v1()
    tenants = {
        "open": tenant("open-key"),
        "limited": tenant("limited-key", limits={"rpm": 10}),
        "budgeted": tenant("budget-key", budget={"daily_usd": 0.0005}),
        "strict": tenant("strict-key", budget={"daily_usd": 100, "fail": "closed"}),
        "cached": tenant("cached-key", cache={"ttl_seconds": 60}),
        "cached-too": tenant("cached-too-key", cache={"ttl_seconds": 60}),
    }
    deployments = {
        "cn-open-a": deployment("cn-open", v1["a"], max_retries=0),
        "cn-open-b": deployment("cn-open", v1["b"], max_retries=0, price={"input": 0.15, "output": 0.3}),
        "us-open-a": deployment("us-open", v1["a"], max_retries=0),
        "frontier-api": deployment("frontier", v1["c"], self_hosted=False, operator="F", api_key_env="FRONTIER_KEY"),
    }
    return small_policy(
        directory, v1, tenants=tenants, deployments=deployments,
        state={"breaker": {"failures": 3, "window_seconds": 30, "cooldown_seconds": 60}},
        admin={"keys": [{"name": "ops", "sha256": hash_key("admin-key")}]},
    )  # fmt: skip


@pytest.fixture
def replicas(tmp_path: Path, upstreams: Upstreams, redis_server: Any) -> Iterator[tuple[Served, Served]]:
    policy = shared_policy(tmp_path / "p", upstreams)
    env = {"REDIS_URL": redis_server.url, "FRONTIER_KEY": OPENAI_KEY}
    with (
        serve(policy, env, "--audit-log", str(tmp_path / "a1.jsonl"), "--audit-flush-seconds", "0") as one,
        serve(policy, env, "--audit-log", str(tmp_path / "a2.jsonl"), "--audit-flush-seconds", "0") as two,
    ):
        yield one, two


async def _burst(urls: list[str], key: str, count: int, body: dict[str, Any] = HI) -> list[httpx.Response]:
    async with httpx.AsyncClient(timeout=30, headers={"authorization": f"Bearer {key}"}) as client:
        calls = [client.post(urls[i % len(urls)] + "/v1/chat/completions", json=body) for i in range(count)]
        return list(await asyncio.gather(*calls))


def test_rate_limit_is_exact_across_two_replicas(replicas: tuple[Served, Served]) -> None:
    responses = asyncio.run(_burst([r.url for r in replicas], "limited-key", 30))
    statuses = sorted(r.status_code for r in responses)
    assert statuses.count(200) == 10 and statuses.count(429) == 20
    refused = next(r for r in responses if r.status_code == 429)
    assert refused.json()["error"]["code"] == "rate_limit_exceeded" and int(refused.headers["retry-after"]) >= 1
    assert "10 of 10 requests per minute" in refused.json()["error"]["message"]
    for replica in replicas:  # exact because Redis answered every time, not because it failed open
        assert "gateway_state_errors_total{" not in httpx.get(replica.url + "/metrics").text


def test_budget_overshoots_by_at_most_one_estimate(replicas: tuple[Served, Served], tmp_path: Path) -> None:
    body = {"model": "frontier", "max_tokens": 50, "messages": [{"role": "user", "content": "hi"}]}
    responses = asyncio.run(_burst([r.url for r in replicas], "budget-key", 20, body))
    served = [r for r in responses if r.status_code == 200]
    refused = [r for r in responses if r.status_code == 429]
    assert served and refused and len(served) + len(refused) == 20
    assert refused[0].json()["error"]["code"] == "insufficient_quota"
    estimate = (1 * 2.0 + 50 * 4.0) / 1e6  # the reservation: prompt estimate and max_tokens at frontier's prices
    assert _spent(tmp_path) <= 0.0005 + estimate
    # settled requests cost less than their estimate, so more fit; go on until the budget is really used up
    one, two = replicas
    for index in range(40):
        url = (one if index % 2 else two).url
        answer = httpx.post(url + "/v1/chat/completions", json=body, headers={"authorization": "Bearer budget-key"})
        if answer.status_code == 429:
            break
        time.sleep(0.05)  # settlement runs right after the response is sent; let it land before the next one
    spent = _spent(tmp_path)
    print(f"budget $0.0005: spent ${spent:.6f}, overshoot ${max(spent - 0.0005, 0):.6f}, one estimate ${estimate:.6f}")
    assert 0.0005 - estimate <= spent <= 0.0005 + estimate, (spent, estimate)


def test_a_breaker_opened_through_one_replica_protects_the_other(
    replicas: tuple[Served, Served], upstreams: Upstreams
) -> None:
    one, two = replicas
    upstreams.controls["a"].inject(Fault(status=500, times=3, model="cn-open"))
    # each fails over to cn-open-b; two tenants' failures (at most two each: half the 3) open cn-open-a's breaker
    for key in ("open-key", "open-key", "strict-key"):
        response = httpx.post(one.url + "/v1/chat/completions", json=HI, headers={"authorization": f"Bearer {key}"})
        assert response.headers["x-gateway-deployment"] == "cn-open-b"
    calls_before = upstreams.controls["a"].count()
    response = httpx.post(two.url + "/v1/chat/completions", json=HI, headers={"authorization": "Bearer open-key"})
    assert response.headers["x-gateway-deployment"] == "cn-open-b"
    assert upstreams.controls["a"].count() == calls_before, "replica two never called the open deployment"
    admin = httpx.get(two.url + "/admin/deployments", headers={"authorization": "Bearer admin-key"}).json()
    states = {d["deployment"]: d["breaker"] for d in admin["deployments"]}
    assert states["cn-open-a"] == "open" and states["cn-open-b"] == "closed"
    assert httpx.get(two.url + "/admin/deployments", headers={"authorization": "Bearer open-key"}).status_code == 401
    assert 'gateway_deployment_state{deployment="cn-open-a"} 2.0' in httpx.get(two.url + "/metrics").text


def test_cache_hits_are_identical_free_and_per_tenant(replicas: tuple[Served, Served], upstreams: Upstreams) -> None:
    one, two = replicas
    first = httpx.post(one.url + "/v1/chat/completions", json=HI, headers={"authorization": "Bearer cached-key"})
    calls = upstreams.controls["a"].count() + upstreams.controls["b"].count()
    second = httpx.post(two.url + "/v1/chat/completions", json=HI, headers={"authorization": "Bearer cached-key"})
    assert first.headers["x-gateway-cache"] == "miss" and second.headers["x-gateway-cache"] == "hit"
    assert second.content == first.content
    assert upstreams.controls["a"].count() + upstreams.controls["b"].count() == calls
    other = httpx.post(one.url + "/v1/chat/completions", json=HI, headers={"authorization": "Bearer cached-too-key"})
    assert other.headers["x-gateway-cache"] == "miss" and other.content != first.content


def test_redis_outage_fails_open_or_closed_and_recovers(replicas: tuple[Served, Served], redis_server: Any) -> None:
    one, _ = replicas
    redis_server.kill()
    limited = httpx.post(one.url + "/v1/chat/completions", json=HI, headers={"authorization": "Bearer limited-key"})
    assert limited.status_code == 200, "rate limits fail open"
    strict = httpx.post(one.url + "/v1/chat/completions", json=HI, headers={"authorization": "Bearer strict-key"})
    assert strict.status_code == 503 and strict.json()["error"]["code"] == "state_unavailable"
    assert "gateway_state_errors_total" in httpx.get(one.url + "/metrics").text
    redis_server.restart()
    recovered = httpx.post(one.url + "/v1/chat/completions", json=HI, headers={"authorization": "Bearer strict-key"})
    assert recovered.status_code == 200


def _spent(tmp_path: Path) -> float:
    return sum(e["cost_usd"] for e in _audit(tmp_path) if e["tenant"] == "budgeted" and e["status"] == 200)


def _audit(tmp_path: Path) -> list[dict[str, Any]]:
    return [entry for name in ("a1.jsonl", "a2.jsonl") for entry in audit_entries(tmp_path / name, writing=True)]
