"""A stream's real outcome reaches the circuit breaker when it ends (issue #20, item 3).

Before, success was recorded at the first chunk: a server that crashed mid-stream three times in
30 s (threshold 3) left the breaker closed with no failure counted.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import openai
import pytest

from gateway.routing.auth import hash_key
from gateway.standin.control import Fault
from tests.conftest import GatewayFactory, Upstreams
from tests.factories import deployment, small_policy, tenant

HI = [{"role": "user", "content": "What is the capital of France?"}]


@pytest.fixture
def gateway(tmp_path: Path, upstreams: Upstreams, make_gateway: GatewayFactory) -> Iterator[str]:
    v1 = upstreams.v1()
    deployments = {
        "cn-open-a": deployment("cn-open", v1["a"], max_retries=0),
        "cn-open-b": deployment("cn-open", v1["b"], max_retries=0, price={"input": 0.15, "output": 0.3}),
        "us-open-a": deployment("us-open", v1["a"], max_retries=0),
        "frontier-api": deployment("frontier", v1["c"], self_hosted=False, operator="F"),
    }
    tenants = {"one": tenant("one-key"), "two": tenant("two-key"), "three": tenant("three-key")}
    state = {"breaker": {"failures": 3, "window_seconds": 30, "cooldown_seconds": 60}}
    admin = {"keys": [{"name": "ops", "sha256": hash_key("admin-key")}]}
    policy = small_policy(tmp_path / "p", v1, deployments=deployments, tenants=tenants, state=state, admin=admin)
    upstreams.controls["a"].set_timing(chunk_gap=0.01)
    with make_gateway(policy, {}) as url:
        yield url


def stream_text(url: str, key: str) -> tuple[str, str]:
    """The deployment that answered and the text streamed, however the stream ended."""
    with openai.OpenAI(base_url=url + "/v1", api_key=key, max_retries=0) as client:
        response = client.chat.completions.with_raw_response.create(model="auto", messages=HI, stream=True)  # type: ignore[arg-type]
        text = []
        try:
            for chunk in response.parse():
                text += [chunk.choices[0].delta.content or ""] if chunk.choices else []
        except openai.APIError:
            pass  # the error event of a stream that broke after its first byte
        return response.headers["x-gateway-deployment"], "".join(text)


def breaker(url: str, deployment_id: str) -> dict[str, object]:
    admin = httpx.get(url + "/admin/deployments", headers={"authorization": "Bearer admin-key"}).json()
    return next(d for d in admin["deployments"] if d["deployment"] == deployment_id)


def test_streams_that_break_after_the_first_chunk_open_the_breaker(gateway: str, upstreams: Upstreams) -> None:
    upstreams.controls["a"].inject(Fault(drop_after=2, times=3, model="cn-open"))
    for key in ("one-key", "one-key", "two-key"):  # failures 3, from two tenants
        assert stream_text(gateway, key)[0] == "cn-open-a", "a stream that started cannot fall back"
    state = breaker(gateway, "cn-open-a")
    assert state["breaker"] == "open", state
    deployment_id, text = stream_text(gateway, "three-key")
    assert deployment_id == "cn-open-b" and text, "a third tenant is kept off the broken deployment"


def test_one_tenants_broken_streams_open_its_own_breaker_only(gateway: str, upstreams: Upstreams) -> None:
    upstreams.controls["a"].inject(Fault(drop_after=2, times=3, model="cn-open"))
    for _ in range(2):  # failures 3: a tenant's own breaker opens at 2
        assert stream_text(gateway, "one-key")[0] == "cn-open-a"
    assert breaker(gateway, "cn-open-a")["breaker_failures_in_window"] == 2
    assert stream_text(gateway, "one-key")[0] == "cn-open-b", "this tenant now skips it"
    assert stream_text(gateway, "two-key")[0] == "cn-open-a", "the others do not"


def test_streams_the_client_leaves_are_not_failures(gateway: str, upstreams: Upstreams) -> None:
    for _ in range(4):
        with httpx.stream(
            "POST",
            gateway + "/v1/chat/completions",
            json={"model": "auto", "messages": HI, "stream": True},
            headers={"authorization": "Bearer one-key"},
        ) as response:
            assert response.headers["x-gateway-deployment"] == "cn-open-a"
            next(response.iter_raw())  # the first events, then the client goes away
    state = breaker(gateway, "cn-open-a")
    assert state["breaker"] == "closed" and state["breaker_failures_in_window"] == 0
