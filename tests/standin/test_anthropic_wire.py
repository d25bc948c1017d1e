"""The Anthropic stand-in against the official anthropic SDK and the raw Messages wire format."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Iterator
from typing import Any

import anthropic
import httpx
import httpx2
import jsonschema
import pytest

from gateway.standin.anthropic_wire import create_anthropic_app
from gateway.standin.control import Control, Fault
from gateway.standin.server import ThreadedServer

KEY = "sk-ant-standin-unit"
DEFAULTS: dict[str, Any] = {"api_key": KEY, "max_retries": 0}
HI: list[Any] = [{"role": "user", "content": "What is the capital of France?"}]
CITY_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {"city": {"type": "string"}, "days": {"type": "integer"}},
    "required": ["city", "days"],
}
WEATHER: Any = {"name": "get_weather", "description": "Weather in a city", "input_schema": CITY_SCHEMA}
TIME: Any = {"name": "get_time", "input_schema": {"type": "object", "properties": {}}}
EVENT_ORDER = ["message_start", "content_block_start", "ping", "content_block_delta"]
EVENT_END = ["content_block_delta", "content_block_stop", "message_delta", "message_stop"]


@pytest.fixture(scope="module")
def control() -> Control:
    return Control()


@pytest.fixture(scope="module")
def server(control: Control) -> Iterator[ThreadedServer]:
    with ThreadedServer(create_anthropic_app(control, api_key=KEY)) as server:
        yield server


@pytest.fixture(autouse=True)
def _fresh(control: Control) -> None:
    control.reset()


@pytest.fixture
def make_client(server: ThreadedServer) -> Iterator[Callable[..., anthropic.Anthropic]]:
    clients: list[anthropic.Anthropic] = []

    def make(**options: Any) -> anthropic.Anthropic:
        clients.append(anthropic.Anthropic(base_url=server.url, **(DEFAULTS | options)))
        return clients[-1]

    yield make
    for client in clients:
        client.close()


@pytest.fixture
def client(make_client: Callable[..., anthropic.Anthropic]) -> anthropic.Anthropic:
    return make_client()


@pytest.fixture(scope="module")
def http(server: ThreadedServer) -> Iterator[httpx.Client]:
    headers = {"x-api-key": KEY, "anthropic-version": "2023-06-01"}
    with httpx.Client(base_url=server.url, headers=headers) as http:
        yield http


def events_of(response: httpx.Response) -> list[tuple[str, dict[str, Any]]]:
    """(event name, data) pairs of an SSE body; each data ``type`` must match its event name."""
    pairs = []
    for block in filter(None, response.text.split("\n\n")):
        event, data = block.split("\n")
        name, payload = event.removeprefix("event: "), json.loads(data.removeprefix("data: "))
        assert payload["type"] == name
        pairs.append((name, payload))
    return pairs


def assert_error(response: httpx.Response, status: int, kind: str) -> None:
    body = response.json()
    assert response.status_code == status
    assert body["type"] == "error" and body["error"]["type"] == kind and body["error"]["message"]
    assert body["request_id"] == response.headers["request-id"]


# -- whole messages -------------------------------------------------------------


def test_message_answer_names_the_model_and_counts_tokens(client: anthropic.Anthropic, control: Control) -> None:
    message = client.messages.create(model="claude-x", max_tokens=100, messages=HI, system="Be brief.")
    assert message.type == "message" and message.role == "assistant" and message.id.startswith("msg_")
    assert [block.type for block in message.content] == ["text"]
    assert message.content[0].text == "[claude-x] Here is a short answer to: What is the capital of France?"  # type: ignore[union-attr]
    assert message.stop_reason == "end_turn" and message.stop_sequence is None
    assert (message.usage.input_tokens, message.usage.output_tokens) == (10, 17)  # 39 and 68 characters
    assert control.models() == ["claude-x"]


def test_stop_sequences_and_max_tokens(client: anthropic.Anthropic) -> None:
    stopped = client.messages.create(model="c", max_tokens=100, messages=HI, stop_sequences=["short"])
    assert stopped.stop_reason == "stop_sequence" and stopped.stop_sequence == "short"
    assert stopped.content[0].text == "[c] Here is a "  # type: ignore[union-attr]
    cut = client.messages.create(model="c", max_tokens=4, messages=HI)
    assert cut.stop_reason == "max_tokens" and cut.usage.output_tokens <= 4


def test_tool_use_then_tool_result(client: anthropic.Anthropic) -> None:
    message = client.messages.create(model="c", max_tokens=100, messages=HI, tools=[WEATHER, TIME])
    assert message.stop_reason == "tool_use"
    block = message.content[0]
    assert block.type == "tool_use" and block.name == "get_weather" and block.id.startswith("toolu_")
    jsonschema.validate(block.input, CITY_SCHEMA)
    result = {"type": "tool_result", "tool_use_id": block.id, "content": "sunny, 21 degrees"}
    history: list[Any] = [
        *HI,
        {"role": "assistant", "content": [block.model_dump()]},
        {"role": "user", "content": [result]},
    ]
    answer = client.messages.create(model="c", max_tokens=100, messages=history, tools=[WEATHER])
    assert answer.stop_reason == "end_turn"
    assert answer.content[0].text == "[c] Based on the tool result: sunny, 21 degrees"  # type: ignore[union-attr]


def test_tool_choice_names_the_tool_or_turns_tools_off(client: anthropic.Anthropic) -> None:
    named = client.messages.create(
        model="c", max_tokens=50, messages=HI, tools=[WEATHER, TIME], tool_choice={"type": "tool", "name": "get_time"}
    )
    assert named.content[0].type == "tool_use" and named.content[0].name == "get_time"
    assert named.content[0].input == {}
    off = client.messages.create(model="c", max_tokens=50, messages=HI, tools=[WEATHER], tool_choice={"type": "none"})
    assert off.stop_reason == "end_turn"


def test_count_tokens(client: anthropic.Anthropic) -> None:
    assert client.messages.count_tokens(model="c", messages=HI).input_tokens == 8


# -- streamed messages ----------------------------------------------------------


def test_stream_event_sequence_on_the_wire(http: httpx.Client) -> None:
    body = {"model": "c", "max_tokens": 100, "messages": HI, "stream": True}
    response = http.post("/v1/messages", json=body)
    assert response.headers["content-type"].startswith("text/event-stream")
    events = events_of(response)
    names = [name for name, _ in events]
    assert names[:4] == EVENT_ORDER and names[-4:] == EVENT_END
    assert set(names[3:-3]) == {"content_block_delta"} and len(names) > 10
    start = events[0][1]["message"]
    assert start["content"] == [] and start["stop_reason"] is None and start["usage"]["input_tokens"] == 8
    assert events[1][1]["content_block"] == {"type": "text", "text": ""}
    text = "".join(data["delta"]["text"] for name, data in events if name == "content_block_delta")
    assert text == "[c] Here is a short answer to: What is the capital of France?"
    delta = events[-2][1]
    assert delta["delta"] == {"stop_reason": "end_turn", "stop_sequence": None}
    assert delta["usage"]["output_tokens"] == 16


def test_stream_tool_use_on_the_wire(http: httpx.Client) -> None:
    body = {"model": "c", "max_tokens": 100, "messages": HI, "stream": True, "tools": [WEATHER]}
    events = events_of(http.post("/v1/messages", json=body))
    block = events[1][1]["content_block"]
    assert block["type"] == "tool_use" and block["name"] == "get_weather" and block["input"] == {}
    deltas = [data["delta"] for name, data in events if name == "content_block_delta"]
    assert len(deltas) > 1 and {d["type"] for d in deltas} == {"input_json_delta"}
    jsonschema.validate(json.loads("".join(d["partial_json"] for d in deltas)), CITY_SCHEMA)
    assert events[-2][1]["delta"]["stop_reason"] == "tool_use"


def test_sdk_stream_helper_text_and_tool(client: anthropic.Anthropic) -> None:
    with client.messages.stream(model="c", max_tokens=100, messages=HI) as stream:
        text = "".join(stream.text_stream)
        final = stream.get_final_message()
    assert text == final.content[0].text  # type: ignore[union-attr]
    assert final.usage.output_tokens == 16 and final.stop_reason == "end_turn"
    with client.messages.stream(model="c", max_tokens=100, messages=HI, tools=[WEATHER]) as stream:
        tool = stream.get_final_message()
    assert tool.content[0].type == "tool_use" and tool.content[0].input == {"city": "example", "days": 0}


def test_async_client_whole_and_streamed(server: ThreadedServer) -> None:
    async def run() -> tuple[str, str]:
        async with anthropic.AsyncAnthropic(base_url=server.url, api_key=KEY, max_retries=0) as client:
            whole = await client.messages.create(model="async-c", max_tokens=100, messages=HI)
            async with client.messages.stream(model="async-c", max_tokens=100, messages=HI) as stream:
                streamed = "".join([piece async for piece in stream.text_stream])
            return whole.content[0].text, streamed  # type: ignore[union-attr]

    whole, streamed = asyncio.run(run())
    assert whole == streamed and whole.startswith("[async-c]")


# -- errors and faults ----------------------------------------------------------


def test_authentication_and_version_header(make_client: Callable[..., anthropic.Anthropic], http: httpx.Client) -> None:
    with pytest.raises(anthropic.AuthenticationError) as denied:
        make_client(api_key="wrong").messages.create(model="c", max_tokens=5, messages=HI)
    assert_error(denied.value.response, 401, "authentication_error")  # type: ignore[arg-type]
    no_version = http.post("/v1/messages", json={}, headers={"anthropic-version": ""})
    assert_error(no_version, 400, "invalid_request_error")
    assert "anthropic-version" in no_version.json()["error"]["message"]
    assert_error(http.get("/v1/nowhere"), 404, "not_found_error")


@pytest.mark.parametrize(
    ("body", "words"),
    [
        ({"messages": HI, "max_tokens": 5}, "model"),
        ({"model": "c", "messages": HI}, "max_tokens"),
        ({"model": "c", "messages": [{"role": "tool", "content": "x"}], "max_tokens": 5}, "role"),
    ],
)
def test_bad_requests(http: httpx.Client, body: dict[str, Any], words: str) -> None:
    response = http.post("/v1/messages", json=body)
    assert_error(response, 400, "invalid_request_error")
    assert words in response.json()["error"]["message"]


def test_overloaded_then_success_with_sdk_retry(
    make_client: Callable[..., anthropic.Anthropic], control: Control
) -> None:
    control.inject(Fault(status=529, retry_after=0.01))
    message = make_client(max_retries=1).messages.create(model="c", max_tokens=50, messages=HI)
    assert message.stop_reason == "end_turn" and control.count("c") == 2


def test_rate_limit_is_an_anthropic_error(client: anthropic.Anthropic, control: Control) -> None:
    control.inject(Fault(status=429, retry_after=3))
    with pytest.raises(anthropic.RateLimitError) as limited:
        client.messages.create(model="c", max_tokens=50, messages=HI)
    assert_error(limited.value.response, 429, "rate_limit_error")  # type: ignore[arg-type]
    assert limited.value.response.headers["retry-after"] == "3"


def test_stream_drops_after_k_events(client: anthropic.Anthropic, control: Control) -> None:
    control.inject(Fault(drop_after=3, model="c"))
    stream = iter(client.messages.create(model="c", max_tokens=50, messages=HI, stream=True))
    assert [next(stream).type, next(stream).type] == ["message_start", "content_block_start"]  # ping is skipped
    # older anthropic releases let httpx's error through; 2.17 wraps it in APIConnectionError, the message kept
    with pytest.raises((httpx2.RemoteProtocolError, anthropic.APIConnectionError), match="incomplete chunked read"):
        next(stream)
