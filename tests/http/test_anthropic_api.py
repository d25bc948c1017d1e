"""The official anthropic SDK against /v1/messages: routed like any request, answered in Anthropic's shape."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import anthropic
import pytest

from tests.conftest import Upstreams

HI: list[Any] = [{"role": "user", "content": "What is the capital of France?"}]
WEATHER: Any = {
    "name": "get_weather",
    "description": "Weather in a city",
    "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
}


@pytest.fixture
def client(example_gateway: str, upstreams: Upstreams) -> Iterator[anthropic.Anthropic]:
    with anthropic.Anthropic(base_url=example_gateway, api_key="demo-us-only", max_retries=0) as sdk:
        yield sdk


def test_message_is_routed_by_policy(client: anthropic.Anthropic, upstreams: Upstreams) -> None:
    raw = client.messages.with_raw_response.create(model="auto", max_tokens=200, messages=HI)
    message = raw.parse()
    assert raw.headers["x-gateway-deployment"] == "gpt-oss-120b-vllm"
    assert message.model == "gpt-oss-120b" and message.stop_reason == "end_turn"
    assert "capital of France" in message.content[0].text  # type: ignore[union-attr]
    assert message.usage.input_tokens > 0 and message.usage.output_tokens > 0
    assert upstreams.controls["a"].count() == 0, "no CN-origin model for this tenant"


def test_system_prompt_and_stream(client: anthropic.Anthropic, upstreams: Upstreams) -> None:
    with client.messages.stream(model="auto", max_tokens=200, system="Be brief.", messages=HI) as stream:
        text = "".join(stream.text_stream)
        final = stream.get_final_message()
    assert "capital of France" in text and final.stop_reason == "end_turn"
    assert final.usage.output_tokens > 0
    sent = upstreams.controls["b"].calls()[0].body
    assert sent["messages"][0] == {"role": "system", "content": "Be brief."}


def test_tool_use_round_trip(client: anthropic.Anthropic) -> None:
    messages: list[Any] = [{"role": "user", "content": "Weather in Paris?"}]
    first = client.messages.create(model="auto", max_tokens=200, messages=messages, tools=[WEATHER])
    assert first.stop_reason == "tool_use"
    tool_use = next(b for b in first.content if b.type == "tool_use")
    assert tool_use.name == "get_weather" and "city" in tool_use.input  # type: ignore[operator]
    messages += [
        {"role": "assistant", "content": first.content},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": tool_use.id, "content": "18C, sunny"}]},
    ]
    second = client.messages.create(model="auto", max_tokens=200, messages=messages, tools=[WEATHER])
    assert second.stop_reason == "end_turn" and second.content[0].type == "text"
    with client.messages.stream(model="auto", max_tokens=200, messages=messages[:1], tools=[WEATHER]) as stream:
        streamed = stream.get_final_message()
    assert [b.type for b in streamed.content] == ["tool_use"] and "city" in streamed.content[0].input  # type: ignore[union-attr,operator]


@pytest.mark.anyio
async def test_async_client(example_gateway: str, upstreams: Upstreams) -> None:
    async with anthropic.AsyncAnthropic(base_url=example_gateway, api_key="demo-key", max_retries=0) as sdk:
        message = await sdk.messages.create(model="auto", max_tokens=100, messages=HI)
        assert message.model == "qwen3-32b"
        async with sdk.messages.stream(model="auto", max_tokens=100, messages=HI) as stream:
            assert "capital" in "".join([t async for t in stream.text_stream])


def test_errors_come_in_anthropics_shape(example_gateway: str, client: anthropic.Anthropic) -> None:
    with pytest.raises(anthropic.PermissionDeniedError) as denied:
        client.messages.create(model="qwen3-32b", max_tokens=10, messages=HI)
    body = denied.value.response.json()
    assert body["type"] == "error" and body["error"]["type"] == "permission_error"
    assert "tenant.deny_origins" in body["error"]["message"]
    with (
        anthropic.Anthropic(base_url=example_gateway, api_key="wrong", max_retries=0) as bad,
        pytest.raises(anthropic.AuthenticationError),
    ):
        bad.messages.create(model="auto", max_tokens=10, messages=HI)
    with pytest.raises(anthropic.BadRequestError, match="max_tokens"):
        client.messages.create(model="auto", messages=HI, max_tokens=0)
    with pytest.raises(anthropic.NotFoundError):
        client.messages.create(model="claude-17", max_tokens=10, messages=HI)
