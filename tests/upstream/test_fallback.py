"""Retries and fallbacks through a real gateway in front of real stand-in upstreams."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import openai
import pytest

from gateway.standin.control import Fault
from tests.conftest import OPENAI_KEY, ClientFactory, GatewayFactory, Upstreams
from tests.factories import deployment, small_policy
from tests.oaschema import validate

HI = [{"role": "user", "content": "hi"}]


@pytest.fixture
def gateway(tmp_path: Path, upstreams: Upstreams, make_gateway: GatewayFactory) -> Iterator[str]:
    v1 = upstreams.v1()
    deployments = {
        "cn-open-a": deployment("cn-open", v1["a"], max_retries=1),
        "cn-open-b": deployment("cn-open", v1["b"], max_retries=1, price={"input": 0.15, "output": 0.3}),
        "us-open-a": deployment("us-open", v1["a"], max_retries=1, timeout_seconds=0.5),
        "us-open-b": deployment("us-open", v1["b"], max_retries=1, price={"input": 0.25, "output": 0.5}),
        "frontier-api": deployment(
            "frontier", v1["c"], self_hosted=False, operator="Frontier Inc", api_key_env="FRONTIER_KEY"
        ),
    }
    policy = small_policy(tmp_path / "p", v1, deployments=deployments)
    with make_gateway(policy, {"FRONTIER_KEY": OPENAI_KEY}) as url:
        yield url


@pytest.fixture
def client(gateway: str, make_client: ClientFactory) -> openai.OpenAI:
    return make_client(gateway, "us-key")


def test_first_deployment_500_falls_back_to_the_next_allowed(
    gateway: str, client: openai.OpenAI, upstreams: Upstreams
) -> None:
    upstreams.controls["a"].inject(Fault(status=500, times=2))
    raw = client.chat.completions.with_raw_response.create(model="auto", messages=HI)  # type: ignore[arg-type]
    assert raw.headers["x-gateway-deployment"] == "us-open-b"
    assert upstreams.controls["a"].models() == ["us-open", "us-open"]  # one retry, then fallback
    assert upstreams.controls["b"].models() == ["us-open"]
    assert "cn-open" not in upstreams.controls["a"].models() + upstreams.controls["b"].models()
    validate("CreateChatCompletionResponse", raw.http_response.json())


def test_a_retry_on_the_same_deployment_can_succeed(gateway: str, client: openai.OpenAI, upstreams: Upstreams) -> None:
    upstreams.controls["a"].inject(Fault(status=503, times=1))
    raw = client.chat.completions.with_raw_response.create(model="auto", messages=HI)  # type: ignore[arg-type]
    assert raw.headers["x-gateway-deployment"] == "us-open-a"
    assert upstreams.controls["b"].count() == 0


def test_timeout_falls_back(gateway: str, client: openai.OpenAI, upstreams: Upstreams) -> None:
    upstreams.controls["a"].inject(Fault(delay=2.0, times=2))
    raw = client.chat.completions.with_raw_response.create(model="auto", messages=HI)  # type: ignore[arg-type]
    assert raw.headers["x-gateway-deployment"] == "us-open-b"


def test_all_allowed_fail_gives_503_naming_what_was_tried_and_no_denied_model_is_called(
    gateway: str, upstreams: Upstreams
) -> None:
    for name in ("a", "b"):
        upstreams.controls[name].inject(Fault(status=500, times=10))
    response = httpx.post(
        gateway + "/v1/chat/completions",
        json={"model": "auto", "messages": HI},
        headers={"authorization": "Bearer us-key"},
    )
    assert response.status_code == 503
    body = response.json()
    validate("ErrorResponse", body)
    assert body["error"]["code"] == "all_candidates_failed"
    assert "us-open-a" in body["error"]["message"] and "us-open-b" in body["error"]["message"]
    called = upstreams.controls["a"].models() + upstreams.controls["b"].models() + upstreams.controls["c"].models()
    assert called and set(called) == {"us-open"}


def test_upstream_rate_limit_after_retries_is_429(gateway: str, client: openai.OpenAI, upstreams: Upstreams) -> None:
    for name in ("a", "b"):
        upstreams.controls[name].inject(Fault(status=429, retry_after=0, times=10))
    with pytest.raises(openai.RateLimitError) as info:
        client.chat.completions.create(model="auto", messages=HI)  # type: ignore[arg-type]
    validate("ErrorResponse", info.value.response.json())
    assert info.value.code == "rate_limit_exceeded"


def test_an_upstream_retry_after_is_honoured_and_reaches_the_client(
    gateway: str, client: openai.OpenAI, upstreams: Upstreams
) -> None:
    upstreams.controls["a"].inject(Fault(status=429, retry_after=3600, times=10))
    upstreams.controls["b"].inject(Fault(status=429, retry_after=120, times=10))
    started = time.monotonic()
    with pytest.raises(openai.RateLimitError) as info:
        client.chat.completions.create(model="auto", messages=HI)  # type: ignore[arg-type]
    assert time.monotonic() - started < 1.0
    assert upstreams.controls["a"].models() == ["us-open"], "not retried within the upstream's hour"
    assert upstreams.controls["b"].models() == ["us-open"]
    assert info.value.response.headers["retry-after"] == "120", "the shortest wait an upstream asked for"


def test_upstream_rejecting_the_request_is_400_without_fallback(
    gateway: str, client: openai.OpenAI, upstreams: Upstreams
) -> None:
    upstreams.controls["a"].inject(Fault(status=400, message="temperature too high"))
    with pytest.raises(openai.BadRequestError, match="deployment 'us-open-a' answered 400") as info:
        client.chat.completions.create(model="auto", messages=HI)  # type: ignore[arg-type]
    assert info.value.code == "upstream_rejected"
    assert "temperature" not in info.value.response.text  # the upstream's words stay in the gateway's log
    assert upstreams.controls["b"].count() == 0


def test_stream_falls_back_before_the_first_byte(gateway: str, client: openai.OpenAI, upstreams: Upstreams) -> None:
    upstreams.controls["a"].inject(Fault(status=502, times=2))
    stream = client.chat.completions.create(model="auto", messages=HI, stream=True)  # type: ignore[arg-type]
    text = "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
    assert "us-open" in text
    assert upstreams.controls["b"].models() == ["us-open"]


def test_stream_failing_after_the_first_byte_ends_with_an_error_event(
    gateway: str, client: openai.OpenAI, upstreams: Upstreams
) -> None:
    upstreams.controls["a"].inject(Fault(drop_after=2))
    with httpx.stream(
        "POST",
        gateway + "/v1/chat/completions",
        json={"model": "auto", "messages": HI, "stream": True},
        headers={"authorization": "Bearer us-key"},
    ) as response:
        events = [line[6:] for line in response.iter_lines() if line.startswith("data: ")]
    assert response.status_code == 200
    assert len(events) >= 2 and '"error"' in events[-1] and "[DONE]" not in events
    assert upstreams.controls["b"].count() == 0, "no fallback once the client has bytes"


def test_the_frontier_key_reaches_only_its_upstream(
    gateway: str, make_client: ClientFactory, upstreams: Upstreams
) -> None:
    hard = "Prove step by step and analyze the trade-offs, then design a plan; justify and evaluate the edge cases."
    raw = make_client(gateway, "open-key").chat.completions.with_raw_response.create(
        model="auto", messages=[{"role": "user", "content": hard}]
    )
    assert raw.headers["x-gateway-deployment"] == "frontier-api"
    assert upstreams.controls["c"].calls()[0].headers.get("authorization") == f"Bearer {OPENAI_KEY}"
    assert all("authorization" not in c.headers for c in upstreams.controls["a"].calls())
