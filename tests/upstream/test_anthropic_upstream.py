"""A deployment behind litellm (Anthropic's Messages API), reached with the openai SDK through the gateway."""

from __future__ import annotations

import json
from typing import Any

import openai
import pytest

from tests.conftest import ANTHROPIC_KEY, ClientFactory, Upstreams
from tests.oaschema import validate

HI: list[Any] = [{"role": "user", "content": "Say hello"}]
WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    },
}


@pytest.fixture
def client(example_gateway: str, upstreams: Upstreams, make_client: ClientFactory) -> openai.OpenAI:
    return make_client(example_gateway, "demo-key")


def test_chat_through_litellm(client: openai.OpenAI, upstreams: Upstreams) -> None:
    raw = client.chat.completions.with_raw_response.create(model="claude-sonnet-4", messages=HI, max_tokens=100)
    validate("CreateChatCompletionResponse", raw.http_response.json())
    completion = raw.parse()
    assert raw.headers["x-gateway-deployment"] == "claude-sonnet-4-anthropic"
    assert completion.model == "claude-sonnet-4" and completion.choices[0].message.content
    assert completion.usage and completion.usage.prompt_tokens > 0
    call = upstreams.controls["anthropic"].calls()[0]
    assert call.model == "claude-sonnet-4-20250514"
    assert ANTHROPIC_KEY in (call.headers.get("x-api-key", "") + call.headers.get("authorization", ""))


def test_stream_through_litellm_validates(example_gateway: str, client: openai.OpenAI) -> None:
    stream = client.chat.completions.create(
        model="claude-sonnet-4", messages=HI, max_tokens=100, stream=True, stream_options={"include_usage": True}
    )
    chunks = list(stream)
    for chunk in chunks:
        validate("CreateChatCompletionStreamResponse", chunk.model_dump(exclude_unset=True))
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens > 0


def test_tool_calls_through_litellm(client: openai.OpenAI) -> None:
    messages: list[Any] = [{"role": "user", "content": "Weather in Paris?"}]
    completion = client.chat.completions.create(model="claude-sonnet-4", messages=messages, tools=[WEATHER])
    call = completion.choices[0].message.tool_calls[0]  # type: ignore[index]
    assert call.function.name == "get_weather" and "city" in json.loads(call.function.arguments)
    assert completion.choices[0].finish_reason == "tool_calls"
    stream = client.chat.completions.create(model="claude-sonnet-4", messages=messages, tools=[WEATHER], stream=True)
    arguments = "".join(
        (d.function.arguments or "")
        for c in stream
        if c.choices
        for d in (c.choices[0].delta.tool_calls or [])
        if d.function
    )
    assert "city" in json.loads(arguments)
