"""Shared fixtures: stand-in upstreams on loopback and gateways in front of them (factories)."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from pathlib import Path

import openai
import pytest

from gateway.http.app import create_app
from gateway.settings import Settings
from gateway.standin.anthropic_wire import create_anthropic_app
from gateway.standin.control import Control
from gateway.standin.openai_wire import create_openai_app
from gateway.standin.server import ThreadedServer
from gateway.upstream.providers.litellm_provider import load_litellm
from tests.factories import POLICIES
from tests.state.servers import RedisServer

OPENAI_KEY = "sk-test-openai-standin"
ANTHROPIC_KEY = "sk-ant-test-standin"


@dataclass
class Upstreams:
    """Four stand-ins: a, b (self-hosted vLLM), c (OpenAI API, key required), anthropic (Messages API)."""

    urls: dict[str, str]
    controls: dict[str, Control]

    def reset(self) -> None:
        for control in self.controls.values():
            control.reset()

    def example_env(self) -> dict[str, str]:
        """Environment for the shipped example policies, pointed at the stand-ins."""
        return {
            "QWEN_BASE_URL": self.urls["a"] + "/v1",
            "QWEN_EMBEDDING_BASE_URL": self.urls["a"] + "/v1",
            "GPT_OSS_BASE_URL": self.urls["b"] + "/v1",
            "OPENAI_BASE_URL": self.urls["c"] + "/v1",
            "OPENAI_API_KEY": OPENAI_KEY,
            "ANTHROPIC_BASE_URL": self.urls["anthropic"],
            "ANTHROPIC_API_KEY": ANTHROPIC_KEY,
        }

    def v1(self) -> dict[str, str]:
        return {name: url + "/v1" for name, url in self.urls.items()}


@pytest.fixture(scope="session")
def _upstreams() -> Iterator[Upstreams]:
    controls = {name: Control() for name in ("a", "b", "c", "anthropic")}
    servers = {
        "a": ThreadedServer(create_openai_app(controls["a"], name="vllm-a")),
        "b": ThreadedServer(create_openai_app(controls["b"], name="vllm-b")),
        "c": ThreadedServer(create_openai_app(controls["c"], name="openai", api_key=OPENAI_KEY)),
        "anthropic": ThreadedServer(create_anthropic_app(controls["anthropic"], api_key=ANTHROPIC_KEY)),
    }
    for server in servers.values():
        server.start()
    try:
        yield Upstreams({name: s.url for name, s in servers.items()}, controls)
    finally:
        for server in servers.values():
            server.stop()


@pytest.fixture
def upstreams(_upstreams: Upstreams) -> Iterator[Upstreams]:
    _upstreams.reset()
    yield _upstreams
    _upstreams.reset()


GatewayFactory = Callable[..., AbstractContextManager[str]]


@pytest.fixture(scope="session")
def make_gateway() -> GatewayFactory:
    """``with make_gateway(policy_dir, env) as url:`` a gateway on a free loopback port."""

    @contextmanager
    def make(policies: Path, env: Mapping[str, str]) -> Iterator[str]:
        with ThreadedServer(create_app(Settings(policies=policies), env=dict(env))) as server:
            yield server.url

    return make


@pytest.fixture(scope="session")
def example_gateway(_upstreams: Upstreams, make_gateway: GatewayFactory) -> Iterator[str]:
    """The shipped example policies in front of the stand-ins (litellm loaded for the Anthropic deployment)."""
    load_litellm()  # first, since its import can take longer than the server's start timeout on a busy machine
    with make_gateway(POLICIES, _upstreams.example_env()) as url:
        yield url


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


ClientFactory = Callable[..., openai.OpenAI]


@pytest.fixture
def make_client() -> Iterator[ClientFactory]:
    """``make_client(gateway_url, key, **options)``: an openai SDK client, closed after the test."""
    clients: list[openai.OpenAI] = []

    def make(url: str, key: str, **options: object) -> openai.OpenAI:
        client = openai.OpenAI(base_url=url + "/v1", api_key=key, max_retries=0, **options)  # type: ignore[arg-type]
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.close()


@pytest.fixture
def redis_server() -> Iterator[RedisServer]:
    """A real redis-server of this test's own on a loopback port, which the test may kill and restart."""
    server = RedisServer().start()
    yield server
    server.close()
