"""The official anthropic SDK against /v1/messages: routed like any request, answered in Anthropic's shape."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import anthropic
import httpx
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
        client.messages.create(model="llama-17", max_tokens=10, messages=HI)


PNG = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg=="
IMAGE: Any = {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": PNG}}
PDF: Any = {"type": "document", "source": {"type": "base64", "media_type": "application/pdf", "data": "JVBERi0xLjQK"}}
NOTE: Any = {
    "type": "document",
    "title": "Memo",
    "source": {"type": "text", "media_type": "text/plain", "data": "Q3 up."},
}


def test_a_tool_loop_of_several_turns_on_a_self_hosted_deployment(
    client: anthropic.Anthropic, upstreams: Upstreams
) -> None:
    messages: list[Any] = [{"role": "user", "content": "Weather in Paris?"}]
    ids = []
    for city in ("Paris", "Rome", "Oslo"):
        if len(messages) > 1:
            messages.append({"role": "user", "content": f"And in {city}?"})
        first = client.messages.create(model="gpt-oss-120b", max_tokens=200, messages=messages, tools=[WEATHER])
        assert first.stop_reason == "tool_use"
        use = next(b for b in first.content if b.type == "tool_use")
        ids.append(use.id)
        result = {"type": "tool_result", "tool_use_id": use.id, "content": f"{city}: 18C"}
        messages += [{"role": "assistant", "content": first.content}, {"role": "user", "content": [result]}]
        answer = client.messages.create(model="gpt-oss-120b", max_tokens=200, messages=messages, tools=[WEATHER])
        assert answer.stop_reason == "end_turn" and answer.content[0].type == "text"
        messages.append({"role": "assistant", "content": answer.content})
    last = upstreams.controls["b"].calls()[-1].body["messages"]
    assert [m["tool_call_id"] for m in last if m["role"] == "tool"] == ids, "every tool_use id routes back verbatim"
    assert [m["tool_calls"][0]["id"] for m in last if m.get("tool_calls")] == ids
    assert len(set(ids)) == 3 and upstreams.controls["b"].count() == 6


def test_count_tokens_is_an_estimate_without_an_upstream(
    example_gateway: str, client: anthropic.Anthropic, upstreams: Upstreams
) -> None:
    short = client.messages.count_tokens(model="auto", messages=HI)
    longer = client.messages.count_tokens(model="auto", messages=HI, system="Be brief. " * 100, tools=[WEATHER])
    image = client.messages.count_tokens(model="auto", messages=[{"role": "user", "content": [IMAGE]}])
    assert 0 < short.input_tokens < longer.input_tokens and image.input_tokens >= 1600
    assert sum(c.count() for c in upstreams.controls.values()) == 0
    with (
        anthropic.Anthropic(base_url=example_gateway, api_key="wrong", max_retries=0) as bad,
        pytest.raises(anthropic.AuthenticationError),
    ):
        bad.messages.count_tokens(model="auto", messages=HI)
    with pytest.raises(anthropic.BadRequestError) as refused:
        client.messages.count_tokens(model="auto", messages=[{"role": "user"}])  # type: ignore[typeddict-item]
    assert refused.value.body["error"]["param"] == "messages[0].content"  # type: ignore[index]


def test_images_reach_a_capable_target_and_an_incapable_one_is_a_400(
    client: anthropic.Anthropic, upstreams: Upstreams
) -> None:
    turn: Any = [{"role": "user", "content": [{"type": "text", "text": "What is this?"}, IMAGE]}]
    client.messages.create(model="gpt-4.1-mini", max_tokens=50, messages=turn)
    parts = upstreams.controls["c"].calls()[0].body["messages"][0]["content"]
    assert parts[1] == {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG}"}}
    with pytest.raises(anthropic.BadRequestError) as refused:
        client.messages.create(model="gpt-oss-120b", max_tokens=50, messages=turn)
    error = refused.value.body["error"]  # type: ignore[index]
    assert error["code"] == "model_not_capable" and "vision" in error["message"]
    assert upstreams.controls["b"].count() == 0


def test_documents_and_tool_result_images_degrade_for_openai_format_targets(
    client: anthropic.Anthropic, upstreams: Upstreams
) -> None:
    calls: Any = {
        "role": "assistant",
        "content": [{"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {}}],
    }
    result: Any = {
        "type": "tool_result",
        "tool_use_id": "toolu_1",
        "content": [{"type": "text", "text": "map:"}, IMAGE],
    }
    messages: Any = [HI[0], calls, {"role": "user", "content": [result, NOTE, PDF]}]
    client.messages.create(model="gpt-4.1-mini", max_tokens=50, messages=messages, tools=[WEATHER])
    sent = upstreams.controls["c"].calls()[0].body["messages"]
    assert sent[2] == {"role": "tool", "tool_call_id": "toolu_1", "content": "map:"}
    assert [p["type"] for p in sent[3]["content"]] == ["text", "image_url", "text", "file"]
    assert sent[3]["content"][2]["text"] == "Memo\n\nQ3 up."
    assert sent[3]["content"][3]["file"]["file_data"].startswith("data:application/pdf;base64,")
    text_only: Any = [{"role": "user", "content": [NOTE, {"type": "text", "text": "Summarise."}]}]
    assert client.messages.create(model="gpt-oss-120b", max_tokens=50, messages=text_only).content
    with pytest.raises(anthropic.BadRequestError, match="vision"):
        client.messages.create(model="gpt-oss-120b", max_tokens=50, messages=[{"role": "user", "content": [PDF]}])


def test_stop_sequences_metadata_and_tool_choice_reach_the_upstream(
    client: anthropic.Anthropic, upstreams: Upstreams
) -> None:
    client.messages.create(
        model="gpt-oss-120b",
        max_tokens=50,
        messages=[{"role": "user", "content": "Weather?"}],
        stop_sequences=["END"],
        metadata={"user_id": "user-7"},
        tools=[WEATHER],
        tool_choice={"type": "tool", "name": "get_weather", "disable_parallel_tool_use": True},
    )
    sent = upstreams.controls["b"].calls()[0].body
    assert (sent["stop"], sent["user"], sent["parallel_tool_calls"]) == (["END"], "user-7", False)
    assert sent["tool_choice"] == {"type": "function", "function": {"name": "get_weather"}}


def test_anthropic_version_header(example_gateway: str) -> None:
    body = {"model": "auto", "max_tokens": 20, "messages": HI}
    with httpx.Client(base_url=example_gateway) as http:
        old = http.post("/v1/messages", json=body, headers={"x-api-key": "demo-key", "anthropic-version": "2023-01-01"})
        none = http.post("/v1/messages", json=body, headers={"x-api-key": "demo-key"})
    assert old.status_code == 400 and old.json()["error"]["param"] == "anthropic-version"
    assert none.status_code == 200 and none.json()["type"] == "message"
