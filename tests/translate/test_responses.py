"""The pure Responses <-> chat translation: requests, whole answers, streams, and a round-trip property."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway.errors import InvalidRequest, UpstreamBadResponse, UpstreamUnavailable
from gateway.translate.responses_request import to_chat
from gateway.translate.responses_response import from_chat
from gateway.translate.responses_response import to_chat as back_to_chat
from gateway.translate.responses_stream import ResponsesStream
from tests.oaschema import validate

TOOL: Any = {"type": "function", "name": "f", "parameters": {"type": "object", "properties": {}}}


def test_items_become_chat_messages() -> None:
    body = {
        "model": "m",
        "instructions": "Be brief.",
        "input": [
            {"type": "message", "role": "developer", "content": "Rule."},
            {
                "role": "user",
                "content": [
                    {"type": "input_text", "text": "Look:"},
                    {"type": "input_image", "image_url": "data:image/png;base64,AA==", "detail": "low"},
                ],
            },
            {"type": "message", "role": "assistant", "content": [{"type": "output_text", "text": "Calling."}]},
            {"type": "function_call", "call_id": "c1", "name": "f", "arguments": "{}"},
            {"type": "function_call", "call_id": "c2", "name": "f", "arguments": '{"a": 1}'},
            {"type": "reasoning", "id": "rs_1", "summary": []},
            {"type": "function_call_output", "call_id": "c1", "output": "one"},
            {"type": "function_call_output", "call_id": "c2", "output": [{"type": "input_text", "text": "two"}]},
        ],
        "tools": [TOOL],
        "tool_choice": {"type": "function", "name": "f"},
        "text": {"format": {"type": "json_object"}},
        "max_output_tokens": 50,
        "stream": True,
    }
    chat = to_chat(body)
    assert chat["messages"] == [
        {"role": "system", "content": "Be brief."},
        {"role": "system", "content": "Rule."},
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "Look:"},
                {"type": "image_url", "image_url": {"url": "data:image/png;base64,AA==", "detail": "low"}},
            ],
        },
        {
            "role": "assistant",
            "content": "Calling.",
            "tool_calls": [
                {"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{}"}},
                {"id": "c2", "type": "function", "function": {"name": "f", "arguments": '{"a": 1}'}},
            ],
        },
        {"role": "tool", "tool_call_id": "c1", "content": "one"},
        {"role": "tool", "tool_call_id": "c2", "content": "two"},
    ]
    assert chat["tools"] == [{"type": "function", "function": {"name": "f", "parameters": TOOL["parameters"]}}]
    assert chat["tool_choice"] == {"type": "function", "function": {"name": "f"}}
    assert chat["response_format"] == {"type": "json_object"} and chat["max_tokens"] == 50
    assert chat["stream_options"] == {"include_usage": True}


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"input": "hi"}, "model"),
        ({"model": "m", "input": 3}, "input"),
        ({"model": "m", "input": []}, "input"),
        ({"model": "m", "input": [{"type": "item_reference", "id": "x"}]}, "input[0].type"),
        ({"model": "m", "input": [{"role": "robot", "content": "x"}]}, "input[0].role"),
        (
            {"model": "m", "input": [{"role": "user", "content": [{"type": "input_image", "file_id": "f"}]}]},
            "input[0].content[0].image_url",
        ),
        ({"model": "m", "input": "hi", "tools": [{"type": "web_search"}]}, "tools[0].type"),
        (
            {"model": "m", "input": "hi", "tools": [TOOL], "tool_choice": {"type": "function", "name": "g"}},
            "tool_choice.name",
        ),
        ({"model": "m", "input": "hi", "text": {"format": {"type": "json_schema", "schema": {}}}}, "text.format.name"),
        ({"model": "m", "input": "hi", "background": True}, "background"),
    ],
)
def test_what_chat_cannot_carry_is_refused_naming_the_field(body: dict[str, Any], param: str) -> None:
    with pytest.raises(InvalidRequest) as refused:
        to_chat(body)
    assert refused.value.param == param


def _chat(text: str | None, calls: list[tuple[str, str, str]], finish: str, usage: dict[str, int]) -> dict[str, Any]:
    message: dict[str, Any] = {"role": "assistant", "content": text}
    if calls:
        message["tool_calls"] = [
            {"id": i, "type": "function", "function": {"name": n, "arguments": a}} for i, n, a in calls
        ]
    return {
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "model": "m",
        "choices": [{"index": 0, "message": message, "finish_reason": finish}],
        "usage": {
            "prompt_tokens": usage["prompt"],
            "completion_tokens": usage["completion"],
            "total_tokens": usage["prompt"] + usage["completion"],
            "prompt_tokens_details": {"cached_tokens": usage["cached"]},
            "completion_tokens_details": {"reasoning_tokens": usage["reasoning"]},
        },
    }


def test_a_whole_answer_is_a_valid_response() -> None:
    answer = _chat(
        "Paris.",
        [("call_1", "f", '{"x": 1}')],
        "tool_calls",
        {"prompt": 9, "completion": 4, "cached": 2, "reasoning": 1},
    )
    response = from_chat(answer, {"model": "auto", "tools": [TOOL], "metadata": {"k": "v"}}, "m", "resp_1", 1.0)
    validate("Response", response)
    assert [item["type"] for item in response["output"]] == ["message", "function_call"]
    assert response["output"][1]["call_id"] == "call_1" and response["status"] == "completed"
    assert response["usage"]["input_tokens_details"]["cached_tokens"] == 2
    assert response["usage"]["output_tokens_details"]["reasoning_tokens"] == 1
    cut = from_chat(
        _chat("Par", [], "length", {"prompt": 1, "completion": 1, "cached": 0, "reasoning": 0}), {}, "m", "r", 1
    )
    assert cut["status"] == "incomplete" and cut["incomplete_details"] == {"reason": "max_output_tokens"}
    with pytest.raises(UpstreamBadResponse):
        from_chat({"choices": []}, {}, "m", "r", 1)


TEXT = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=40)
CALLS = st.lists(
    st.tuples(
        st.from_regex(r"call_[a-z0-9]{1,12}", fullmatch=True),
        st.from_regex(r"[a-z_]{1,10}", fullmatch=True),
        st.dictionaries(st.from_regex(r"[a-z]{1,5}", fullmatch=True), st.integers() | TEXT, max_size=3).map(json.dumps),
    ),
    max_size=3,
    unique_by=lambda call: call[0],
)
USAGE = st.fixed_dictionaries({k: st.integers(0, 10_000) for k in ("prompt", "completion", "cached", "reasoning")})


@given(text=TEXT, calls=CALLS, usage=USAGE)
def test_chat_to_responses_to_chat_keeps_text_calls_and_usage(
    text: str, calls: list[tuple[str, str, str]], usage: dict[str, int]
) -> None:
    answer = _chat(text or None, calls, "tool_calls" if calls else "stop", usage)
    again = back_to_chat(from_chat(answer, {}, "m", "resp_1", 1.0))
    message, original = again["choices"][0]["message"], answer["choices"][0]["message"]
    assert message["content"] == original["content"]
    assert message.get("tool_calls", []) == original.get("tool_calls", [])
    assert again["choices"][0]["finish_reason"] == answer["choices"][0]["finish_reason"]
    assert again["usage"] == answer["usage"]


@given(text=TEXT, calls=CALLS, usage=USAGE, split=st.integers(1, 7))
def test_a_streamed_answer_ends_as_the_whole_one(
    text: str, calls: list[tuple[str, str, str]], usage: dict[str, int], split: int
) -> None:
    """Chunks cut at any size: the events are valid, numbered in order, and response.completed carries the same
    text, calls and usage as the whole answer's translation."""
    answer = _chat(text or None, calls, "tool_calls" if calls else "stop", usage)
    stream = ResponsesStream({}, "m", "resp_1", 1.0)
    events = []
    for piece in [text[i : i + split] for i in range(0, len(text), split)]:
        events += stream.feed({"choices": [{"index": 0, "delta": {"content": piece}}]})
    for index, (ident, name, arguments) in enumerate(calls):
        head = {"index": index, "id": ident, "function": {"name": name, "arguments": ""}}
        events += stream.feed({"choices": [{"index": 0, "delta": {"tool_calls": [head]}}]})
        for i in range(0, len(arguments), split):
            fragment = {"index": index, "function": {"arguments": arguments[i : i + split]}}
            events += stream.feed({"choices": [{"index": 0, "delta": {"tool_calls": [fragment]}}]})
    events += stream.feed(
        {"choices": [{"index": 0, "delta": {}, "finish_reason": answer["choices"][0]["finish_reason"]}]}
    )
    events += stream.feed({"choices": [], "usage": answer["usage"]})
    events += stream.finish()
    assert [e["sequence_number"] for e in events] == list(range(len(events)))
    assert events[-1]["type"] == "response.completed"
    again = back_to_chat(events[-1]["response"])
    assert again["choices"][0]["message"] == back_to_chat(from_chat(answer, {}, "m", "r", 1))["choices"][0]["message"]
    assert again["usage"] == answer["usage"]


def test_stream_events_are_valid_and_failures_end_with_response_failed() -> None:
    stream = ResponsesStream({"model": "auto"}, "m", "resp_1", 1.0)
    events = stream.feed({"choices": [{"index": 0, "delta": {"content": "Hi"}}]})
    events += stream.feed(
        {"choices": [{"index": 0, "delta": {"tool_calls": [{"index": 0, "function": {"arguments": "{"}}]}}]}
    )
    events += stream.failed(UpstreamUnavailable("deployment 'x' failed mid-stream"))
    for event in events:
        validate("ResponseStreamEvent", event)
    assert events[-1]["type"] == "response.failed" and events[-1]["response"]["status"] == "failed"
    assert events[-1]["response"]["error"]["code"] == "server_error"
    nameless = ResponsesStream({}, "m", "r", 1.0)
    nameless.feed({"choices": [{"index": 0, "delta": {"tool_calls": [{"index": 0, "function": {"arguments": "{}"}}]}}]})
    with pytest.raises(UpstreamBadResponse):
        nameless.finish()
