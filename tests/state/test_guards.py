"""The guards on one replica (in-process store): per-key and token limits, deployment caps, breakers, downgrade."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from gateway.http.app import create_app
from gateway.policyfiles.loader import load_policy_dir
from gateway.settings import Settings
from gateway.standin.control import Fault
from gateway.standin.server import ThreadedServer
from gateway.upstream.gate import breaker_policy
from tests.conftest import Upstreams
from tests.factories import deployment, small_policy, tenant

HI = {"model": "auto", "messages": [{"role": "user", "content": "hi"}]}
HARD = {
    "model": "auto",
    "messages": [
        {"role": "user", "content": "Prove step by step and analyze the trade-offs; design, justify, evaluate."}
    ],
}


@pytest.fixture
def gateway(tmp_path: Path, upstreams: Upstreams) -> Iterator[str]:
    v1 = upstreams.v1()
    key = tenant("keyed-key")
    key["keys"][0]["limits"] = {"rpm": 2}
    tenants = {
        "open": tenant("open-key"),
        "keyed": key,
        "tokens": tenant("tokens-key", limits={"tpm": 20}),
        "thrifty": tenant(
            "thrifty-key", budget={"daily_usd": 0.01, "on_exhausted": "downgrade", "downgrade_at": 0.001}
        ),
    }
    deployments = {
        "cn-open-a": deployment("cn-open", v1["a"], max_retries=0, caps={"max_concurrency": 1}),
        "cn-open-b": deployment("cn-open", v1["b"], max_retries=0, price={"input": 0.15, "output": 0.3}),
        "us-open-a": deployment("us-open", v1["a"], max_retries=0, caps={"rpm": 1}),
        "us-open-b": deployment("us-open", v1["b"], max_retries=0, price={"input": 0.25, "output": 0.5}),
        "frontier-api": deployment("frontier", v1["c"], self_hosted=False, operator="F", api_key_env="K"),
    }
    state = {"breaker": {"failures": 2, "window_seconds": 30, "cooldown_seconds": 0.5}}
    policy = small_policy(tmp_path / "p", v1, tenants=tenants, deployments=deployments, state=state)
    with ThreadedServer(
        create_app(Settings(policies=policy, reload_seconds=0), env={"K": "sk-test-openai-standin"})
    ) as s:
        yield s.url


def post(url: str, key: str, body: dict[str, Any] = HI) -> httpx.Response:
    return httpx.post(url + "/v1/chat/completions", json=body, headers={"authorization": f"Bearer {key}"}, timeout=30)


def test_a_key_limit_applies_to_that_key(gateway: str) -> None:
    assert [post(gateway, "keyed-key").status_code for _ in range(3)] == [200, 200, 429]
    refused = post(gateway, "keyed-key")
    assert "this key of tenant 'keyed'" in refused.json()["error"]["message"]
    assert post(gateway, "open-key").status_code == 200


def test_token_limit_counts_real_usage(gateway: str) -> None:
    first = post(gateway, "tokens-key")  # 1 prompt token estimated, 11 counted after the answer
    assert first.status_code == 200
    time.sleep(0.1)  # settlement runs after the response is sent
    statuses = [post(gateway, "tokens-key").status_code for _ in range(3)]
    assert 429 in statuses, "real usage, not the estimate, fills the token budget"
    assert "tokens per minute" in post(gateway, "tokens-key").json()["error"]["message"]


def test_a_deployment_at_its_concurrency_cap_is_skipped(gateway: str, upstreams: Upstreams) -> None:
    upstreams.controls["a"].set_timing(delay=0.5)

    async def two() -> list[httpx.Response]:
        async with httpx.AsyncClient(timeout=30, headers={"authorization": "Bearer open-key"}) as client:
            return list(
                await asyncio.gather(*(client.post(gateway + "/v1/chat/completions", json=HI) for _ in range(2)))
            )

    deployments = sorted(r.headers["x-gateway-deployment"] for r in asyncio.run(two()))
    assert deployments == ["cn-open-a", "cn-open-b"]
    assert (
        'gateway_deployment_skips_total{deployment="cn-open-a",reason="at_capacity"} 1.0'
        in httpx.get(gateway + "/metrics").text
    )


def test_a_deployment_at_its_rpm_cap_is_skipped_for_the_next_allowed_one(gateway: str, upstreams: Upstreams) -> None:
    body = {"model": "us-open", "messages": [{"role": "user", "content": "hi"}]}
    assert [post(gateway, "open-key", body).headers["x-gateway-deployment"] for _ in range(2)] == [
        "us-open-a", "us-open-b",
    ]  # fmt: skip
    assert upstreams.controls["a"].models() == ["us-open"], "the capped deployment got one call this minute"


def test_breaker_opens_then_a_single_probe_brings_the_deployment_back(gateway: str, upstreams: Upstreams) -> None:
    upstreams.controls["a"].inject(Fault(status=500, times=1, model="cn-open"))
    # failures 2: the tenant's own breaker opens at 1 and keeps this tenant off the deployment
    assert post(gateway, "open-key").headers["x-gateway-deployment"] == "cn-open-b"
    calls = upstreams.controls["a"].count("cn-open")
    assert post(gateway, "open-key").headers["x-gateway-deployment"] == "cn-open-b"
    assert post(gateway, "open-key").headers["x-gateway-deployment"] == "cn-open-b"
    assert upstreams.controls["a"].count("cn-open") == calls, "open: not called"
    time.sleep(0.7)  # cool-down over: half-open keeps its place in the ranking and is probed
    assert post(gateway, "open-key").headers["x-gateway-deployment"] == "cn-open-a"
    assert post(gateway, "open-key").headers["x-gateway-deployment"] == "cn-open-a", "closed again"


def test_one_tenant_cannot_open_the_breaker_for_the_others(gateway: str, upstreams: Upstreams) -> None:
    upstreams.controls["a"].inject(Fault(status=500, times=5, model="cn-open"))
    for _ in range(3):
        assert post(gateway, "open-key").headers["x-gateway-deployment"] == "cn-open-b"
    assert upstreams.controls["a"].count("cn-open") == 1, "one failure opened this tenant's own breaker"
    # the shared breaker (2 failures) saw one: another tenant still gets the deployment
    upstreams.controls["a"].reset()
    assert post(gateway, "tokens-key").headers["x-gateway-deployment"] == "cn-open-a"


def test_failures_from_two_tenants_open_the_shared_breaker(gateway: str, upstreams: Upstreams) -> None:
    upstreams.controls["a"].inject(Fault(status=500, times=2, model="cn-open"))
    assert post(gateway, "open-key").headers["x-gateway-deployment"] == "cn-open-b"
    assert post(gateway, "tokens-key").headers["x-gateway-deployment"] == "cn-open-b"
    before = upstreams.controls["a"].count("cn-open")
    assert post(gateway, "keyed-key").headers["x-gateway-deployment"] == "cn-open-b"
    assert upstreams.controls["a"].count("cn-open") == before, "a third tenant skips the open deployment"


def test_a_nearly_spent_budget_downgrades_to_the_cheapest_tier(gateway: str) -> None:
    assert post(gateway, "open-key", HARD).headers["x-gateway-tier"] == "complex"
    first = post(gateway, "thrifty-key", HARD)
    assert first.headers["x-gateway-tier"] == "complex"
    time.sleep(0.1)
    second = post(gateway, "thrifty-key", HARD)
    assert second.headers["x-gateway-tier"] == "simple" and second.headers["x-gateway-model"] == "cn-open"


def test_breaker_settings_are_built_once_per_policy_and_follow_a_reload(tmp_path: Path, upstreams: Upstreams) -> None:
    def loaded(name: str, failures: int) -> Any:
        state = {"breaker": {"failures": failures, "window_seconds": 30, "cooldown_seconds": 0.5}}
        return load_policy_dir(small_policy(tmp_path / name, upstreams.v1(), state=state), {})

    first, reloaded = loaded("one", 2), loaded("two", 7)
    assert breaker_policy(first) is breaker_policy(first)
    assert (breaker_policy(first).failures, breaker_policy(reloaded).failures) == (2, 7)
