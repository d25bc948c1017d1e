"""The stand-ins end a tool loop: once the exchange holds a tool result they answer with text, in both wire
formats, whole and streamed, also when a user turn or text blocks come after the results (as Claude Code
sends them); a new question after a text answer may call a tool again."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import anthropic
import openai
import pytest

from gateway.standin.anthropic_wire import create_anthropic_app
from gateway.standin.control import Control
from gateway.standin.openai_wire import create_openai_app
from gateway.standin.server import ThreadedServer
from tests.conftest import Upstreams

FUNCTION: Any = {"type": "function", "function": {"name": "Task", "parameters": {"type": "object"}}}
TOOL: Any = {"name": "Task", "input_schema": {"type": "object", "properties": {}}}
REMINDER = "<system-reminder>Keep going.</system-reminder>"


@pytest.fixture(scope="module")
def openai_client() -> Iterator[openai.OpenAI]:
    with (
        ThreadedServer(create_openai_app(Control(), name="loop")) as server,
        openai.OpenAI(base_url=server.url + "/v1", api_key="k", max_retries=0) as client,
    ):
        yield client


@pytest.fixture(scope="module")
def anthropic_client() -> Iterator[anthropic.Anthropic]:
    with (
        ThreadedServer(create_anthropic_app(Control())) as server,
        anthropic.Anthropic(base_url=server.url, api_key="k", max_retries=0) as client,
    ):
        yield client


def openai_history(after_results: list[Any]) -> list[Any]:
    call = {"id": "call_1", "type": "function", "function": {"name": "Task", "arguments": "{}"}}
    return [
        {"role": "user", "content": "say hi"},
        {"role": "assistant", "content": None, "tool_calls": [call]},
        {"role": "tool", "tool_call_id": "call_1", "content": "done: hi"},
        *after_results,
    ]


def openai_reply(client: openai.OpenAI, messages: list[Any], stream: bool) -> tuple[str | None, list[str]]:
    """(finish reason, names of the tools called) of a whole or streamed answer."""
    if not stream:
        choice = client.chat.completions.create(model="m", messages=messages, tools=[FUNCTION]).choices[0]
        return choice.finish_reason, [c.function.name for c in choice.message.tool_calls or []]  # type: ignore[union-attr]
    with client.chat.completions.stream(model="m", messages=messages, tools=[FUNCTION]) as events:
        final = events.get_final_completion().choices[0]
    return final.finish_reason, [c.function.name for c in final.message.tool_calls or []]


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "streamed"])
@pytest.mark.parametrize(
    "after", [[], [{"role": "user", "content": REMINDER}]], ids=["result-last", "user-turn-after-the-result"]
)
def test_openai_wire_answers_text_once_a_tool_result_is_in(
    openai_client: openai.OpenAI, stream: bool, after: list[Any]
) -> None:
    assert openai_reply(openai_client, [{"role": "user", "content": "say hi"}], stream) == ("tool_calls", ["Task"])
    assert openai_reply(openai_client, openai_history(after), stream) == ("stop", [])


def test_openai_wire_text_quotes_the_tool_result(openai_client: openai.OpenAI) -> None:
    answer = openai_client.chat.completions.create(
        model="m", messages=openai_history([{"role": "user", "content": REMINDER}]), tools=[FUNCTION]
    )
    assert answer.choices[0].message.content == "[m] Based on the tool result: done: hi"


def test_openai_wire_a_new_question_after_a_text_answer_may_call_again(openai_client: openai.OpenAI) -> None:
    history = openai_history([{"role": "assistant", "content": "hi"}, {"role": "user", "content": "again"}])
    assert openai_reply(openai_client, history, False) == ("tool_calls", ["Task"])


def anthropic_history(result_turn: list[Any], *after: Any) -> list[Any]:
    return [
        {"role": "user", "content": "say hi"},
        {"role": "assistant", "content": [{"type": "tool_use", "id": "toolu_1", "name": "Task", "input": {}}]},
        {"role": "user", "content": result_turn},
        *after,
    ]


RESULT: Any = {"type": "tool_result", "tool_use_id": "toolu_1", "content": [{"type": "text", "text": "done: hi"}]}


def anthropic_reply(
    client: anthropic.Anthropic, messages: list[Any], stream: bool, model: str = "c"
) -> tuple[str | None, list[str]]:
    if not stream:
        message = client.messages.create(model=model, max_tokens=200, messages=messages, tools=[TOOL])
    else:
        with client.messages.stream(model=model, max_tokens=200, messages=messages, tools=[TOOL]) as events:
            message = events.get_final_message()
    return message.stop_reason, [b.name for b in message.content if b.type == "tool_use"]


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "streamed"])
@pytest.mark.parametrize(
    "history",
    [
        anthropic_history([RESULT]),
        anthropic_history([RESULT, {"type": "text", "text": REMINDER}]),
        anthropic_history([RESULT], {"role": "assistant", "content": [TOOL | {"type": "tool_use", "id": "t2"}]},
                          {"role": "user", "content": REMINDER}),
    ],
    ids=["result-only", "text-beside-the-result", "a-later-user-turn"],
)  # fmt: skip
def test_anthropic_wire_answers_text_once_a_tool_result_is_in(
    anthropic_client: anthropic.Anthropic, stream: bool, history: list[Any]
) -> None:
    assert anthropic_reply(anthropic_client, [{"role": "user", "content": "say hi"}], stream) == ("tool_use", ["Task"])
    assert anthropic_reply(anthropic_client, history, stream) == ("end_turn", [])


def test_anthropic_wire_a_new_question_after_a_text_answer_may_call_again(
    anthropic_client: anthropic.Anthropic,
) -> None:
    history = anthropic_history([RESULT], {"role": "assistant", "content": "hi"}, {"role": "user", "content": "again"})
    assert anthropic_reply(anthropic_client, history, False) == ("tool_use", ["Task"])


def test_through_the_gateway_a_claude_code_style_loop_ends(example_gateway: str, upstreams: Upstreams) -> None:
    """Anthropic in, OpenAI-wire stand-in behind: the translation turns the text beside a ``tool_result`` into a
    user turn after the ``tool`` message, which used to start the loop again."""
    with anthropic.Anthropic(base_url=example_gateway, api_key="demo-key", max_retries=0) as client:
        first = anthropic_reply(client, [{"role": "user", "content": "say hi"}], True, "auto")
        history = anthropic_history([RESULT, {"type": "text", "text": REMINDER}])
        second = anthropic_reply(client, history, True, "auto")
    assert (first, second) == (("tool_use", ["Task"]), ("end_turn", []))
    sent = upstreams.controls["a"].calls()[-1].body["messages"]
    assert [m["role"] for m in sent] == ["user", "assistant", "tool", "user"], json.dumps(sent)
