"""A streamed OpenAI answer (``chat.completion.chunk`` dicts) as Anthropic Messages stream events.

Feed every chunk to :meth:`StreamTranslator.feed`, then call :meth:`StreamTranslator.finish` once; each returns
``(event_name, data)`` pairs for :func:`gateway.translate.anthropic_messages.encode_event`:

    message_start                          on the first chunk; usage is 0 until the usage chunk arrives
    content_block_start / _delta / _stop   a text block (text_delta) and tool_use blocks (input {},
                                           then input_json_delta with the argument fragments as they come)
    message_delta, message_stop            from finish(): stop_reason, and the usage of the last chunk
                                           (input_tokens included, so the SDK's final message has both counts)

Anthropic blocks are sequential: one is open at a time and indexes only grow. Text after a tool call opens a
new text block. A tool call whose fragments resume after another block began cannot be expressed, and a tool
call that never names its function cannot be started: both raise ``UpstreamBadResponse``, which the edge sends
as :func:`gateway.translate.anthropic_messages.error_event`. Argument fragments before the name arrives are held
back until it does. Choices other than index 0, and reasoning deltas, are ignored.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final

from gateway.errors import UpstreamBadResponse
from gateway.translate.anthropic_content import Json
from gateway.translate.anthropic_messages import message_id, new_id, stop_fields, usage

Event = tuple[str, Json]
_TEXT: Final = object()  # the key of an open text block; a tool block's key is its _Tool


@dataclass
class _Tool:
    """One OpenAI tool call being streamed: its Anthropic block index once started."""

    id: str | None = None
    name: str | None = None
    pending: str = ""
    index: int | None = None


class StreamTranslator:
    """One streamed answer: ``feed`` each OpenAI chunk, then ``finish`` once; both return Anthropic events."""

    def __init__(self, model: str) -> None:
        self._model = model
        self._started = False
        self._open: object | None = None
        self._next_index = 0
        self._tools: dict[Any, _Tool] = {}  # OpenAI tool call index -> the call streaming at that index
        self._calls: list[_Tool] = []
        self._finish_reason: Any = None
        self._matched: Any = None  # vLLM's stop_reason: the stop string that ended the answer
        self._usage: Json | None = None

    def feed(self, chunk: Json) -> list[Event]:
        events = [] if self._started else [self._message_start(chunk)]
        self._started = True
        if isinstance(chunk.get("usage"), dict):
            self._usage = chunk["usage"]
        for choice in chunk.get("choices") or []:
            if not isinstance(choice, dict) or choice.get("index", 0) != 0:
                continue
            delta = choice["delta"] if isinstance(choice.get("delta"), dict) else {}
            events += self._text(delta.get("content") or delta.get("refusal"))
            for call in delta.get("tool_calls") or []:
                events += self._tool_fragment(call)
            self._finish_reason = choice.get("finish_reason") or self._finish_reason
            self._matched = choice.get("stop_reason") or self._matched
        return events

    def finish(self) -> list[Event]:
        events = [] if self._started else [self._message_start({})]
        self._started = True
        if any(call.index is None for call in self._calls):
            raise UpstreamBadResponse("The upstream streamed a tool call without a function name.")
        events += self._close()
        reason = stop_fields(self._finish_reason, self._matched, tool_use=bool(self._calls))
        counts = usage(self._usage) if self._usage is not None else {"output_tokens": 0}
        delta = {"type": "message_delta", "delta": reason, "usage": counts}
        return [*events, ("message_delta", delta), ("message_stop", {"type": "message_stop"})]

    def _message_start(self, chunk: Json) -> Event:
        message: Json = {
            "id": message_id(chunk.get("id")),
            "type": "message",
            "role": "assistant",
            "model": self._model,
            "content": [],
            "stop_reason": None,
            "stop_sequence": None,
            "usage": usage(chunk.get("usage")),
        }
        return "message_start", {"type": "message_start", "message": message}

    def _text(self, text: Any) -> list[Event]:
        if not isinstance(text, str) or not text:
            return []
        events = self._start(_TEXT, {"type": "text", "text": ""})
        return [*events, self._delta({"type": "text_delta", "text": text})]

    def _tool_fragment(self, call: Any) -> list[Event]:
        if not isinstance(call, dict):
            raise UpstreamBadResponse("The upstream streamed a tool call that is not an object.")
        tool, function = self._tool(call), call.get("function") or {}
        name, arguments = function.get("name"), function.get("arguments") or ""
        if not isinstance(arguments, str) or not (name is None or isinstance(name, str)):
            raise UpstreamBadResponse("The upstream streamed a tool call whose name or arguments are not strings.")
        tool.name = tool.name or name or None
        events: list[Event] = []
        if tool.index is None:
            if tool.name is None:
                tool.pending += arguments
                return []
            block = {"type": "tool_use", "id": tool.id or new_id("toolu_"), "name": tool.name, "input": {}}
            events = self._start(tool, block)
            tool.index, arguments, tool.pending = self._next_index - 1, tool.pending + arguments, ""
        elif self._open is not tool:
            raise UpstreamBadResponse(
                f"The upstream interleaved tool call {tool.name!r} with another content block; "
                "Anthropic's stream format cannot carry that."
            )
        if arguments:
            events.append(self._delta({"type": "input_json_delta", "partial_json": arguments}))
        return events

    def _tool(self, call: Json) -> _Tool:
        """The state of this call; a new id at a known index is a new call (some upstreams reuse index 0)."""
        position, ident = call.get("index", 0), call.get("id") or None
        tool = self._tools.get(position)
        if tool is None or (ident is not None and tool.id is not None and ident != tool.id):
            tool = self._tools[position] = _Tool()
            self._calls.append(tool)
        tool.id = tool.id or ident
        return tool

    def _start(self, key: object, block: Json) -> list[Event]:
        if self._open is key:
            return []
        events = self._close()
        self._open, self._next_index = key, self._next_index + 1
        start = {"type": "content_block_start", "index": self._next_index - 1, "content_block": block}
        return [*events, ("content_block_start", start)]

    def _close(self) -> list[Event]:
        if self._open is None:
            return []
        self._open = None
        return [("content_block_stop", {"type": "content_block_stop", "index": self._next_index - 1})]

    def _delta(self, delta: Json) -> Event:
        return "content_block_delta", {"type": "content_block_delta", "index": self._next_index - 1, "delta": delta}
