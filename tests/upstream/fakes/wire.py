"""What the provider fakes share: the gate every request takes, and the canned reply a request gets.

The gate is the stand-ins' (gateway/standin/gate.py) with two differences: the model comes from the
path (Gemini, Azure and Bedrock name it there, not in the body), and the recorded call keeps every
header and the query string, since they carry the credentials and the API version these wires check.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from gateway.standin.canned import Reply, ToolUse, answer_text, finish, tool_result_text
from gateway.standin.control import Call, Control
from gateway.standin.delivery import Delivery, pause
from gateway.standin.gate import CLIENT_CLOSED, Json, Wire, WireError, fault_error, read_json
from gateway.standin.placeholder import placeholder

# (body, model from the path, the request for its path and query, delivery) -> the answer
Answer = Callable[[Json, str, Request, Delivery], Response]
Handler = Callable[[Request], Awaitable[Response]]


def gated(wire: Wire, control: Control, model_of: Callable[[Request], str], answer: Answer) -> Handler:
    """A Starlette handler: parse, record, authenticate, take a fault, wait, then ``answer``."""

    async def handle(request: Request) -> Response:
        try:
            body = await read_json(request)
            model = model_of(request)
            query = f"?{request.url.query}" if request.url.query else ""
            control.record(Call(request.url.path + query, model, body, dict(request.headers)))
            wire.authenticate(request)
            fault = control.take_fault(request.url.path, model)
            if await pause(request, control.delay + (fault.delay if fault else 0.0)):
                return Response(status_code=CLIENT_CLOSED)
            if fault is not None and fault.status is not None:
                raise fault_error(fault)
            delivery = Delivery(gap=control.chunk_gap, drop_after=fault.drop_after if fault else None)
            return answer(body, model, request, delivery)
        except WireError as exc:
            return wire.error(exc)

    return handle


@dataclass(frozen=True, slots=True)
class Tool:
    """A function the client offered: its name and JSON schema."""

    name: str
    parameters: Json


def reply_to(model: str, last_user_text: str, *, tool_result: str | None, tools: list[Tool],
             forced: str | None, stops: list[str], limit: int | None) -> Reply:  # fmt: skip
    """The canned reply, wire-independent: a call of the forced (else the first) tool when tools are offered
    and the last turn is not a tool result; else text, cut at stop sequences and the token limit."""
    if tools and tool_result is None:
        tool = next((t for t in tools if t.name == forced), tools[0])
        arguments = placeholder(tool.parameters or {"type": "object"})
        return Reply("", "tool", ToolUse(tool.name, arguments if isinstance(arguments, dict) else {}))
    text = tool_result_text(model, tool_result) if tool_result is not None else answer_text(model, last_user_text)
    return finish(text, stops=stops, limit=limit)


def as_int(value: Any, name: str) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise WireError(400, f"{name} must be a positive integer, got {value!r}")
    return value
