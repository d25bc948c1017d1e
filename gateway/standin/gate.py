"""The path every stand-in request takes before its canned answer.

parse JSON -> record the call (POSTs only) -> authenticate -> take a fault -> wait -> answer or fail.
Each wire format plugs in its own authentication and error shape (:class:`Wire`).
"""

from __future__ import annotations

import json
import math
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Protocol

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response

from gateway.standin.control import Call, Control, Fault, recorded_headers
from gateway.standin.delivery import Delivery, pause

Json = dict[str, Any]
Answer = Callable[[Json, Delivery], Response]
Handler = Callable[[Request], Awaitable[Response]]
CLIENT_CLOSED = 499


class WireError(Exception):
    """A failure to report in the wire's own error shape."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        param: str | None = None,
        code: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.param = param
        self.code = code
        self.headers = dict(headers or {})


class Wire(Protocol):
    def authenticate(self, request: Request) -> None:
        """Raise :class:`WireError` unless the request may be answered."""

    def error(self, error: WireError) -> Response:
        """Render an error in this wire's JSON shape."""


def endpoint(wire: Wire, control: Control, answer: Answer) -> Handler:
    """A Starlette handler that runs the gate, then ``answer(body, delivery)``."""

    async def handle(request: Request) -> Response:
        try:
            return await _gate(request, wire, control, answer)
        except WireError as exc:
            return wire.error(exc)

    return handle


def http_error_handler(wire: Wire) -> Callable[[Request, Exception], Awaitable[Response]]:
    """Render Starlette's routing errors (404, 405) in the wire's shape."""

    async def handle(request: Request, exc: Exception) -> Response:
        if not isinstance(exc, HTTPException):
            raise exc
        return wire.error(WireError(exc.status_code, f"{exc.detail}: {request.method} {request.url.path}"))

    return handle


async def _gate(request: Request, wire: Wire, control: Control, answer: Answer) -> Response:
    body = await read_json(request)
    model = body.get("model") if isinstance(body.get("model"), str) else None
    call = request.method == "POST"  # a GET (the model list, a gateway's health check) is not a call
    if call:
        control.record(Call(request.url.path, model, body, recorded_headers(request.headers)))
    wire.authenticate(request)
    fault = control.take_fault(request.url.path, model) if call else None
    if await pause(request, control.delay + (fault.delay if fault else 0.0)):
        return Response(status_code=CLIENT_CLOSED)
    if fault is not None and fault.status is not None:
        raise fault_error(fault)
    return answer(body, Delivery(gap=control.chunk_gap, drop_after=fault.drop_after if fault else None))


async def read_json(request: Request) -> Json:
    """The JSON object body of a POST; for other methods, the path parameters."""
    if request.method != "POST":
        return dict(request.path_params)
    try:
        body = json.loads(await request.body())
    except ValueError as exc:
        raise WireError(400, f"could not parse the JSON body: {exc}") from exc
    if not isinstance(body, dict):
        raise WireError(400, "the JSON body must be an object")
    return body


def fault_error(fault: Fault) -> WireError:
    headers: dict[str, str] = {}
    if fault.retry_after is not None:
        headers["retry-after"] = str(math.ceil(fault.retry_after))
        headers["retry-after-ms"] = str(round(fault.retry_after * 1000))
    message = fault.message or f"stand-in fault: HTTP {fault.status}"
    return WireError(fault.status or 500, message, headers=headers)
