"""Anthropic Messages <-> OpenAI chat translation: requests, responses and errors.

Inputs are checked against the anthropic SDK's request types and outputs against OpenAI's OpenAPI
schema (requests) or the anthropic SDK's pydantic models (responses, errors), so a wrong shape fails here.
"""

from __future__ import annotations

import copy
from typing import Any

import anthropic
import orjson
import pydantic
import pytest
from anthropic.types import message_create_params

from gateway import errors
from gateway.translate.anthropic_messages import encode_event, error_body, error_event, from_openai, to_openai
from tests.oaschema import validate

ANTHROPIC_REQUEST = pydantic.TypeAdapter(message_create_params.MessageCreateParamsNonStreaming)
PNG = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg=="
CITY_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {"city": {"type": "string"}, "days": {"type": "integer"}},
    "required": ["city"],
}
WEATHER: dict[str, Any] = {"name": "get_weather", "description": "Weather in a city", "input_schema": CITY_SCHEMA}
TIME: dict[str, Any] = {"name": "get_time", "input_schema": {"type": "object", "properties": {}}}
CONVERSATION: dict[str, Any] = {
    "model": "claude-sonnet-4-5",
    "max_tokens": 1024,
    "system": [
        {"type": "text", "text": "You are a travel assistant.", "cache_control": {"type": "ephemeral"}},
        {"type": "text", "text": "Answer briefly."},
    ],
    "messages": [
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "What's the weather where this photo was taken?"},
                {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": PNG}},
            ],
        },
        {
            "role": "assistant",
            "content": [
                {"type": "thinking", "thinking": "Looks like Paris.", "signature": "c2ln"},
                {"type": "text", "text": "That is Paris. "},
                {"type": "text", "text": "Let me check."},
                {"type": "tool_use", "id": "toolu_01A", "name": "get_weather", "input": {"city": "Paris", "days": 2}},
                {"type": "tool_use", "id": "toolu_01B", "name": "get_time", "input": {}},
            ],
        },
        {
            "role": "user",
            "content": [
                {
                    "type": "tool_result",
                    "tool_use_id": "toolu_01A",
                    "content": [{"type": "text", "text": "18°C"}, {"type": "text", "text": "sunny"}],
                },
                {"type": "tool_result", "tool_use_id": "toolu_01B", "content": "14:05", "is_error": False},
                {"type": "text", "text": "And this one?", "cache_control": {"type": "ephemeral"}},
                {"type": "image", "source": {"type": "url", "url": "https://example.com/rome.jpg"}},
            ],
        },
        {"role": "assistant", "content": "It is"},
    ],
    "tools": [WEATHER, TIME],
    "tool_choice": {"type": "auto", "disable_parallel_tool_use": True},
    "temperature": 0.2,
    "top_p": 0.9,
    "top_k": 40,
    "stop_sequences": ["\n\nHuman:"],
    "metadata": {"user_id": "user-42"},
    "thinking": {"type": "enabled", "budget_tokens": 2048},
    "service_tier": "auto",
}
CONVERSATION_OPENAI: dict[str, Any] = {
    "model": "claude-sonnet-4-5",
    "messages": [
        {"role": "system", "content": "You are a travel assistant.\nAnswer briefly."},
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "What's the weather where this photo was taken?"},
                {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG}"}},
            ],
        },
        {
            "role": "assistant",
            "content": "That is Paris. Let me check.",
            "tool_calls": [
                {
                    "id": "toolu_01A",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": '{"city":"Paris","days":2}'},
                },
                {"id": "toolu_01B", "type": "function", "function": {"name": "get_time", "arguments": "{}"}},
            ],
        },
        {"role": "tool", "tool_call_id": "toolu_01A", "content": "18°C\nsunny"},
        {"role": "tool", "tool_call_id": "toolu_01B", "content": "14:05"},
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "And this one?"},
                {"type": "image_url", "image_url": {"url": "https://example.com/rome.jpg"}},
            ],
        },
        {"role": "assistant", "content": "It is"},
    ],
    "max_tokens": 1024,
    "temperature": 0.2,
    "top_p": 0.9,
    "top_k": 40,
    "stop": ["\n\nHuman:"],
    "tools": [
        {
            "type": "function",
            "function": {"name": "get_weather", "description": "Weather in a city", "parameters": CITY_SCHEMA},
        },
        {"type": "function", "function": {"name": "get_time", "parameters": {"type": "object", "properties": {}}}},
    ],
    "tool_choice": "auto",
    "parallel_tool_calls": False,
    "user": "user-42",
}


def request(*messages: Any, **fields: Any) -> dict[str, Any]:
    body = {"model": "claude-haiku-4-5", "max_tokens": 256, "messages": list(messages) or [user("Hi")]}
    return body | fields


def user(content: Any) -> dict[str, Any]:
    return {"role": "user", "content": content}


def translated(body: dict[str, Any]) -> dict[str, Any]:
    """to_openai(body), after checking body is a request the SDK can send and the result is one OpenAI accepts."""
    ANTHROPIC_REQUEST.validate_python(body)
    out = to_openai(body)
    validate("CreateChatCompletionRequest", out)
    return out


# ---- requests ------------------------------------------------------------------------------------


def test_a_conversation_with_system_images_and_tools_maps_field_by_field() -> None:
    assert translated(CONVERSATION) == CONVERSATION_OPENAI


def test_the_input_body_is_left_untouched() -> None:
    body = copy.deepcopy(CONVERSATION)
    to_openai(body)
    assert body == CONVERSATION


def test_string_system_and_string_content_stay_strings() -> None:
    out = translated(request(user("Hello"), {"role": "assistant", "content": "Hi!"}, system="Be terse."))
    assert out == {
        "model": "claude-haiku-4-5",
        "messages": [
            {"role": "system", "content": "Be terse."},
            {"role": "user", "content": "Hello"},
            {"role": "assistant", "content": "Hi!"},
        ],
        "max_tokens": 256,
    }


@pytest.mark.parametrize("system", ["", []])
def test_an_empty_system_prompt_adds_no_message(system: Any) -> None:
    assert translated(request(system=system))["messages"] == [{"role": "user", "content": "Hi"}]


def test_a_system_role_message_becomes_a_system_message_in_place() -> None:
    system = {"role": "system", "content": [{"type": "text", "text": "Now answer in French."}]}
    out = to_openai(request(user("Hi"), {"role": "assistant", "content": "Hello"}, system, user("Weather?")))
    assert out["messages"][2] == {"role": "system", "content": "Now answer in French."}


def test_stream_asks_the_upstream_for_usage() -> None:
    out = to_openai(request(stream=True))
    assert (out["stream"], out["stream_options"]) == (True, {"include_usage": True})
    validate("CreateChatCompletionRequest", out)
    assert "stream" not in to_openai(request(stream=False))


def test_thinking_metadata_without_user_and_unknown_fields_are_dropped() -> None:
    body = request(thinking={"type": "enabled", "budget_tokens": 1024}, metadata={}, service_tier="auto", extra=1)
    assert to_openai(body) == to_openai(request())


@pytest.mark.parametrize(
    ("choice", "expected"),
    [
        ({"type": "auto"}, {"tool_choice": "auto"}),
        ({"type": "any"}, {"tool_choice": "required"}),
        ({"type": "none"}, {"tool_choice": "none"}),
        ({"type": "tool", "name": "get_time"}, {"tool_choice": {"type": "function", "function": {"name": "get_time"}}}),
        (
            {"type": "any", "disable_parallel_tool_use": True},
            {"tool_choice": "required", "parallel_tool_calls": False},
        ),
        ({"type": "auto", "disable_parallel_tool_use": False}, {"tool_choice": "auto"}),
    ],
)
def test_tool_choice(choice: dict[str, Any], expected: dict[str, Any]) -> None:
    out = translated(request(tools=[WEATHER, TIME], tool_choice=choice))
    assert {k: v for k, v in out.items() if k in ("tool_choice", "parallel_tool_calls")} == expected


@pytest.mark.parametrize("choice", [{"type": "auto"}, {"type": "none"}])
def test_auto_or_none_without_tools_is_dropped(choice: dict[str, Any]) -> None:
    assert "tool_choice" not in translated(request(tool_choice=choice))
    assert "tools" not in translated(request(tools=[], tool_choice=choice))


def test_tool_results_go_before_the_text_of_their_turn() -> None:
    turn = user(
        [
            {"type": "tool_result", "tool_use_id": "call_1", "content": "boom", "is_error": True},
            {"type": "tool_result", "tool_use_id": "call_2"},
            {"type": "tool_result", "tool_use_id": "call_3", "content": []},
            {"type": "text", "text": "Try again."},
        ]
    )
    calls = [{"type": "tool_use", "id": f"call_{n}", "name": "get_time", "input": {}} for n in (1, 2, 3)]
    out = translated(request(user("Time?"), {"role": "assistant", "content": calls}, turn, tools=[TIME]))
    assert out["messages"][1]["content"] is None
    assert out["messages"][2:] == [
        {"role": "tool", "tool_call_id": "call_1", "content": "Error: boom"},
        {"role": "tool", "tool_call_id": "call_2", "content": ""},
        {"role": "tool", "tool_call_id": "call_3", "content": ""},
        {"role": "user", "content": [{"type": "text", "text": "Try again."}]},
    ]


PDF_DATA = "JVBERi0xLjQK"
DOCUMENTS: list[tuple[dict[str, Any], list[dict[str, Any]]]] = [
    (
        {"type": "document", "source": {"type": "text", "media_type": "text/plain", "data": "Q3 up."}},
        [{"type": "text", "text": "Q3 up."}],
    ),
    (
        {
            "type": "document",
            "title": "Memo",
            "context": "From finance.",
            "citations": {"enabled": True},
            "source": {"type": "text", "media_type": "text/plain", "data": "Q3 up."},
        },
        [{"type": "text", "text": "Memo\n\nFrom finance.\n\nQ3 up."}],
    ),
    (
        {
            "type": "document",
            "title": "Deck",
            "source": {"type": "content", "content": [{"type": "text", "text": "a"}]},
        },
        [{"type": "text", "text": "Deck"}, {"type": "text", "text": "a"}],
    ),
    (
        {"type": "document", "source": {"type": "content", "content": "plain"}},
        [{"type": "text", "text": "plain"}],
    ),
    (
        {"type": "document", "source": {"type": "base64", "media_type": "application/pdf", "data": PDF_DATA}},
        [
            {
                "type": "file",
                "file": {"filename": "document.pdf", "file_data": f"data:application/pdf;base64,{PDF_DATA}"},
            }
        ],
    ),
    (
        {"type": "document", "title": "Q3", "source": {"type": "url", "url": "https://example.com/q3.pdf"}},
        [
            {
                "type": "text",
                "text": "[document 'Q3' at https://example.com/q3.pdf: not attached, "
                "this model cannot read it from there]",
            }
        ],
    ),
    (
        {"type": "image", "source": {"type": "file", "file_id": "file_01"}},
        [{"type": "text", "text": "[image at file_01: not attached, this model cannot read it from there]"}],
    ),
]


@pytest.mark.parametrize(("block", "parts"), DOCUMENTS)
def test_documents_become_text_or_file_parts(block: dict[str, Any], parts: list[dict[str, Any]]) -> None:
    body = request(user([block]))
    ANTHROPIC_REQUEST.validate_python(body)
    out = to_openai(body)
    validate("CreateChatCompletionRequest", out)
    assert out["messages"] == [{"role": "user", "content": parts}]


def test_images_and_documents_of_a_tool_result_follow_the_tool_messages() -> None:
    image = {"type": "image", "source": {"type": "url", "url": "https://example.com/map.png"}}
    pdf = {"type": "document", "source": {"type": "base64", "media_type": "application/pdf", "data": PDF_DATA}}
    calls = [{"type": "tool_use", "id": f"call_{n}", "name": "get_time", "input": {}} for n in (1, 2)]
    turn = user(
        [
            {"type": "tool_result", "tool_use_id": "call_1", "content": [{"type": "text", "text": "map:"}, image]},
            {"type": "tool_result", "tool_use_id": "call_2", "content": [pdf]},
            {"type": "text", "text": "Compare them."},
        ]
    )
    body = request(user("Time?"), {"role": "assistant", "content": calls}, turn, tools=[TIME])
    ANTHROPIC_REQUEST.validate_python(body)
    out = to_openai(body)
    validate("CreateChatCompletionRequest", out)
    assert out["messages"][2:4] == [
        {"role": "tool", "tool_call_id": "call_1", "content": "map:"},
        {"role": "tool", "tool_call_id": "call_2", "content": ""},
    ]
    assert out["messages"][4]["role"] == "user"
    assert [p["type"] for p in out["messages"][4]["content"]] == ["text", "image_url", "text", "file", "text"]
    assert out["messages"][4]["content"][0]["text"] == "Attachments of the tool result call_1:"
    assert out["messages"][4]["content"][-1] == {"type": "text", "text": "Compare them."}


def test_an_assistant_turn_of_only_thinking_keeps_an_empty_content() -> None:
    thinking = {"role": "assistant", "content": [{"type": "redacted_thinking", "data": "abc"}]}
    assert to_openai(request(user("Hi"), thinking))["messages"][1] == {"role": "assistant", "content": ""}


INVALID: list[tuple[dict[str, Any], str]] = [
    ({"model": None}, "model"),
    ({"model": ""}, "model"),
    ({"messages": None}, "messages"),
    ({"messages": []}, "messages"),
    ({"max_tokens": None}, "max_tokens"),
    ({"max_tokens": 0}, "max_tokens"),
    ({"max_tokens": True}, "max_tokens"),
    ({"max_tokens": "100"}, "max_tokens"),
    ({"messages": ["Hi"]}, "messages[0]"),
    ({"messages": [{"role": "tool", "content": "x"}]}, "messages[0].role"),
    ({"messages": [{"role": "system"}]}, "messages[0].content"),
    ({"messages": [user(None)]}, "messages[0].content"),
    ({"messages": [user([])]}, "messages[0].content"),
    ({"messages": [user([{"text": "no type"}])]}, "messages[0].content[0]"),
    ({"messages": [user([{"type": "text", "text": 5}])]}, "messages[0].content[0].text"),
    ({"messages": [user([{"type": "document", "source": {}}])]}, "messages[0].content[0].source.type"),
    (
        {
            "messages": [
                user([{"type": "document", "source": {"type": "base64", "media_type": "text/csv", "data": "x"}}])
            ]
        },
        "messages[0].content[0].source.media_type",
    ),
    ({"messages": [user([{"type": "document", "source": {"type": "text"}}])]}, "messages[0].content[0].source.data"),
    (
        {"messages": [user([{"type": "document", "title": 5, "source": {"type": "text", "data": "x"}}])]},
        "messages[0].content[0].title",
    ),
    ({"messages": [user([{"type": "search_result", "source": "x"}])]}, "messages[0].content[0].type"),
    ({"messages": [user([{"type": "tool_use", "id": "t", "name": "n", "input": {}}])]}, "messages[0].content[0].type"),
    ({"messages": [user([{"type": "image"}])]}, "messages[0].content[0].source"),
    (
        {"messages": [user([{"type": "image", "source": {"type": "file"}}])]},
        "messages[0].content[0].source.file_id",
    ),
    (
        {"messages": [user([{"type": "image", "source": {"type": "bytes", "file_id": "f"}}])]},
        "messages[0].content[0].source.type",
    ),
    (
        {"messages": [user([{"type": "image", "source": {"type": "base64", "media_type": "image/bmp", "data": "x"}}])]},
        "messages[0].content[0].source.media_type",
    ),
    (
        {"messages": [user([{"type": "image", "source": {"type": "base64", "media_type": "image/png"}}])]},
        "messages[0].content[0].source.data",
    ),
    (
        {"messages": [user([{"type": "image", "source": {"type": "base64", "media_type": {}, "data": "x"}}])]},
        "messages[0].content[0].source.media_type",
    ),
    ({"messages": [user([{"type": "image", "source": {"type": "url"}}])]}, "messages[0].content[0].source.url"),
    ({"messages": [user([{"type": "tool_result", "content": "x"}])]}, "messages[0].content[0].tool_use_id"),
    (
        {
            "messages": [
                user([{"type": "tool_result", "tool_use_id": "t", "content": [{"type": "image", "source": {}}]}])
            ]
        },
        "messages[0].content[0].content[0].source.type",
    ),
    (
        {"messages": [{"role": "assistant", "content": [{"type": "tool_result", "tool_use_id": "t"}]}]},
        "messages[0].content[0].type",
    ),
    (
        {"messages": [{"role": "assistant", "content": [{"type": "tool_use", "name": "n"}]}]},
        "messages[0].content[0].id",
    ),
    (
        {"messages": [{"role": "assistant", "content": [{"type": "tool_use", "id": "t", "name": "n", "input": []}]}]},
        "messages[0].content[0].input",
    ),
    ({"system": 5}, "system"),
    ({"system": [{"type": "image", "source": {}}]}, "system[0].type"),
    ({"temperature": "hot"}, "temperature"),
    ({"top_p": -0.1}, "top_p"),
    ({"top_k": 1.5}, "top_k"),
    ({"stop_sequences": "END"}, "stop_sequences"),
    ({"stop_sequences": [1]}, "stop_sequences"),
    ({"stream": "yes"}, "stream"),
    ({"metadata": "user-1"}, "metadata"),
    ({"metadata": {"user_id": 7}}, "metadata.user_id"),
    ({"tools": {"name": "x"}}, "tools"),
    ({"tools": ["get_time"]}, "tools[0]"),
    ({"tools": [{"input_schema": {}}]}, "tools[0].name"),
    ({"tools": [{"name": "x"}]}, "tools[0].input_schema"),
    ({"tools": [{"name": "x", "description": 1, "input_schema": {}}]}, "tools[0].description"),
    ({"tools": [{"type": "web_search_20250305", "name": "web_search"}]}, "tools[0].type"),
    ({"tools": [TIME], "tool_choice": "auto"}, "tool_choice"),
    ({"tools": [TIME], "tool_choice": {"type": "required"}}, "tool_choice"),
    ({"tools": [TIME], "tool_choice": {"type": "tool", "name": "get_weather"}}, "tool_choice.name"),
    ({"tool_choice": {"type": "any"}}, "tool_choice"),
]


@pytest.mark.parametrize(("fields", "param"), INVALID, ids=[param for _, param in INVALID])
def test_invalid_requests_name_the_field(fields: dict[str, Any], param: str) -> None:
    with pytest.raises(errors.InvalidRequest) as caught:
        to_openai(request() | fields)
    assert caught.value.param == param
    assert f"'{param}" in caught.value.message


# Values of every JSON type, including the unhashable ones a set or dict lookup trips over.
WRONG_TYPES: list[Any] = [None, True, 0, -1, 1.5, "", "x", [], [None], [[]], [{}], {}, {"type": None}, {"type": {}}]


def paths(value: Any, at: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """The path of every value inside ``value``'s objects and arrays."""
    children = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else ()
    return [path for key, child in children for path in [(*at, key), *paths(child, (*at, key))]]


@pytest.mark.parametrize("path", paths(CONVERSATION), ids=lambda path: ".".join(map(str, path)))
def test_a_wrong_type_at_any_field_is_refused_naming_a_field_or_translated(path: tuple[Any, ...]) -> None:
    """Never a TypeError, KeyError or AttributeError (a 500 at the edge); a translation must serialize."""
    for wrong in WRONG_TYPES:
        body = copy.deepcopy(CONVERSATION)
        parent = body
        for key in path[:-1]:
            parent = parent[key]
        parent[path[-1]] = wrong
        try:
            out = to_openai(body)
        except errors.InvalidRequest as exc:
            assert exc.param and exc.param.split("[")[0].split(".")[0] in body, (wrong, exc.param)
            continue
        orjson.dumps(out)


# ---- responses -----------------------------------------------------------------------------------


def completion(message: dict[str, Any], finish_reason: str | None = "stop", **usage: Any) -> dict[str, Any]:
    counts = {"prompt_tokens": 42, "completion_tokens": 7, "total_tokens": 49} | usage
    choice = {"index": 0, "message": {"role": "assistant", "refusal": None} | message, "finish_reason": finish_reason}
    return {
        "id": "chatcmpl-B9MHDbslfkBeAs8l4bebGdFOJ6PeG",
        "object": "chat.completion",
        "created": 1741570283,
        "model": "qwen3-32b",
        "choices": [choice | {"logprobs": None}],
        "usage": counts,
    }


def message(response: dict[str, Any]) -> dict[str, Any]:
    """from_openai(response), after checking response is an OpenAI answer and the result an Anthropic Message."""
    if response["choices"][0]["finish_reason"] is not None:
        validate("CreateChatCompletionResponse", response)
    out = from_openai(response, "claude-sonnet-4-5")
    anthropic.types.Message.model_validate(out)
    return out


def test_a_text_answer() -> None:
    assert message(completion({"content": "Paris is sunny."})) == {
        "id": "msg_chatcmpl-B9MHDbslfkBeAs8l4bebGdFOJ6PeG",
        "type": "message",
        "role": "assistant",
        "model": "claude-sonnet-4-5",
        "content": [{"type": "text", "text": "Paris is sunny."}],
        "stop_reason": "end_turn",
        "stop_sequence": None,
        "usage": {
            "input_tokens": 42,
            "output_tokens": 7,
            "cache_creation_input_tokens": 0,
            "cache_read_input_tokens": 0,
        },
    }


def test_tool_calls_become_tool_use_blocks_with_their_ids() -> None:
    calls = [
        {"id": "call_a", "type": "function", "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'}},
        {"id": "call_b", "type": "function", "function": {"name": "get_time", "arguments": ""}},
    ]
    out = message(completion({"content": "Checking.", "tool_calls": calls}, "tool_calls"))
    assert out["content"] == [
        {"type": "text", "text": "Checking."},
        {"type": "tool_use", "id": "call_a", "name": "get_weather", "input": {"city": "Paris"}},
        {"type": "tool_use", "id": "call_b", "name": "get_time", "input": {}},
    ]
    assert out["stop_reason"] == "tool_use"


@pytest.mark.parametrize("arguments", ['{"city": "Par', "[1, 2]", '"Paris"'])
def test_arguments_that_are_not_a_json_object_are_kept_raw(arguments: str) -> None:
    call = {"id": "call_a", "type": "function", "function": {"name": "get_weather", "arguments": arguments}}
    out = message(completion({"content": None, "tool_calls": [call]}, "tool_calls"))
    assert out["content"] == [{"type": "tool_use", "id": "call_a", "name": "get_weather", "input": {"_raw": arguments}}]


def test_a_tool_call_without_an_id_gets_one() -> None:
    call = {"type": "function", "function": {"name": "get_time", "arguments": "{}"}}
    (block,) = from_openai(completion({"content": None, "tool_calls": [call]}), "m")["content"]
    assert block["id"].startswith("toolu_")


@pytest.mark.parametrize(
    ("finish_reason", "tool_calls", "stop_reason"),
    [
        ("stop", False, "end_turn"),
        ("length", False, "max_tokens"),
        ("content_filter", False, "refusal"),
        ("tool_calls", True, "tool_use"),
        ("function_call", True, "tool_use"),
        ("stop", True, "tool_use"),
        ("length", True, "max_tokens"),
        (None, False, "end_turn"),
        ("eos", False, "end_turn"),
    ],
)
def test_finish_reason_maps_to_stop_reason(finish_reason: str | None, tool_calls: bool, stop_reason: str) -> None:
    calls = [{"id": "c", "type": "function", "function": {"name": "f", "arguments": "{}"}}] if tool_calls else None
    response = completion({"content": "x", "tool_calls": calls}, finish_reason)
    out = from_openai(response, "m")
    anthropic.types.Message.model_validate(out)
    assert (out["stop_reason"], out["stop_sequence"]) == (stop_reason, None)


def test_cached_prompt_tokens_are_reported_as_cache_reads() -> None:
    response = completion({"content": "x"}, prompt_tokens_details={"cached_tokens": 40})
    assert message(response)["usage"] == {
        "input_tokens": 2,
        "output_tokens": 7,
        "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": 40,
    }


def test_a_refusal_is_the_text_and_an_empty_answer_has_no_blocks() -> None:
    refused = message(completion({"content": None, "refusal": "I can't help with that."}, "content_filter"))
    assert (refused["content"], refused["stop_reason"]) == (
        [{"type": "text", "text": "I can't help with that."}],
        "refusal",
    )
    assert message(completion({"content": ""}, "length"))["content"] == []


def test_missing_usage_and_id_still_make_a_valid_message() -> None:
    response = {"choices": [{"index": 0, "message": {"role": "assistant", "content": "ok"}, "finish_reason": "stop"}]}
    out = from_openai(response, "m")
    anthropic.types.Message.model_validate(out)
    assert out["id"].startswith("msg_")
    assert out["usage"]["input_tokens"] == out["usage"]["output_tokens"] == 0


@pytest.mark.parametrize(
    "response",
    [
        {"choices": []},
        {"choices": [{"index": 0, "finish_reason": "stop"}]},
        {"choices": [{"index": 0, "message": {"tool_calls": [{"id": "c", "function": {}}]}}]},
    ],
)
def test_a_malformed_upstream_answer_is_a_bad_response(response: dict[str, Any]) -> None:
    with pytest.raises(errors.UpstreamBadResponse):
        from_openai(response, "m")


# ---- errors and the SSE wire ---------------------------------------------------------------------

ERRORS: list[tuple[errors.GatewayError, str]] = [
    (errors.InvalidRequest("bad", param="messages"), "invalid_request_error"),
    (errors.NotCapable("no vision"), "invalid_request_error"),
    (errors.AuthenticationFailed("no key"), "authentication_error"),
    (errors.PolicyDenied("origin CN is not allowed"), "permission_error"),
    (errors.ModelNotFound("no such model"), "not_found_error"),
    (errors.RouteNotFound("no route"), "not_found_error"),
    (errors.MethodNotAllowed("GET"), "invalid_request_error"),
    (errors.UpstreamRateLimited("slow down"), "rate_limit_error"),
    (errors.UpstreamError("broke"), "api_error"),
    (errors.UpstreamBadResponse("garbled"), "api_error"),
    (errors.UpstreamUnavailable("down"), "overloaded_error"),
    (errors.UpstreamTimeout("slow"), "timeout_error"),
    (errors.UpstreamRejected("refused"), "invalid_request_error"),
    (errors.AllCandidatesFailed("all down", status=503, code="upstream_unavailable"), "overloaded_error"),
    (errors.AllCandidatesFailed("all limited", status=429, code="rate_limit_exceeded"), "rate_limit_error"),
    (errors.GatewayError("oops"), "api_error"),
]


@pytest.mark.parametrize(("exc", "kind"), ERRORS, ids=[type(e).__name__ + str(e.status) for e, _ in ERRORS])
def test_error_body_has_anthropic_shape_and_type(exc: errors.GatewayError, kind: str) -> None:
    body = error_body(exc)
    extra = {"code": exc.code} | ({"param": exc.param} if exc.param else {})
    assert body == {"type": "error", "error": {"type": kind, "message": exc.message} | extra}
    anthropic.types.ErrorResponse.model_validate(body)


def test_a_body_too_large_is_request_too_large_as_the_api_documents() -> None:
    # The API docs list 413 request_too_large; the SDK's ErrorObject union does not, so no model check here.
    assert error_body(errors.BodyTooLarge("too big"))["error"]["type"] == "request_too_large"


def test_error_body_carries_a_request_id_when_given() -> None:
    body = error_body(errors.ModelNotFound("nope"), request_id="req_123")
    assert anthropic.types.ErrorResponse.model_validate(body).request_id == "req_123"


def test_error_event_and_its_encoding() -> None:
    name, data = error_event(errors.UpstreamTimeout("The upstream took too long."))
    assert name == "error"
    error = {"type": "timeout_error", "message": "The upstream took too long.", "code": "upstream_timeout"}
    assert data == {"type": "error", "error": error}
    raw = encode_event(name, data)
    head, line, end = raw.split(b"\n", 2)
    assert (head, end) == (b"event: error", b"\n")
    assert orjson.loads(line.removeprefix(b"data: ")) == data


def test_encode_event_is_one_sse_event() -> None:
    data = {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "é\nx"}}
    assert encode_event("content_block_delta", data) == (
        b'event: content_block_delta\ndata: {"type":"content_block_delta","index":0,'
        + b'"delta":{"type":"text_delta","text":"\xc3\xa9\\nx"}}\n\n'
    )


@pytest.mark.parametrize(
    ("finish_reason", "matched", "expected"),
    [
        ("stop", "END", ("stop_sequence", "END")),
        ("stop", 151645, ("end_turn", None)),
        ("length", "END", ("max_tokens", None)),
    ],
)
def test_vllms_stop_reason_names_the_stop_sequence(finish_reason: str, matched: Any, expected: tuple[Any, Any]) -> None:
    choice = {"index": 0, "message": {"role": "assistant", "content": "Done"}, "finish_reason": finish_reason}
    message = from_openai({"id": "x", "choices": [choice | {"stop_reason": matched}]}, "m")
    assert (message["stop_reason"], message["stop_sequence"]) == expected
    anthropic.types.Message.model_validate(message)
