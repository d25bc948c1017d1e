"""A stand-in OpenAI-compatible upstream (what OpenAI, vLLM and SGLang serve), with canned answers.

Routes: ``POST /v1/chat/completions``, ``POST /v1/completions``, ``POST /v1/embeddings``, ``POST /v1/responses``,
``GET /v1/models``, ``GET /v1/models/{model}``, plus the ``/_standin`` admin routes if ``admin``.
Any model name is accepted; every answer names the model it was asked for.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from gateway.standin.admin import admin_routes
from gateway.standin.control import Control
from gateway.standin.delivery import Delivery
from gateway.standin.gate import Json, WireError, endpoint, http_error_handler
from gateway.standin.openai_chat import answer_chat, chat_response
from gateway.standin.openai_responses import answer_responses
from gateway.standin.openai_stream import chat_events, include_usage, text_events
from gateway.standin.openai_text import (
    answer_completion,
    completion_response,
    embeddings_response,
)
from gateway.standin.quirks import Quirks

MODEL_CREATED = 1_700_000_000
SERVER_ERROR = 500
_KINDS: dict[int, tuple[str, str | None]] = {
    401: ("invalid_request_error", "invalid_api_key"),
    403: ("permission_error", None),
    404: ("invalid_request_error", "not_found"),
    429: ("requests", "rate_limit_exceeded"),
}


@dataclass(frozen=True, slots=True)
class OpenAIWire:
    """Bearer-key authentication and ``{"error": {message, type, param, code}}`` errors."""

    api_key: str | None = None

    def authenticate(self, request: Request) -> None:
        if self.api_key is None:
            return
        sent = request.headers.get("authorization")
        if sent is None:
            raise WireError(401, "You didn't provide an API key in an Authorization: Bearer header.")
        if sent != f"Bearer {self.api_key}":
            raise WireError(401, "Incorrect API key provided.")

    def error(self, error: WireError) -> Response:
        default = ("server_error", None) if error.status >= SERVER_ERROR else ("invalid_request_error", None)
        kind, code = _KINDS.get(error.status, default)
        body = {"error": {"message": error.message, "type": kind, "param": error.param, "code": error.code or code}}
        return JSONResponse(body, status_code=error.status, headers=error.headers)


def create_openai_app(
    control: Control | None = None,
    *,
    name: str = "standin",
    api_key: str | None = None,
    models: Sequence[str] = (),
    admin: bool = False,
    quirks: Quirks | None = None,
) -> Starlette:
    """An OpenAI-wire stand-in. ``name`` is the ``owned_by`` of its models and part of its fingerprint;
    ``GET /v1/models`` lists ``models`` plus every model of the calls ``control`` still records.
    ``admin`` mounts the ``/_standin`` control routes (no key: for tests only); ``quirks`` make the chat
    answers look like one self-hosted server or another (:mod:`gateway.standin.quirks`)."""
    control = control or Control()
    wire = OpenAIWire(api_key)
    answers = _Answers(control, name, tuple(models), quirks or Quirks())
    routes = [
        Route("/v1/chat/completions", endpoint(wire, control, answers.chat), methods=["POST"]),
        Route("/v1/completions", endpoint(wire, control, answers.completion), methods=["POST"]),
        Route("/v1/embeddings", endpoint(wire, control, answers.embeddings), methods=["POST"]),
        Route("/v1/responses", endpoint(wire, control, answers.responses), methods=["POST"]),
        Route("/v1/models", endpoint(wire, control, answers.list_models), methods=["GET"]),
        Route("/v1/models/{model:path}", endpoint(wire, control, answers.get_model), methods=["GET"]),
        *(admin_routes(control) if admin else []),
    ]
    return Starlette(routes=routes, exception_handlers={HTTPException: http_error_handler(wire)})


@dataclass(frozen=True, slots=True)
class _Answers:
    control: Control
    name: str
    models: tuple[str, ...]
    quirks: Quirks

    @property
    def fingerprint(self) -> str:
        return f"fp_{self.name}"

    def chat(self, body: Json, delivery: Delivery) -> Response:
        answer = answer_chat(body)
        if body.get("stream"):
            events = chat_events(answer, fingerprint=self.fingerprint, usage=include_usage(body))
            return delivery.events(self.quirks.events(events))
        return delivery.json(self.quirks.response(chat_response(answer, self.fingerprint)))

    def completion(self, body: Json, delivery: Delivery) -> Response:
        answer = answer_completion(body)
        if body.get("stream"):
            return delivery.events(text_events(answer, usage=include_usage(body)))
        return delivery.json(completion_response(answer))

    def responses(self, body: Json, delivery: Delivery) -> Response:
        return answer_responses(body, delivery, self.fingerprint)

    def embeddings(self, body: Json, delivery: Delivery) -> Response:
        return delivery.json(embeddings_response(body))

    def list_models(self, body: Json, delivery: Delivery) -> Response:
        known = dict.fromkeys([*self.models, *self.control.models()])
        return delivery.json({"object": "list", "data": [self._model(m) for m in known]})

    def get_model(self, body: Json, delivery: Delivery) -> Response:
        return delivery.json(self._model(str(body["model"])))

    def _model(self, model: str) -> Json:
        return {"id": model, "object": "model", "created": MODEL_CREATED, "owned_by": self.name}
