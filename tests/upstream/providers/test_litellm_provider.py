"""LiteLLMProvider against the Anthropic stand-in on loopback: answers, streams, tool calls, errors, isolation."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from gateway.errors import (
    UpstreamBadResponse,
    UpstreamError,
    UpstreamRateLimited,
    UpstreamRejected,
    UpstreamTimeout,
    UpstreamUnavailable,
)
from gateway.standin.control import Control, Fault
from gateway.standin.server import ThreadedServer
from gateway.upstream.providers.base import Endpoint, Json, Target
from gateway.upstream.providers.litellm_provider import LiteLLMProvider
from tests.conftest import ANTHROPIC_KEY, Upstreams
from tests.factories import REPO
from tests.oaschema import validate

# litellm hides pydantic's "`ReadOnly` qualifier" UserWarning (raised when a call first builds one of its
# schemas) with a filter it installs at import; pytest drops that filter after the test that imported
# litellm, and a command-line `-W error` outranks pyproject's filterwarnings, so the ignore is a mark.
pytestmark = [pytest.mark.anyio, pytest.mark.filterwarnings("ignore:.*`ReadOnly` qualifier:UserWarning")]


MODEL = "claude-sonnet-4-20250514"
HELLO: Json = {"messages": [{"role": "user", "content": "Say hello"}], "max_tokens": 100}
WEATHER: Json = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    },
}
ASK_WEATHER: Json = HELLO | {"messages": [{"role": "user", "content": "Weather in Paris?"}], "tools": [WEATHER]}
TargetFactory = Callable[..., Target]


@pytest.fixture
def anthropic(upstreams: Upstreams) -> Control:
    return upstreams.controls["anthropic"]


@pytest.fixture
def target(upstreams: Upstreams) -> TargetFactory:
    """``target(**fields)``: the Anthropic stand-in as a deployment, with any field replaced."""

    def make(**fields: Any) -> Target:
        defaults: dict[str, Any] = {
            "deployment": "claude-standin",
            "provider": "anthropic",
            "upstream_model": MODEL,
            "base_url": upstreams.urls["anthropic"],
            "api_key": ANTHROPIC_KEY,
            "timeout_seconds": 5.0,
        }
        return Target(**(defaults | fields))

    return make


@pytest.fixture
async def provider() -> AsyncIterator[LiteLLMProvider]:
    provider = LiteLLMProvider()
    yield provider
    await provider.aclose()


async def collect(provider: LiteLLMProvider, target: Target, body: Json, endpoint: Endpoint = "chat") -> list[Json]:
    return [chunk async for chunk in provider.stream(endpoint, target, body)]


def text_of(chunks: list[Json]) -> str:
    return "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks if c["choices"])


def arguments_of(chunks: list[Json]) -> str:
    deltas = [c["choices"][0]["delta"] for c in chunks if c["choices"]]
    return "".join(call["function"].get("arguments", "") for d in deltas for call in d.get("tool_calls", []))


# -- answers ------------------------------------------------------------------


async def test_chat_is_an_openai_chat_completion(provider: LiteLLMProvider, target: TargetFactory) -> None:
    response = await provider.complete("chat", target(), HELLO)
    validate("CreateChatCompletionResponse", response)
    assert response["choices"][0]["message"]["content"].endswith("Say hello")
    assert response["choices"][0]["finish_reason"] == "stop"
    assert response["usage"]["prompt_tokens"] > 0 and response["usage"]["completion_tokens"] > 0


async def test_the_key_and_model_reach_the_upstream(
    provider: LiteLLMProvider, target: TargetFactory, anthropic: Control
) -> None:
    await provider.complete("chat", target(), HELLO)
    [call] = anthropic.calls()
    assert (call.path, call.model) == ("/v1/messages", MODEL)
    assert call.headers["x-api-key"] == ANTHROPIC_KEY


async def test_stream_chunks_assemble_the_text_and_end_with_usage(
    provider: LiteLLMProvider, target: TargetFactory
) -> None:
    whole = await provider.complete("chat", target(), HELLO)
    chunks = await collect(provider, target(), HELLO)
    for chunk in chunks:
        validate("CreateChatCompletionStreamResponse", chunk)
        assert all("finish_reason" in choice for choice in chunk["choices"])
    assert text_of(chunks) == whole["choices"][0]["message"]["content"]
    assert [c["choices"][0]["finish_reason"] for c in chunks[:-1]][-1] == "stop"
    *body, last = chunks
    assert last["choices"] == [] and last["usage"] == whole["usage"]
    assert not any("usage" in chunk for chunk in body)


async def test_stream_requests_usage_even_when_the_client_did_not(
    provider: LiteLLMProvider, target: TargetFactory, anthropic: Control
) -> None:
    chunks = await collect(provider, target(), HELLO | {"stream_options": {"include_usage": False}})
    assert chunks[-1]["usage"]["total_tokens"] > 0
    assert anthropic.calls()[0].stream


async def test_a_stream_closed_early_closes_the_upstream(
    provider: LiteLLMProvider, target: TargetFactory, anthropic: Control
) -> None:
    anthropic.set_timing(chunk_gap=0.05)
    stream = provider.stream("chat", target(), HELLO)
    first = await anext(stream)
    await stream.aclose()  # type: ignore[attr-defined]
    assert first["choices"][0]["delta"]["content"]


async def test_a_tool_call(provider: LiteLLMProvider, target: TargetFactory) -> None:
    response = await provider.complete("chat", target(), ASK_WEATHER)
    validate("CreateChatCompletionResponse", response)
    choice = response["choices"][0]
    [call] = choice["message"]["tool_calls"]
    assert choice["finish_reason"] == "tool_calls"
    assert call["type"] == "function" and call["function"]["name"] == "get_weather"
    assert "city" in json.loads(call["function"]["arguments"])


async def test_a_streamed_tool_call(provider: LiteLLMProvider, target: TargetFactory) -> None:
    chunks = await collect(provider, target(), ASK_WEATHER)
    for chunk in chunks:
        validate("CreateChatCompletionStreamResponse", chunk)
    first_call = next(c["choices"][0]["delta"]["tool_calls"][0] for c in chunks if c["choices"])
    assert first_call["function"]["name"] == "get_weather" and first_call["id"]
    assert "city" in json.loads(arguments_of(chunks))
    assert [c["choices"][0]["finish_reason"] for c in chunks if c["choices"]][-1] == "tool_calls"


async def test_a_text_completion(provider: LiteLLMProvider, target: TargetFactory) -> None:
    body = {"prompt": "Say hello", "max_tokens": 100}
    response = await provider.complete("completions", target(), body)
    validate("CreateCompletionResponse", response)
    chunks = await collect(provider, target(), body, "completions")
    assert "".join(c["choices"][0]["text"] for c in chunks if c["choices"]) == response["choices"][0]["text"]
    assert chunks[-1]["choices"] == [] and chunks[-1]["usage"] == response["usage"]


async def test_embeddings(provider: LiteLLMProvider, target: TargetFactory, upstreams: Upstreams) -> None:
    # No Anthropic embeddings: litellm's own OpenAI route to the OpenAI stand-in exercises the path.
    openai_target = target(provider="openai", upstream_model="embed-small", base_url=upstreams.v1()["a"])
    response = await provider.complete("embeddings", openai_target, {"input": ["a", "b"]})
    validate("CreateEmbeddingResponse", response)
    assert [item["index"] for item in response["data"]] == [0, 1]
    with pytest.raises(UpstreamRejected):
        await collect(provider, openai_target, {"input": "a"}, "embeddings")


async def test_only_openai_fields_reach_litellm(
    provider: LiteLLMProvider, target: TargetFactory, anthropic: Control
) -> None:
    smuggled = {"base_url": "http://203.0.113.9", "api_base": "http://203.0.113.9", "mock_response": "pwned"}
    response = await provider.complete("chat", target(), HELLO | smuggled | {"top_k": 5, "temperature": 0.5})
    assert response["choices"][0]["message"]["content"] != "pwned"
    [call] = anthropic.calls()
    assert call.body["top_k"] == 5 and call.body["temperature"] == 0.5


# -- errors -------------------------------------------------------------------

STATUS_ERRORS = [
    (500, UpstreamUnavailable),
    (529, UpstreamUnavailable),
    (503, UpstreamUnavailable),
    (429, UpstreamRateLimited),
    (400, UpstreamRejected),
    (413, UpstreamRejected),
    (401, UpstreamUnavailable),
    (403, UpstreamUnavailable),
    (404, UpstreamUnavailable),
]


async def call_once(provider: LiteLLMProvider, target: Target, streamed: bool) -> None:
    if streamed:
        await collect(provider, target, HELLO)
    else:
        await provider.complete("chat", target, HELLO)


@pytest.mark.parametrize("streamed", [False, True], ids=["plain", "streamed"])
@pytest.mark.parametrize(("status", "error"), STATUS_ERRORS)
async def test_an_upstream_status_maps_to_one_gateway_error(
    provider: LiteLLMProvider,
    target: TargetFactory,
    anthropic: Control,
    status: int,
    error: type[UpstreamError],
    streamed: bool,
) -> None:
    anthropic.inject(Fault(status=status))
    with pytest.raises(error) as raised:
        await call_once(provider, target(), streamed)
    assert type(raised.value) is error and "claude-standin" in raised.value.message


async def test_refused_credentials_fall_back_without_leaking_the_key(
    provider: LiteLLMProvider, target: TargetFactory
) -> None:
    wrong_key = "sk-ant-wrong-key-0123456789"
    with pytest.raises(UpstreamUnavailable) as raised:
        await provider.complete("chat", target(api_key=wrong_key), HELLO)
    message = raised.value.message
    assert "credentials" in message and wrong_key not in message and ANTHROPIC_KEY not in message
    assert raised.value.retryable


@pytest.mark.parametrize("streamed", [False, True], ids=["plain", "streamed"])
async def test_a_slow_upstream_times_out(
    provider: LiteLLMProvider, target: TargetFactory, anthropic: Control, streamed: bool
) -> None:
    anthropic.inject(Fault(delay=2.0))
    with pytest.raises(UpstreamTimeout):
        await call_once(provider, target(timeout_seconds=0.3), streamed)


@pytest.mark.parametrize(("streamed", "events"), [(False, 0), (True, 1), (True, 4)], ids=["plain", "early", "late"])
async def test_a_dropped_connection_is_unavailable(
    provider: LiteLLMProvider, target: TargetFactory, anthropic: Control, streamed: bool, events: int
) -> None:
    anthropic.inject(Fault(drop_after=events))
    with pytest.raises(UpstreamUnavailable):
        await call_once(provider, target(), streamed)


@pytest.mark.parametrize("streamed", [False, True], ids=["plain", "streamed"])
async def test_an_answer_that_is_not_the_messages_api_is_a_bad_response(
    provider: LiteLLMProvider, target: TargetFactory, streamed: bool
) -> None:
    # litellm reads a 200 that is not an event stream as an empty "stop" chunk; nothing may reach the client.
    async def not_messages(request: Request) -> JSONResponse:
        return JSONResponse({"answer": "not a message"})

    app = Starlette(routes=[Route("/v1/messages", not_messages, methods=["POST"])])
    with ThreadedServer(app) as server, pytest.raises(UpstreamBadResponse):
        await call_once(provider, target(base_url=server.url), streamed)


async def test_an_unreachable_upstream_is_unavailable(provider: LiteLLMProvider, target: TargetFactory) -> None:
    with pytest.raises(UpstreamUnavailable):
        await provider.complete("chat", target(base_url="http://127.0.0.1:9"), HELLO)


async def test_an_unknown_provider_is_unavailable(provider: LiteLLMProvider, target: TargetFactory) -> None:
    with pytest.raises(UpstreamUnavailable, match="no provider 'antropic'"):
        await provider.complete("chat", target(provider="antropic"), HELLO)


# -- isolation ----------------------------------------------------------------

NO_REMOTE_SOCKETS = """
import asyncio, ipaddress, json, sys

remote = []

def audit(event, args):
    if event == "socket.connect" and isinstance(args[1], tuple):
        host = args[1][0]
    elif event == "socket.getaddrinfo":
        host = args[0]
    else:
        return
    if isinstance(host, bytes):
        host = host.decode()
    if host not in ("localhost", None):
        try:
            loopback = ipaddress.ip_address(host).is_loopback
        except ValueError:
            loopback = False
        if not loopback:
            remote.append(f"{event} {host}")

sys.addaudithook(audit)

from gateway.upstream.providers.base import Target
from gateway.upstream.providers.litellm_provider import LiteLLMProvider
from gateway.standin.anthropic_wire import create_anthropic_app
from gateway.standin.server import ThreadedServer

TOOLS = [{"type": "function", "function": {"name": "f", "parameters": {"type": "object", "properties": {}}}}]
BODY = {"messages": [{"role": "user", "content": "hi"}], "max_tokens": 50}


async def main(url):
    target = Target("claude", "anthropic", "claude-sonnet-4-20250514", url, "sk-ant-x", 5.0)
    provider = LiteLLMProvider()
    try:
        await provider.complete("chat", target, BODY)
        await provider.complete("completions", target, {"prompt": "hi", "max_tokens": 50})
        [c async for c in provider.stream("chat", target, BODY | {"tools": TOOLS})]
    finally:
        await provider.aclose()

with ThreadedServer(create_anthropic_app(api_key="sk-ant-x")) as server:
    asyncio.run(main(server.url))
print(json.dumps(remote))
"""


def run_python(code: str) -> str:
    env = {key: value for key, value in os.environ.items() if not key.startswith("LITELLM_")}
    env["PYTHONPATH"] = str(REPO)
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.strip().splitlines()[-1] if done.stdout.strip() else ""


def test_importing_the_adapter_does_not_import_litellm() -> None:
    code = "import gateway.upstream.providers.litellm_provider, sys; print('litellm' in sys.modules)"
    assert run_python(code) == "False"


def test_calls_open_no_socket_beyond_loopback() -> None:
    assert json.loads(run_python(NO_REMOTE_SOCKETS)) == []
