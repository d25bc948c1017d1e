"""A fake of Azure OpenAI's data-plane API, its wire format.

Routes: ``POST /openai/deployments/{deployment}/chat/completions`` (and ``/completions``, ``/embeddings``),
each with a required ``?api-version=`` from :data:`API_VERSIONS` (any other, or none, is Azure's 404
"Resource not found"). The key goes in the ``api-key`` header (an Entra token would be ``Authorization:
Bearer``); a wrong or missing one is Azure's 401 "Access denied due to invalid subscription key".

Answers are OpenAI's, as Azure shapes them: ``model`` is the model behind the deployment (e.g.
``gpt-4.1-2025-04-14``), not the deployment's name; every answer has ``prompt_filter_results`` and each choice
``content_filter_results``; a stream starts with a chunk whose ``choices`` is empty and whose ``id``, ``model``
and ``object`` are empty strings (it carries only the prompt's filter results), as Azure's do.
Errors: ``{"error": {"code": "<status or name>", "message"}}``.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from gateway.standin.control import Control
from gateway.standin.delivery import Delivery, sse_data
from gateway.standin.gate import Json, WireError
from gateway.standin.openai_chat import answer_chat, chat_response
from gateway.standin.openai_stream import DONE, chat_events, include_usage
from gateway.standin.openai_text import embeddings_response
from tests.upstream.fakes.wire import gated

API_VERSIONS = frozenset({"2024-10-21", "2024-12-01-preview", "2025-01-01-preview", "2025-02-01-preview",
                          "2025-03-01-preview", "2025-04-01-preview"})  # fmt: skip
SAFE = {"filtered": False, "severity": "safe"}
FILTERS = dict.fromkeys(("hate", "self_harm", "sexual", "violence"), SAFE)
DENIED = ("Access denied due to invalid subscription key or wrong API endpoint. Make sure to provide a valid key for "
          "an active subscription and use a correct regional API endpoint for your resource.")  # fmt: skip


@dataclass(frozen=True, slots=True)
class AzureWire:
    api_key: str

    def authenticate(self, request: Request) -> None:
        if request.query_params.get("api-version") not in API_VERSIONS:
            raise WireError(404, "Resource not found")
        if request.headers.get("api-key") != self.api_key:
            raise WireError(401, DENIED)

    def error(self, error: WireError) -> Response:
        body = {"code": error.code or str(error.status), "message": error.message}
        return JSONResponse({"error": body}, status_code=error.status, headers=error.headers)


def create_azure_app(control: Control, *, api_key: str, models: Mapping[str, str]) -> Starlette:
    """``models``: deployment name -> the model behind it; a deployment not listed is Azure's 404."""
    wire = AzureWire(api_key)
    answers = _Answers(dict(models))

    def deployment(request: Request) -> str:
        name = str(request.path_params["deployment"])
        if name not in answers.models:
            raise WireError(404, "The API deployment for this resource does not exist.", code="DeploymentNotFound")
        return name

    base = "/openai/deployments/{deployment}"
    return Starlette(routes=[
        Route(f"{base}/chat/completions", gated(wire, control, deployment, answers.chat), methods=["POST"]),
        Route(f"{base}/embeddings", gated(wire, control, deployment, answers.embeddings), methods=["POST"]),
    ])  # fmt: skip


@dataclass(frozen=True, slots=True)
class _Answers:
    models: dict[str, str]

    def chat(self, body: Json, deployment: str, request: Request, delivery: Delivery) -> Response:
        answer = answer_chat(body | {"model": self.models[deployment]})
        if body.get("stream"):
            events = chat_events(answer, fingerprint="fp_azure", usage=include_usage(body))
            return delivery.events(_filtered_events(events))
        response = chat_response(answer, "fp_azure")
        for choice in response["choices"]:
            choice["content_filter_results"] = FILTERS
        return delivery.json(response | {"prompt_filter_results": [_prompt_filter()]})

    def embeddings(self, body: Json, deployment: str, request: Request, delivery: Delivery) -> Response:
        return delivery.json(embeddings_response(body | {"model": self.models[deployment]}))


def _prompt_filter() -> Json:
    jailbreak = {"jailbreak": {"filtered": False, "detected": False}}
    return {"prompt_index": 0, "content_filter_results": FILTERS | jailbreak}


def _filtered_events(events: Iterable[str]) -> Iterator[str]:
    """The stand-in's OpenAI events as Azure sends them: a leading filter-only chunk, filter results per choice."""
    yield sse_data({"choices": [], "created": 0, "id": "", "model": "", "object": "",
                    "prompt_filter_results": [_prompt_filter()]})  # fmt: skip
    for event in events:
        if event == DONE:
            yield event
            continue
        chunk = json.loads(event.removeprefix("data: "))
        for choice in chunk["choices"]:
            choice["content_filter_results"] = {} if choice.get("finish_reason") else FILTERS
        yield sse_data(chunk)
