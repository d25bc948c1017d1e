"""OpenAI chunk streams as Anthropic stream events, checked event by event and through the SDK's own accumulation."""

from __future__ import annotations

from typing import Any

import anthropic
import pydantic
import pytest
from anthropic.lib.streaming._messages import accumulate_event

from gateway.errors import UpstreamBadResponse
from gateway.translate.anthropic_messages import from_openai
from gateway.translate.anthropic_stream import Event, StreamTranslator
from tests.oaschema import validate

STREAM_EVENT = pydantic.TypeAdapter(anthropic.types.RawMessageStreamEvent)
MODEL = "claude-sonnet-4-5"
ID = "chatcmpl-B9MBs8CjcvOU2jLn4n570S5qMJKcT"
USAGE = {"prompt_tokens": 31, "completion_tokens": 9, "total_tokens": 40}
ZERO_USAGE = {"input_tokens": 0, "output_tokens": 0, "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0}
FULL_USAGE = {"input_tokens": 31, "output_tokens": 9, "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0}


def chunk(delta: dict[str, Any] | None = None, finish_reason: str | None = None, index: int = 0) -> dict[str, Any]:
    choice = {"index": index, "delta": delta or {}, "logprobs": None, "finish_reason": finish_reason}
    return {
        "id": ID,
        "object": "chat.completion.chunk",
        "created": 1741569952,
        "model": "qwen3-32b",
        "system_fingerprint": "fp_3b0d9c",
        "choices": [choice],
    }


def usage_chunk(**usage: Any) -> dict[str, Any]:
    return chunk() | {"choices": [], "usage": USAGE | usage}


def tool_delta(index: int, arguments: str, ident: str | None = None, name: str | None = None) -> dict[str, Any]:
    call: dict[str, Any] = {"index": index, "function": {"arguments": arguments}}
    if ident is not None:
        call |= {"id": ident, "type": "function"}
    if name is not None:
        call["function"]["name"] = name
    return {"tool_calls": [call]}


TEXT_CHUNKS = [
    chunk({"role": "assistant", "content": "", "refusal": None}),
    chunk({"content": "Paris"}),
    chunk({"content": " is sunny."}),
    chunk({}, "stop"),
    usage_chunk(),
]
TOOL_CHUNKS = [
    chunk({"role": "assistant", "content": None}),
    chunk({"content": "Let me check."}),
    chunk(tool_delta(0, "", "call_weather", "get_weather")),
    chunk(tool_delta(0, '{"ci')),
    chunk(tool_delta(0, 'ty": "Par')),
    chunk(tool_delta(0, 'is", "days": 2}')),
    chunk(tool_delta(1, "", "call_time", "get_time")),
    chunk(tool_delta(1, "{}")),
    chunk({}, "tool_calls"),
    usage_chunk(),
]
TOOL_ANSWER = {
    "id": ID,
    "object": "chat.completion",
    "created": 1741569952,
    "model": "qwen3-32b",
    "choices": [
        {
            "index": 0,
            "message": {
                "role": "assistant",
                "content": "Let me check.",
                "refusal": None,
                "tool_calls": [
                    {
                        "id": "call_weather",
                        "type": "function",
                        "function": {"name": "get_weather", "arguments": '{"city": "Paris", "days": 2}'},
                    },
                    {"id": "call_time", "type": "function", "function": {"name": "get_time", "arguments": "{}"}},
                ],
            },
            "logprobs": None,
            "finish_reason": "tool_calls",
        }
    ],
    "usage": USAGE,
}


def translate(chunks: list[dict[str, Any]]) -> list[Event]:
    """Every event for ``chunks``, each checked against the SDK's stream event types."""
    translator = StreamTranslator(MODEL)
    events = [event for c in chunks for event in translator.feed(c)] + translator.finish()
    for name, data in events:
        assert STREAM_EVENT.validate_python(data).type == name == data["type"]
    return events


def accumulated(events: list[Event]) -> anthropic.types.Message:
    """The final message the SDK's stream helper builds from these events."""
    snapshot = None
    buffers: dict[int, bytes] = {}
    for _, data in events:
        event = STREAM_EVENT.validate_python(data)
        snapshot = accumulate_event(event=event, current_snapshot=snapshot, json_bufs=buffers)
    assert snapshot is not None
    return snapshot


def start(usage: dict[str, Any] = ZERO_USAGE) -> Event:
    message: dict[str, Any] = {
        "id": f"msg_{ID}",
        "type": "message",
        "role": "assistant",
        "model": MODEL,
        "content": [],
        "stop_reason": None,
        "stop_sequence": None,
        "usage": usage,
    }
    return "message_start", {"type": "message_start", "message": message}


def block_start(index: int, block: dict[str, Any]) -> Event:
    return "content_block_start", {"type": "content_block_start", "index": index, "content_block": block}


def text(index: int, piece: str) -> Event:
    delta = {"type": "text_delta", "text": piece}
    return "content_block_delta", {"type": "content_block_delta", "index": index, "delta": delta}


def arguments(index: int, piece: str) -> Event:
    delta = {"type": "input_json_delta", "partial_json": piece}
    return "content_block_delta", {"type": "content_block_delta", "index": index, "delta": delta}


def stop(index: int) -> Event:
    return "content_block_stop", {"type": "content_block_stop", "index": index}


def end(stop_reason: str, usage: dict[str, Any] = FULL_USAGE) -> list[Event]:
    delta = {"type": "message_delta", "delta": {"stop_reason": stop_reason, "stop_sequence": None}, "usage": usage}
    return [("message_delta", delta), ("message_stop", {"type": "message_stop"})]


def test_the_chunk_fixtures_are_valid_openai_chunks() -> None:
    for c in TEXT_CHUNKS + TOOL_CHUNKS:
        validate("CreateChatCompletionStreamResponse", c)
    validate("CreateChatCompletionResponse", TOOL_ANSWER)


def test_a_text_stream_event_by_event() -> None:
    assert translate(TEXT_CHUNKS) == [
        start(),
        block_start(0, {"type": "text", "text": ""}),
        text(0, "Paris"),
        text(0, " is sunny."),
        stop(0),
        *end("end_turn"),
    ]


def test_a_text_then_tools_stream_event_by_event() -> None:
    weather = {"type": "tool_use", "id": "call_weather", "name": "get_weather", "input": {}}
    time = {"type": "tool_use", "id": "call_time", "name": "get_time", "input": {}}
    assert translate(TOOL_CHUNKS) == [
        start(),
        block_start(0, {"type": "text", "text": ""}),
        text(0, "Let me check."),
        stop(0),
        block_start(1, weather),
        arguments(1, '{"ci'),
        arguments(1, 'ty": "Par'),
        arguments(1, 'is", "days": 2}'),
        stop(1),
        block_start(2, time),
        arguments(2, "{}"),
        stop(2),
        *end("tool_use"),
    ]


def test_the_sdk_accumulates_the_same_message_as_the_unstreamed_answer() -> None:
    streamed = accumulated(translate(TOOL_CHUNKS))
    whole = anthropic.types.Message.model_validate(from_openai(TOOL_ANSWER, MODEL))
    assert streamed.model_dump(exclude_none=True) == whole.model_dump(exclude_none=True)
    assert streamed.content[1].type == "tool_use"
    assert streamed.content[1].input == {"city": "Paris", "days": 2}
    assert (streamed.usage.input_tokens, streamed.usage.output_tokens) == (31, 9)


def test_the_sdk_accumulates_a_text_stream() -> None:
    message = accumulated(translate(TEXT_CHUNKS))
    assert [block.model_dump(exclude_none=True) for block in message.content] == [
        {"type": "text", "text": "Paris is sunny."}
    ]
    assert message.stop_reason == "end_turn"


def test_without_a_usage_chunk_only_output_tokens_are_reported() -> None:
    events = translate(TEXT_CHUNKS[:-1])
    assert events[-2:] == end("end_turn", {"output_tokens": 0})
    assert accumulated(events).usage.input_tokens == 0


def test_cached_tokens_are_cache_reads() -> None:
    events = translate([*TEXT_CHUNKS[:-1], usage_chunk(prompt_tokens_details={"cached_tokens": 30})])
    assert events[-2][1]["usage"] == FULL_USAGE | {"input_tokens": 1, "cache_read_input_tokens": 30}


def test_a_usage_chunk_first_fills_message_start() -> None:
    translator = StreamTranslator(MODEL)
    assert translator.feed(usage_chunk()) == [start(FULL_USAGE)]


def test_finish_alone_is_a_complete_empty_message() -> None:
    events = StreamTranslator(MODEL).finish()
    assert [name for name, _ in events] == ["message_start", "message_delta", "message_stop"]
    assert accumulated(events).content == []


def test_text_after_a_tool_call_opens_a_new_block() -> None:
    chunks = [chunk(tool_delta(0, "{}", "call_1", "get_time")), chunk({"content": "Done."}), chunk({}, "tool_calls")]
    events = translate(chunks)
    assert events[1:6] == [
        block_start(0, {"type": "tool_use", "id": "call_1", "name": "get_time", "input": {}}),
        arguments(0, "{}"),
        stop(0),
        block_start(1, {"type": "text", "text": ""}),
        text(1, "Done."),
    ]
    assert events[-2][1]["delta"]["stop_reason"] == "tool_use"


def test_argument_fragments_before_the_name_wait_for_it() -> None:
    chunks = [chunk(tool_delta(0, '{"a"', "call_1")), chunk(tool_delta(0, ": 1}", name="f")), chunk({}, "tool_calls")]
    events = translate(chunks)
    assert events[1:4] == [
        block_start(0, {"type": "tool_use", "id": "call_1", "name": "f", "input": {}}),
        arguments(0, '{"a": 1}'),
        stop(0),
    ]


def test_a_new_id_at_a_reused_index_is_a_new_tool_call() -> None:
    chunks = [chunk(tool_delta(0, "{}", "call_1", "f")), chunk(tool_delta(0, '{"x": 1}', "call_2", "g"))]
    message = accumulated(translate([*chunks, chunk({}, "tool_calls")]))
    assert [(b.type, getattr(b, "id", None), getattr(b, "input", None)) for b in message.content] == [
        ("tool_use", "call_1", {}),
        ("tool_use", "call_2", {"x": 1}),
    ]


def test_other_choices_and_reasoning_are_ignored() -> None:
    chunks = [chunk({"content": "other"}, index=1), chunk({"reasoning_content": "hmm"}), chunk({"content": "a"})]
    events = translate(chunks)
    assert [e for e in events if e[0] == "content_block_delta"] == [text(0, "a")]


def test_interleaved_tool_calls_are_a_bad_response() -> None:
    translator = StreamTranslator(MODEL)
    translator.feed(chunk(tool_delta(0, '{"a', "call_1", "f")))
    translator.feed(chunk(tool_delta(1, "{}", "call_2", "g")))
    with pytest.raises(UpstreamBadResponse):
        translator.feed(chunk(tool_delta(0, '": 1}')))


def test_a_tool_call_that_is_never_named_is_a_bad_response() -> None:
    translator = StreamTranslator(MODEL)
    assert translator.feed(chunk(tool_delta(0, "{}", "call_1")))[1:] == []
    with pytest.raises(UpstreamBadResponse):
        translator.finish()


def test_vllms_matched_stop_string_is_the_stop_sequence() -> None:
    finishing = chunk(finish_reason="stop")
    finishing["choices"][0]["stop_reason"] = "END"
    final = accumulated(translate([chunk({"content": "Done"}), finishing, usage_chunk()]))
    assert (final.stop_reason, final.stop_sequence) == ("stop_sequence", "END")
    token = chunk(finish_reason="stop")
    token["choices"][0]["stop_reason"] = 151645  # vLLM: a stop token id, not a stop sequence
    assert accumulated(translate([chunk({"content": "Done"}), token])).stop_reason == "end_turn"
