"""Anthropic Messages API: from a request body to a canned reply, the response JSON and its stream events."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from gateway.standin.canned import (
    Ending,
    Reply,
    ToolUse,
    answer_text,
    finish,
    fragments,
    new_id,
    prompt_tokens,
    text_of,
    tool_result_text,
    words,
)
from gateway.standin.delivery import sse_event
from gateway.standin.gate import Json, WireError
from gateway.standin.params import int_param, list_param, model_of, stop_list
from gateway.standin.placeholder import placeholder

STOP_REASON: dict[Ending, str] = {
    "end": "end_turn",
    "stop": "stop_sequence",
    "length": "max_tokens",
    "tool": "tool_use",
}
MAX_STOP_SEQUENCES = 64


@dataclass(frozen=True, slots=True)
class MessageAnswer:
    model: str
    reply: Reply
    input_tokens: int
    id: str = field(default_factory=lambda: new_id("msg_"))
    tool_id: str = field(default_factory=lambda: new_id("toolu_"))

    def usage(self, output_tokens: int | None = None) -> Json:
        output = self.reply.output_tokens if output_tokens is None else output_tokens
        return {
            "input_tokens": self.input_tokens,
            "output_tokens": output,
            "cache_creation_input_tokens": 0,
            "cache_read_input_tokens": 0,
        }


def answer_messages(body: Json) -> MessageAnswer:
    model = model_of(body)
    messages = _messages(body)
    limit = int_param(body, "max_tokens")
    if limit is None:
        raise WireError(400, "max_tokens: Field required", param="max_tokens")
    tool = _tool_use(body, messages)
    reply = Reply("", "tool", tool) if tool else _text_reply(body, model, messages, limit)
    texts = [text_of(body.get("system")), *(text_of(m.get("content")) for m in messages)]
    return MessageAnswer(model, reply, prompt_tokens(texts))


def message_response(answer: MessageAnswer) -> Json:
    return _message(answer, [_block(answer, complete=True)], answer.usage()) | _stop(answer.reply)


def message_events(answer: MessageAnswer) -> Iterator[str]:
    """The event sequence of a streamed message, Anthropic style."""
    start = _message(answer, [], answer.usage(output_tokens=1)) | {"stop_reason": None, "stop_sequence": None}
    yield sse_event("message_start", {"type": "message_start", "message": start})
    block = {"type": "content_block_start", "index": 0, "content_block": _block(answer, complete=False)}
    yield sse_event("content_block_start", block)
    yield sse_event("ping", {"type": "ping"})
    for delta in _deltas(answer.reply):
        yield sse_event("content_block_delta", {"type": "content_block_delta", "index": 0, "delta": delta})
    yield sse_event("content_block_stop", {"type": "content_block_stop", "index": 0})
    usage = {"output_tokens": answer.reply.output_tokens}
    yield sse_event("message_delta", {"type": "message_delta", "delta": _stop(answer.reply), "usage": usage})
    yield sse_event("message_stop", {"type": "message_stop"})


def _message(answer: MessageAnswer, content: list[Json], usage: Json) -> Json:
    head = {"id": answer.id, "type": "message", "role": "assistant", "model": answer.model}
    return head | {"content": content, "usage": usage}


def _stop(reply: Reply) -> Json:
    return {"stop_reason": STOP_REASON[reply.ending], "stop_sequence": reply.stop_sequence}


def _block(answer: MessageAnswer, *, complete: bool) -> Json:
    tool = answer.reply.tool
    if tool is None:
        return {"type": "text", "text": answer.reply.text if complete else ""}
    return {"type": "tool_use", "id": answer.tool_id, "name": tool.name, "input": tool.arguments if complete else {}}


def _deltas(reply: Reply) -> list[Json]:
    if reply.tool is not None:
        return [{"type": "input_json_delta", "partial_json": piece} for piece in fragments(reply.tool.arguments_json)]
    return [{"type": "text_delta", "text": piece} for piece in words(reply.text) if piece]


def _messages(body: Json) -> list[Json]:
    messages = list_param(body, "messages", required=True)
    if not all(isinstance(m, dict) and m.get("role") in ("user", "assistant") for m in messages):
        raise WireError(400, "messages: each message must have role 'user' or 'assistant'", param="messages")
    return messages


def _tool_results(messages: list[Json]) -> list[Json]:
    """The ``tool_result`` blocks of the latest user turn that has any, since the last answer in text. Once
    there is one, the stand-in answers with text, so a tool loop ends, also when text blocks come beside the
    results or a user turn after them (Claude Code adds both); a new question after a text answer may call a
    tool again."""
    for message in reversed(messages):
        content = message.get("content")
        if not isinstance(content, list):
            content = []
        blocks = [block for block in content if isinstance(block, dict)]
        if message["role"] == "assistant" and not any(block.get("type") == "tool_use" for block in blocks):
            return []
        results = [block for block in blocks if block.get("type") == "tool_result"]
        if message["role"] == "user" and results:
            return results
    return []


def _text_reply(body: Json, model: str, messages: list[Json], limit: int) -> Reply:
    results = _tool_results(messages)
    if results:
        text = tool_result_text(model, text_of(results))
    else:
        users = [m for m in messages if m["role"] == "user"] or messages
        text = answer_text(model, text_of(users[-1].get("content")))
    stops = stop_list(body.get("stop_sequences"), "stop_sequences", MAX_STOP_SEQUENCES)
    return finish(text, stops=stops, limit=limit)


def _tool_use(body: Json, messages: list[Json]) -> ToolUse | None:
    tools = [t for t in list_param(body, "tools") if isinstance(t, dict) and isinstance(t.get("name"), str)]
    choice = body.get("tool_choice") or {"type": "auto"}
    if not tools or not isinstance(choice, dict) or choice.get("type") == "none" or _tool_results(messages):
        return None
    name = choice.get("name") if choice.get("type") == "tool" else tools[0]["name"]
    tool = next((t for t in tools if t["name"] == name), None)
    if tool is None:
        raise WireError(400, f"tool_choice: tool {name!r} is not among the tools", param="tool_choice")
    arguments: Any = placeholder(tool.get("input_schema") or {"type": "object"})
    return ToolUse(str(name), arguments if isinstance(arguments, dict) else {})
