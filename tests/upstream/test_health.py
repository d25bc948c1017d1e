"""Active health checks and the model check at start, against stand-ins that the tests stop and restart."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from gateway.policyfiles.loader import load_policy_dir
from gateway.standin.control import Control
from gateway.standin.openai_wire import create_openai_app
from gateway.standin.server import ThreadedServer
from gateway.upstream.health import check_models
from gateway.upstream.providers.openai_compat import OpenAICompatibleProvider
from tests.conftest import ClientFactory, GatewayFactory
from tests.factories import deployment, model, tenant, write_policy

MESSAGES: list[Any] = [{"role": "user", "content": "Say hello"}]
HEALTH = {"path": "/v1/models", "interval_seconds": 0.5, "timeout_seconds": 0.5}


def standin(port: int = 0, models: tuple[str, ...] = ()) -> ThreadedServer:
    return ThreadedServer(create_openai_app(Control(), name="box", models=models), port=port).start()


@pytest.fixture
def box() -> Iterator[ThreadedServer]:
    server = standin()
    yield server
    server.stop()


def two_boxes(directory: Path, first: str, second: str) -> Path:
    return write_policy(
        directory,
        models={"m": model()},
        deployments={
            "first": deployment("m", first + "/v1", price={"input": 0.1, "output": 0.1}, health=HEALTH),
            "second": deployment("m", second + "/v1", price={"input": 1.0, "output": 1.0}),
        },
        tenants={"t": tenant("key")},
    )


def until(check: Any, seconds: float = 10.0) -> Any:
    """``check()``'s first truthy value, polled (the probes run on their own clock)."""
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        if value := check():
            return value
        time.sleep(0.05)
    raise AssertionError("the condition did not hold in time")


def states(url: str) -> dict[str, int]:
    counts: dict[str, int] = httpx.get(url + "/readyz").json()["deployment_counts"]
    return counts


def test_a_dead_box_is_skipped_before_a_client_waits_and_comes_back_when_it_recovers(
    box: ThreadedServer, tmp_path: Path, make_gateway: GatewayFactory, make_client: ClientFactory
) -> None:
    port = box.port
    with ThreadedServer(create_openai_app(Control(), name="spare")) as spare:
        policy = two_boxes(tmp_path, box.url, spare.url)
        with make_gateway(policy, {}) as url:
            client = make_client(url, "key")
            ask = client.chat.completions.with_raw_response.create
            assert ask(model="m", messages=MESSAGES).headers["x-gateway-deployment"] == "first"
            box.stop()
            until(lambda: states(url).get("health_down") == 1)
            answer = ask(model="m", messages=MESSAGES)
            assert answer.headers["x-gateway-deployment"] == "second"
            metrics = httpx.get(url + "/metrics").text
            assert 'deployment="first",outcome="upstream_unavailable"' not in metrics  # no request tried the dead box
            assert 'gateway_health_probes_total{deployment="first",result="upstream_unavailable"}' in metrics
            assert 'gateway_deployment_health{deployment="first"} 0.0' in metrics
            assert 'gateway_deployment_state{deployment="first"} 2.0' in metrics  # the breaker opened
            restarted = standin(port)
            try:
                until(lambda: states(url) == {"ok": 2})
                assert ask(model="m", messages=MESSAGES).headers["x-gateway-deployment"] == "first"
                assert 'gateway_deployment_health{deployment="first"} 1.0' in httpx.get(url + "/metrics").text
            finally:
                restarted.stop()


def test_readyz_tells_an_admin_why_a_deployment_is_down(tmp_path: Path, make_gateway: GatewayFactory) -> None:
    policy = two_boxes(tmp_path, "http://127.0.0.1:9", "http://127.0.0.1:9")
    with make_gateway(policy, {}) as url:
        until(lambda: states(url).get("health_down") == 1)
        ready = httpx.get(url + "/readyz").json()
    assert ready["status"] == "ready"  # the gateway serves; its deployments are counted
    assert ready["deployment_counts"] == {"health_down": 1, "ok": 1}


@pytest.mark.anyio
async def test_the_model_check_warns_of_a_model_the_server_does_not_list(tmp_path: Path) -> None:
    server = standin(models=("served-model",))
    where = server.url + "/v1"
    try:
        policy = write_policy(
            tmp_path,
            models={"m": model()},
            deployments={
                "right": deployment("m", server.url + "/v1", upstream_model="served-model"),
                "wrong": deployment("m", server.url + "/v1", upstream_model="missing-model"),
                "dead": deployment("m", "http://127.0.0.1:9/v1", upstream_model="anything"),
            },
            tenants={"t": tenant("key")},
        )
        provider = OpenAICompatibleProvider()
        try:
            warnings = await check_models(load_policy_dir(policy, {}), provider, lambda _: None)
        finally:
            await provider.aclose()
    finally:
        server.stop()
    assert warnings == [
        f"deployment wrong: upstream_model 'missing-model' is not in {where}/models (it lists served-model)"
    ]


def test_the_model_check_runs_at_start_and_never_stops_it(
    tmp_path: Path, make_gateway: GatewayFactory, caplog: pytest.LogCaptureFixture
) -> None:
    server = standin(models=("served-model",))
    try:
        policy = write_policy(
            tmp_path,
            models={"m": model()},
            deployments={"d": deployment("m", server.url + "/v1", upstream_model="other-model")},
            tenants={"t": tenant("key")},
        )
        with caplog.at_level(logging.WARNING, logger="gateway.health"), make_gateway(policy, {}) as url:
            assert httpx.get(url + "/readyz").status_code == 200
            until(lambda: "upstream_model 'other-model' is not in" in caplog.text)
    finally:
        server.stop()


def test_health_is_only_for_openai_compatible_deployments(tmp_path: Path) -> None:
    policy = write_policy(
        tmp_path,
        models={"m": model()},
        deployments={"d": deployment("m", "http://x", provider="anthropic", health=HEALTH)},
        tenants={"t": tenant("key")},
    )
    with pytest.raises(Exception, match="health checks are for openai_compatible deployments"):
        load_policy_dir(policy, {})
