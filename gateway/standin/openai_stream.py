"""Streamed answers, OpenAI wire: ``data: <chunk>`` events ending with ``data: [DONE]``.

Like OpenAI: every chunk has the same id, created and model; each choice's first
delta carries the role; every choice has ``finish_reason`` (null until its last
chunk); with ``stream_options.include_usage`` every chunk has ``usage: null`` and a
last chunk with no choices carries the usage.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from gateway.standin.canned import Reply, fragments, words
from gateway.standin.delivery import sse_data
from gateway.standin.gate import Json
from gateway.standin.openai_chat import FINISH_REASON, Answer, tool_call

DONE = sse_data("[DONE]")


def include_usage(body: Json) -> bool:
    options = body.get("stream_options")
    return isinstance(options, dict) and bool(options.get("include_usage"))


def chat_events(answer: Answer, *, fingerprint: str, usage: bool) -> Iterator[str]:
    head = _head(answer, "chat.completion.chunk", usage) | {"system_fingerprint": fingerprint}
    for index, reply in enumerate(answer.replies):
        for delta, reason in _with_reason(_chat_deltas(reply), FINISH_REASON[reply.ending]):
            yield sse_data(head | {"choices": [_choice(index, reason, delta=delta)]})
    yield from _tail(answer, head, usage)


def text_events(answer: Answer, *, usage: bool) -> Iterator[str]:
    head = _head(answer, "text_completion", usage)
    for index, reply in enumerate(answer.replies):
        for piece, reason in _with_reason(words(reply.text), FINISH_REASON[reply.ending]):
            yield sse_data(head | {"choices": [_choice(index, reason, text=piece)]})
    yield from _tail(answer, head, usage)


def _head(answer: Answer, kind: str, usage: bool) -> Json:
    head: Json = {"id": answer.id, "object": kind, "created": answer.created, "model": answer.model}
    return head | {"usage": None} if usage else head


def _tail(answer: Answer, head: Json, usage: bool) -> Iterator[str]:
    if usage:
        yield sse_data(head | {"choices": [], "usage": answer.usage()})
    yield DONE


def _choice(index: int, reason: str | None, **content: Any) -> Json:
    return {"index": index, **content, "logprobs": None, "finish_reason": reason}


def _with_reason(pieces: list[Any], reason: str) -> Iterator[tuple[Any, str | None]]:
    """Pair each piece with a finish reason: null for all but the last."""
    for i, piece in enumerate(pieces):
        yield piece, reason if i == len(pieces) - 1 else None


def _chat_deltas(reply: Reply) -> list[Json]:
    if reply.tool is None:
        first: Json = {"role": "assistant", "content": "", "refusal": None}
        return [first, *({"content": w} for w in words(reply.text) if w)] if reply.text else [first, {}]
    call = tool_call(reply.tool)
    opening = {"index": 0, "id": call["id"], "type": "function", "function": {"name": reply.tool.name, "arguments": ""}}
    pieces = fragments(call["function"]["arguments"])
    return [
        {"role": "assistant", "content": None, "refusal": None, "tool_calls": [opening]},
        *({"tool_calls": [{"index": 0, "function": {"arguments": piece}}]} for piece in pieces),
    ]
