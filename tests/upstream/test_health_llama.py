"""Active health checks against a real llama.cpp ``llama-server`` (tests/llamacpp.py), killed and restarted:
the probe of its ``/health`` marks it down, a request falls back without waiting on it, and it comes back."""

from __future__ import annotations

import logging
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from gateway.standin.control import Control
from gateway.standin.openai_wire import create_openai_app
from gateway.standin.server import ThreadedServer
from tests.conftest import ClientFactory, GatewayFactory
from tests.factories import deployment, model, tenant, write_policy
from tests.llamacpp import LlamaServer
from tests.upstream.test_health import states, until

MESSAGES: list[Any] = [{"role": "user", "content": "What is the capital of France?"}]
HEALTH = {"path": "/health", "interval_seconds": 0.5, "timeout_seconds": 0.5}


@pytest.fixture
def llama() -> Iterator[LlamaServer]:
    server = LlamaServer.start(context=512, parallel=1)
    yield server
    server.stop()


def restart(server: LlamaServer) -> None:
    """The same command on the same port, as a supervisor would after a crash."""
    with server.log.open("ab") as out:
        server.process = subprocess.Popen(server.args, stdout=out, stderr=subprocess.STDOUT)
    server.wait_ready()


def test_a_killed_llama_server_is_skipped_by_its_health_check_and_comes_back(
    llama: LlamaServer,
    tmp_path: Path,
    make_gateway: GatewayFactory,
    make_client: ClientFactory,
    caplog: pytest.LogCaptureFixture,
) -> None:
    with ThreadedServer(create_openai_app(Control(), name="spare")) as spare:
        policy = write_policy(
            tmp_path,
            models={"tiny": model("US", "basic", 0.1)},
            deployments={
                "llama": deployment("tiny", llama.url + "/v1", upstream_model="tiny", health=HEALTH),
                "spare": deployment("tiny", spare.url + "/v1", price={"input": 1.0, "output": 1.0}),
            },
            tenants={"t": tenant("key")},
        )
        with caplog.at_level(logging.INFO, logger="gateway.health"), make_gateway(policy, {}) as url:
            ask = make_client(url, "key").chat.completions.with_raw_response.create
            assert ask(model="tiny", messages=MESSAGES, max_tokens=4).headers["x-gateway-deployment"] == "llama"
            llama.process.kill()
            llama.process.wait()
            until(lambda: states(url).get("health_down") == 1)
            assert ask(model="tiny", messages=MESSAGES, max_tokens=4).headers["x-gateway-deployment"] == "spare"
            metrics = httpx.get(url + "/metrics").text
            assert 'deployment="llama",outcome="upstream_unavailable"' not in metrics  # no request waited on it
            restart(llama)
            until(lambda: states(url) == {"ok": 2})
            assert ask(model="tiny", messages=MESSAGES, max_tokens=4).headers["x-gateway-deployment"] == "llama"
    assert "deployment llama: upstream_model" not in caplog.text  # llama-server lists its model alias
    assert "health check of deployment llama passed: back in rotation" in caplog.text
