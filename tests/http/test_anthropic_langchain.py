"""langchain-anthropic's ChatAnthropic pointed at the gateway with ``base_url``: plain, streamed and with tools."""

from __future__ import annotations

from typing import Any

import pytest
from langchain_anthropic import ChatAnthropic
from langchain_core.messages import HumanMessage, ToolMessage
from pydantic import SecretStr

from tests.conftest import Upstreams


def get_weather(city: str) -> str:
    """Weather in a city."""
    return f"{city}: 18C"


@pytest.fixture
def chat(example_gateway: str, upstreams: Upstreams) -> ChatAnthropic:
    return ChatAnthropic(  # type: ignore[call-arg]
        model_name="gpt-oss-120b",
        base_url=example_gateway,
        api_key=SecretStr("demo-key"),
        max_retries=0,
        max_tokens=200,
    )


def test_invoke_and_stream(chat: ChatAnthropic, upstreams: Upstreams) -> None:
    answer = chat.invoke("What is the capital of France?")
    assert "capital of France" in str(answer.content)
    assert answer.usage_metadata is not None and answer.usage_metadata["output_tokens"] > 0
    streamed = "".join(str(piece.content) for piece in chat.stream("What is the capital of France?"))
    assert "capital of France" in streamed
    assert upstreams.controls["b"].count() == 2


def test_a_tool_loop_with_bind_tools(chat: ChatAnthropic, upstreams: Upstreams) -> None:
    model = chat.bind_tools([get_weather])
    history: list[Any] = [HumanMessage("Weather in Paris?")]
    first = model.invoke(history)
    call = first.tool_calls[0]  # type: ignore[attr-defined]
    assert call["name"] == "get_weather" and "city" in call["args"]
    history += [first, ToolMessage(get_weather(**call["args"]), tool_call_id=call["id"])]
    second = model.invoke(history)
    assert second.content and not second.tool_calls  # type: ignore[attr-defined]
    tool_turn = upstreams.controls["b"].calls()[-1].body["messages"][-1]
    assert tool_turn["role"] == "tool" and tool_turn["tool_call_id"] == call["id"]
