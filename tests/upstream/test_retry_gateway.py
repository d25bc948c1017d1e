"""Retries as the policy's ``retry:`` says, through a real gateway in front of the stand-ins' fault injection."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import openai
import pytest

from gateway.standin.control import Fault
from tests.conftest import ClientFactory, GatewayFactory, Upstreams
from tests.factories import deployment, small_policy

HI = [{"role": "user", "content": "hi"}]
NO_PAUSE = {"backoff_seconds": 0, "max_backoff_seconds": 0}


@pytest.fixture
def gateway(tmp_path: Path, upstreams: Upstreams, make_gateway: GatewayFactory) -> Iterator[str]:
    v1 = upstreams.v1()
    deployments = {
        "cn-open-a": deployment("cn-open", v1["a"]),
        "cn-open-b": deployment("cn-open", v1["b"], price={"input": 0.15, "output": 0.3}),
        "us-open-a": deployment("us-open", v1["a"], retry={"attempts": 3, **NO_PAUSE}),
        "us-open-b": deployment("us-open", v1["b"], retry={"attempts": 1}, price={"input": 0.25, "output": 0.5}),
        "frontier-api": deployment("frontier", v1["c"], self_hosted=False, operator="Frontier Inc"),
    }
    with make_gateway(small_policy(tmp_path / "p", v1, deployments=deployments), {}) as url:
        yield url


@pytest.fixture
def client(gateway: str, make_client: ClientFactory) -> openai.OpenAI:
    return make_client(gateway, "us-key")


def metric(gateway: str, name: str, **labels: str) -> float:
    """The value of one sample of ``/metrics`` (0 when absent)."""
    wanted = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
    for line in httpx.get(gateway + "/metrics").text.splitlines():
        sample, _, value = line.rpartition(" ")
        if sample.startswith(name + "{") and ",".join(sorted(sample[len(name) + 1 : -1].split(","))) == wanted:
            return float(value)
    return 0.0


def test_the_attempts_of_the_policy_are_made_and_each_retry_is_counted(
    gateway: str, client: openai.OpenAI, upstreams: Upstreams
) -> None:
    upstreams.controls["a"].inject(Fault(status=503, times=2))
    raw = client.chat.completions.with_raw_response.create(model="auto", messages=HI)  # type: ignore[arg-type]
    assert raw.headers["x-gateway-deployment"] == "us-open-a", "the third try answered"
    assert upstreams.controls["a"].models() == ["us-open"] * 3
    assert upstreams.controls["b"].count() == 0
    retries = metric(gateway, "gateway_retries_total", deployment="us-open-a", reason="upstream_unavailable")
    assert retries == 2


def test_after_the_last_try_it_falls_back_and_never_leaves_the_policy(
    gateway: str, client: openai.OpenAI, upstreams: Upstreams
) -> None:
    upstreams.controls["a"].inject(Fault(status=500, times=10))
    raw = client.chat.completions.with_raw_response.create(model="auto", messages=HI)  # type: ignore[arg-type]
    assert raw.headers["x-gateway-deployment"] == "us-open-b"
    assert upstreams.controls["a"].models() == ["us-open"] * 3, "retry.attempts: 3 on us-open-a"
    assert upstreams.controls["b"].models() == ["us-open"]
    fallbacks = metric(
        gateway, "gateway_fallbacks_total", route="auto", deployment="us-open-a", reason="upstream_unavailable"
    )
    assert fallbacks == 1


def test_the_last_deployment_with_attempts_one_is_tried_once(gateway: str, upstreams: Upstreams) -> None:
    for name in ("a", "b"):
        upstreams.controls[name].inject(Fault(status=502, times=10))
    response = httpx.post(
        gateway + "/v1/chat/completions",
        json={"model": "auto", "messages": HI},
        headers={"authorization": "Bearer us-key"},
    )
    assert response.status_code == 503 and response.json()["error"]["code"] == "all_candidates_failed"
    assert upstreams.controls["a"].count() == 3 and upstreams.controls["b"].count() == 1
    assert set(upstreams.controls["a"].models() + upstreams.controls["b"].models()) == {"us-open"}


def test_a_short_retry_after_is_waited_out_at_the_same_deployment(
    gateway: str, client: openai.OpenAI, upstreams: Upstreams
) -> None:
    upstreams.controls["a"].inject(Fault(status=429, retry_after=0.3))
    started = time.monotonic()
    raw = client.chat.completions.with_raw_response.create(model="auto", messages=HI)  # type: ignore[arg-type]
    assert time.monotonic() - started >= 0.3
    assert raw.headers["x-gateway-deployment"] == "us-open-a"
    assert upstreams.controls["a"].count() == 2 and upstreams.controls["b"].count() == 0


def test_a_long_retry_after_moves_on_at_once(gateway: str, client: openai.OpenAI, upstreams: Upstreams) -> None:
    upstreams.controls["a"].inject(Fault(status=429, retry_after=30, times=10))
    started = time.monotonic()
    raw = client.chat.completions.with_raw_response.create(model="auto", messages=HI)  # type: ignore[arg-type]
    assert time.monotonic() - started < 1.0
    assert raw.headers["x-gateway-deployment"] == "us-open-b"
    assert upstreams.controls["a"].count() == 1, "not retried within the upstream's 30 s"


def test_a_rejected_request_is_neither_retried_nor_sent_elsewhere(
    gateway: str, client: openai.OpenAI, upstreams: Upstreams
) -> None:
    upstreams.controls["a"].inject(Fault(status=400, message="bad value"))
    with pytest.raises(openai.BadRequestError):
        client.chat.completions.create(model="auto", messages=HI)  # type: ignore[arg-type]
    assert upstreams.controls["a"].count() == 1 and upstreams.controls["b"].count() == 0


def test_a_stream_is_retried_before_its_first_chunk(gateway: str, client: openai.OpenAI, upstreams: Upstreams) -> None:
    upstreams.controls["a"].inject(Fault(status=502))
    stream = client.chat.completions.create(model="auto", messages=HI, stream=True)  # type: ignore[arg-type]
    text = "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
    assert "us-open" in text
    assert upstreams.controls["a"].count() == 2 and upstreams.controls["b"].count() == 0
