"""A streamed OpenAI chat answer (``chat.completion.chunk`` dicts) as Responses API stream events.

Feed every chunk to :meth:`ResponsesStream.feed`, then call :meth:`ResponsesStream.finish` once (or
:meth:`ResponsesStream.failed` when the upstream broke after the first byte); each returns event dicts, each with
its ``type`` and ``sequence_number`` (counted from 0 over the whole stream):

    response.created, response.in_progress       on the first chunk (status "in_progress", output [])
    response.output_item.added                   a ``message`` item when the first text arrives, a ``function_call``
                                                 item when a tool call's name is known (fragments before it wait)
    response.content_part.added                  the message's ``output_text`` part
    response.output_text.delta                   each text fragment
    response.function_call_arguments.delta       each argument fragment, under its call's item
    ... from finish(), per item in output order:
    response.output_text.done, response.content_part.done      the message's whole text
    response.function_call_arguments.done        a call's whole arguments
    response.output_item.done                    each item, completed
    response.completed | response.incomplete     the whole response (``incomplete``: finish_reason length or
                                                 content_filter), with the usage of the usage chunk

Items stay open until the end, so text and tool calls may interleave (each event names its item and
``output_index``). :attr:`ResponsesStream.final` is the whole response once finished (to store it). A tool call
that never names its function raises ``UpstreamBadResponse``. Choices other than index 0 and reasoning deltas
are ignored.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from gateway.errors import GatewayError, UpstreamBadResponse
from gateway.translate.anthropic_content import Json
from gateway.translate.responses_response import (
    echo,
    error_code,
    finished,
    message_item,
    new_id,
    output_text,
    usage,
)


@dataclass
class _Item:
    """One output item being streamed: a message (text) or a function call (arguments)."""

    kind: str
    id: str
    index: int | None = None  # its output_index once added
    text: list[str] = field(default_factory=list)
    call_id: str | None = None
    name: str | None = None


class ResponsesStream:
    """One streamed answer: ``feed`` each chat chunk, then ``finish`` (or ``failed``) once."""

    def __init__(self, request: Json, model: str, response_id: str, created_at: float) -> None:
        self._request = request
        self._model = model
        self._id = response_id
        self._created = created_at
        self._sequence = 0
        self._started = False
        self._items: list[_Item] = []  # in output order, once added
        self._message: _Item | None = None
        self._calls: dict[Any, _Item] = {}  # chat tool call index -> its item
        self._finish_reason: Any = None
        self._usage: Any = None
        self.final: Json | None = None

    def feed(self, chunk: Json) -> list[Json]:
        events = self._start()
        if isinstance(chunk.get("usage"), dict):
            self._usage = chunk["usage"]
        for choice in chunk.get("choices") or []:
            if not isinstance(choice, dict) or choice.get("index", 0) != 0:
                continue
            delta = choice["delta"] if isinstance(choice.get("delta"), dict) else {}
            events += self._text(delta.get("content") or delta.get("refusal"))
            for call in delta.get("tool_calls") or []:
                events += self._call(call)
            self._finish_reason = choice.get("finish_reason") or self._finish_reason
        return events

    def finish(self) -> list[Json]:
        events = self._start()
        if any(item.index is None for item in self._calls.values()):
            raise UpstreamBadResponse("The upstream streamed a tool call without a function name.")
        output: list[Json] = []
        for item in self._items:
            done, whole = self._close(item)
            events += done
            output.append(whole)
        state = finished(self._finish_reason)
        response = self._response(state["status"]) | state | {"output": output, "usage": usage(self._usage)}
        self.final = response
        kind = "response.completed" if state["status"] == "completed" else "response.incomplete"
        return [*events, self._event(kind, response=response)]

    def failed(self, exc: GatewayError) -> list[Json]:
        """``response.failed`` for a stream that broke after its first byte (status "failed", the error)."""
        events = self._start()
        error = {"code": error_code(exc), "message": exc.message}
        return [*events, self._event("response.failed", response=self._response("failed") | {"error": error})]

    def _response(self, status: str) -> Json:
        return echo(self._request, self._model, self._id, self._created, status) | {"completed_at": None}

    def _start(self) -> list[Json]:
        if self._started:
            return []
        self._started = True
        response = self._response("in_progress")
        return [
            self._event("response.created", response=response),
            self._event("response.in_progress", response=response),
        ]

    def _event(self, kind: str, **fields: Any) -> Json:
        event = {"type": kind, "sequence_number": self._sequence, **fields}
        self._sequence += 1
        return event

    def _add(self, item: _Item, whole: Json) -> Json:
        item.index = len(self._items)
        self._items.append(item)
        return self._event("response.output_item.added", output_index=item.index, item=whole)

    def _text(self, text: Any) -> list[Json]:
        if not isinstance(text, str) or not text:
            return []
        events: list[Json] = []
        item = self._message
        if item is None:
            item = self._message = _Item("message", new_id("msg_"))
            events.append(self._add(item, message_item(item.id, [], "in_progress")))
            part = output_text("")
            events.append(self._event("response.content_part.added", **self._where(item), part=part))
        item.text.append(text)
        return [*events, self._event("response.output_text.delta", **self._where(item), delta=text, logprobs=[])]

    def _call(self, call: Any) -> list[Json]:
        if not isinstance(call, dict):
            raise UpstreamBadResponse("The upstream streamed a tool call that is not an object.")
        function = call.get("function") or {}
        name, arguments = function.get("name"), function.get("arguments") or ""
        if not isinstance(arguments, str) or not (name is None or isinstance(name, str)):
            raise UpstreamBadResponse("The upstream streamed a tool call whose name or arguments are not strings.")
        item = self._tool(call)
        item.name = item.name or name or None
        events: list[Json] = []
        if item.index is None:
            item.text.append(arguments)
            if item.name is None:
                return []
            events.append(self._add(item, self._call_item(item, "in_progress", "")))
            arguments = "".join(item.text)
        elif arguments:
            item.text.append(arguments)
        if arguments:
            events.append(
                self._event(
                    "response.function_call_arguments.delta", item_id=item.id, output_index=item.index, delta=arguments
                )
            )
        return events

    def _tool(self, call: Json) -> _Item:
        """The item of this call; a new id at a known index is a new call (some upstreams reuse index 0)."""
        position, ident = call.get("index", 0), call.get("id") or None
        item = self._calls.get(position)
        if item is None or (ident is not None and item.call_id is not None and ident != item.call_id):
            item = self._calls[position] = _Item("function_call", new_id("fc_"))
        item.call_id = item.call_id or ident
        return item

    def _call_item(self, item: _Item, status: str, arguments: str) -> Json:
        call_id = item.call_id = item.call_id or new_id("call_")
        return {
            "id": item.id,
            "type": "function_call",
            "status": status,
            "call_id": call_id,
            "name": item.name,
            "arguments": arguments,
        }

    def _where(self, item: _Item) -> Json:
        return {"item_id": item.id, "output_index": item.index, "content_index": 0}

    def _close(self, item: _Item) -> tuple[list[Json], Json]:
        text = "".join(item.text)
        if item.kind == "function_call":
            whole = self._call_item(item, "completed", text)
            done = self._event(
                "response.function_call_arguments.done",
                item_id=item.id,
                name=item.name,
                output_index=item.index,
                arguments=text,
            )
            return [done, self._event("response.output_item.done", output_index=item.index, item=whole)], whole
        part = output_text(text)
        whole = message_item(item.id, [part])
        events = [
            self._event("response.output_text.done", **self._where(item), text=text, logprobs=[]),
            self._event("response.content_part.done", **self._where(item), part=part),
            self._event("response.output_item.done", output_index=item.index, item=whole),
        ]
        return events, whole
