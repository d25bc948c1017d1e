"""A stand-in Anthropic upstream: the Messages API with canned answers.

Routes: ``POST /v1/messages`` (plain and streamed), ``POST /v1/messages/count_tokens``,
plus the ``/_standin`` admin routes if ``admin``. Requests need an ``anthropic-version`` header
and, when ``api_key`` is set, a matching ``x-api-key`` (or ``Authorization: Bearer``, which newer
SDKs send). Errors have Anthropic's shape
``{"type": "error", "error": {"type", "message"}, "request_id"}``.
"""

from __future__ import annotations

from dataclasses import dataclass

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from gateway.standin.admin import admin_routes
from gateway.standin.anthropic_messages import (
    answer_messages,
    message_events,
    message_response,
)
from gateway.standin.canned import new_id
from gateway.standin.control import Control
from gateway.standin.delivery import Delivery
from gateway.standin.gate import Json, WireError, endpoint, http_error_handler

_KINDS = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    529: "overloaded_error",
}
SERVER_ERROR = 500


@dataclass(frozen=True, slots=True)
class AnthropicWire:
    """``x-api-key`` authentication, a required ``anthropic-version``, and Anthropic error bodies."""

    api_key: str | None = None

    def authenticate(self, request: Request) -> None:
        if self.api_key is not None and self.api_key not in _keys_sent(request):
            raise WireError(401, "invalid x-api-key")
        if not request.headers.get("anthropic-version"):
            raise WireError(400, "anthropic-version: header is required")

    def error(self, error: WireError) -> Response:
        default = "api_error" if error.status >= SERVER_ERROR else "invalid_request_error"
        request_id = new_id("req_")
        body = {
            "type": "error",
            "error": {"type": _KINDS.get(error.status, default), "message": error.message},
            "request_id": request_id,
        }
        return JSONResponse(body, status_code=error.status, headers=error.headers | {"request-id": request_id})


def _keys_sent(request: Request) -> tuple[str | None, str | None]:
    """The key in ``x-api-key``, and the one in ``Authorization: Bearer`` (newer SDKs send that)."""
    bearer = request.headers.get("authorization", "")
    return request.headers.get("x-api-key"), bearer.removeprefix("Bearer ") if bearer.startswith("Bearer ") else None


def create_anthropic_app(
    control: Control | None = None, *, api_key: str | None = None, admin: bool = False
) -> Starlette:
    """An Anthropic-wire stand-in; ``admin`` mounts the ``/_standin`` control routes (no key: for tests only)."""
    control = control or Control()
    wire = AnthropicWire(api_key)
    routes = [
        Route("/v1/messages", endpoint(wire, control, _messages), methods=["POST"]),
        Route("/v1/messages/count_tokens", endpoint(wire, control, _count_tokens), methods=["POST"]),
        *(admin_routes(control) if admin else []),
    ]
    return Starlette(routes=routes, exception_handlers={HTTPException: http_error_handler(wire)})


def _messages(body: Json, delivery: Delivery) -> Response:
    answer = answer_messages(body)
    if body.get("stream"):
        return delivery.events(message_events(answer))
    return delivery.json(message_response(answer))


def _count_tokens(body: Json, delivery: Delivery) -> Response:
    answer = answer_messages(body | {"max_tokens": 1})
    return delivery.json({"input_tokens": answer.input_tokens})
