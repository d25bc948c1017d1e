"""The gateway's OpenAPI 3.1 document, served at ``GET /openapi.json`` (docs/openapi.md).

FastAPI's generated document would be wrong here: the hot endpoints bypass its routing
(gateway/http/fastpath.py) and every handler reads its own body, so FastAPI sees no request models. This
one is built from what the gateway itself checks: the per-API field tables of
:mod:`gateway.routing.validate` (each check records its JSON Schema), plus the fields the gateway reads
itself (``model``, ``messages``, ``prompt``, ``input``, ``tools``, ...), described as
:mod:`gateway.routing.normalize` and the translators check them. A field that is ``null`` passes, as it
does at the edge, and unknown fields are allowed (they pass through to the upstream).

The document names no tenant, key, model or deployment: it is the same for every policy, so it is served
without a key, like ``/healthz``. ``tests/http/test_openapi.py`` checks that it is valid OpenAPI 3.1 and
lists exactly the routes the app serves.
"""

from __future__ import annotations

import functools
from typing import Any

from gateway.routing import validate

Schema = dict[str, Any]
Operation = dict[str, Any]

_NULL: Schema = {"type": "null"}
_STRING: Schema = {"type": "string"}
_OBJECT: Schema = {"type": "object"}
_TEXT_PARTS: Schema = {"type": "array", "items": {"type": "object", "required": ["type"]}}
OPENAI_ERROR: Schema = {
    "type": "object",
    "required": ["error"],
    "additionalProperties": False,
    "properties": {
        "error": {
            "type": "object",
            "required": ["message", "type", "param", "code"],
            "additionalProperties": False,
            "properties": {
                "message": _STRING,
                "type": _STRING,
                "param": {"type": ["string", "null"]},
                "code": {"type": ["string", "null"]},
            },
        }
    },
}
ANTHROPIC_ERROR: Schema = {
    "type": "object",
    "required": ["type", "error"],
    "properties": {
        "type": {"const": "error"},
        "error": {
            "type": "object",
            "required": ["type", "message"],
            "properties": {"type": _STRING, "message": _STRING},
        },
    },
}


def _nullable(schema: Schema) -> Schema:
    return {"anyOf": [schema, _NULL]} if schema else {}


def _body(table: validate.Rules, required: list[str], own: dict[str, Schema]) -> Schema:
    """A request body: the table's fields (each may be null), the fields the gateway reads, anything else."""
    properties = {name: _nullable(validate.schema_of(rule)) for name, rule in table.items()}
    return {"type": "object", "required": required, "properties": properties | own, "additionalProperties": True}


_MODEL: Schema = {"type": "string", "minLength": 1, "description": "a route (auto), an alias or a catalog model"}
_CHAT_MESSAGE: Schema = {
    "type": "object",
    "required": ["role"],
    "properties": {
        "role": {"enum": ["system", "developer", "user", "assistant", "tool", "function"]},
        "content": {"anyOf": [_STRING, _TEXT_PARTS, _NULL]},
    },
}
_FUNCTION_TOOL: Schema = {
    "type": "object",
    "required": ["type"],
    "properties": {
        "type": _STRING,
        "function": {
            "type": "object",
            "required": ["name"],
            "properties": {"name": _STRING, "parameters": _OBJECT},
        },
    },
}
_PROMPT: Schema = {
    "anyOf": [
        _STRING,
        {"type": "array", "items": _STRING},
        {"type": "array", "items": {"type": "integer"}},
        {"type": "array", "items": {"type": "array", "items": {"type": "integer"}}},
    ]
}
_STREAM_OPTIONS: Schema = _nullable({"type": "object", "properties": {"include_usage": {"type": "boolean"}}})
_ANTHROPIC_MESSAGE: Schema = {
    "type": "object",
    "required": ["role", "content"],
    "properties": {"role": {"enum": ["user", "assistant"]}, "content": {"anyOf": [_STRING, _TEXT_PARTS]}},
}
_ANTHROPIC_OWN: dict[str, Schema] = {
    "model": _MODEL,
    "messages": {"type": "array", "minItems": 1, "items": _ANTHROPIC_MESSAGE},
    "system": _nullable({"anyOf": [_STRING, _TEXT_PARTS]}),
    "tools": _nullable({"type": "array", "items": {"type": "object", "required": ["name"]}}),
    "tool_choice": _nullable({"type": "object", "required": ["type"]}),
}


@functools.cache
def request_schemas() -> dict[str, Schema]:
    """Each API's request body, by the name it has under ``components.schemas``."""
    chat_own = {
        "model": _MODEL,
        "messages": {"type": "array", "minItems": 1, "items": _CHAT_MESSAGE},
        "tools": _nullable({"type": "array", "items": _FUNCTION_TOOL}),
        "response_format": _nullable({"type": "object", "required": ["type"], "properties": {"type": _STRING}}),
        "stream_options": _STREAM_OPTIONS,
    }
    return {
        "ChatCompletionRequest": _body(validate.CHAT, ["model", "messages"], chat_own),
        "CompletionRequest": _body(
            validate.COMPLETIONS,
            ["model", "prompt"],
            {"model": _MODEL, "prompt": _PROMPT, "stream_options": _STREAM_OPTIONS},
        ),
        "EmbeddingRequest": _body(validate.EMBEDDINGS, ["model", "input"], {"model": _MODEL, "input": _PROMPT}),
        "MessagesRequest": _body(validate.MESSAGES, ["model", "max_tokens", "messages"], _ANTHROPIC_OWN),
        "CountTokensRequest": _body(
            {k: v for k, v in validate.MESSAGES.items() if k != "max_tokens"}, ["model", "messages"], _ANTHROPIC_OWN
        ),
        "ResponsesRequest": _body(
            validate.RESPONSES,
            ["model"],
            {"model": _MODEL, "input": _nullable({"anyOf": [_STRING, {"type": "array", "items": _OBJECT}]})},
        ),
    }


def _shape(required: dict[str, Schema]) -> Schema:
    return {"type": "object", "required": list(required), "properties": required}


RESPONSE_SCHEMAS: dict[str, Schema] = {
    "ChatCompletion": _shape({"id": _STRING, "object": {"const": "chat.completion"}, "choices": {"type": "array"}}),
    "Completion": _shape({"id": _STRING, "object": {"const": "text_completion"}, "choices": {"type": "array"}}),
    "EmbeddingList": _shape({"object": {"const": "list"}, "data": {"type": "array"}}),
    "Message": _shape({"id": _STRING, "type": {"const": "message"}, "content": {"type": "array"}}),
    "TokenCount": _shape({"input_tokens": {"type": "integer", "minimum": 0}}),
    "Response": _shape({"id": _STRING, "object": {"const": "response"}, "status": _STRING}),
    "DeletedResponse": _shape({"id": _STRING, "object": {"const": "response"}, "deleted": {"const": True}}),
    "ItemList": _shape({"object": {"const": "list"}, "data": {"type": "array"}, "has_more": {"type": "boolean"}}),
    "Model": _shape({"id": _STRING, "object": {"const": "model"}}),
    "ModelList": _shape(
        {"object": {"const": "list"}, "data": {"type": "array", "items": {"$ref": "#/components/schemas/Model"}}}
    ),
    "Explanation": _shape(
        {"decision": _OBJECT, "would_call": {"type": ["string", "null"]}, "error": {"type": ["object", "null"]}}
    ),
    "DeploymentReport": _shape({"shared_state": _STRING, "deployments": {"type": "array"}}),
    "Status": _shape({"status": _STRING}),
    "PolicyReport": _shape(  # gateway/http/reload.py PolicyReloader.report
        {
            "revision": _STRING,
            "source": _STRING,
            "loaded_at": _STRING,
            "trigger": {"enum": ["startup", "file_watch", "sighup", "admin"]},
            "last_rejected": {"type": ["object", "null"]},
        }
    ),
    "OpenAIError": OPENAI_ERROR,
    "AnthropicError": ANTHROPIC_ERROR,
}


def _ref(name: str) -> Schema:
    return {"$ref": f"#/components/schemas/{name}"}


def _json(name: str) -> dict[str, Any]:
    return {"application/json": {"schema": _ref(name)}}


def _events(data: Schema, *, named: bool, done: bool = False) -> dict[str, Any]:
    """A ``text/event-stream`` answer; before OpenAPI 3.2, ``schema`` describes one event of the stream.

    An event is read as a server-sent event: ``data`` (the ``data:`` lines), ``event`` (``message`` when the
    stream names none), ``id`` and ``retry``. ``data`` is JSON described by ``data``, or OpenAI's closing
    ``[DONE]`` when ``done``. A stream failing after its first byte ends with an error event in the same shape
    (OpenAI: a ``data:`` line holding the error object; Anthropic and Responses: an event of type ``error``).
    """
    json_data: Schema = {"type": "string", "contentMediaType": "application/json", "contentSchema": data}
    properties = {"event": _STRING if named else {"const": "message"}, "data": _STRING if done else json_data}
    event: Schema = {"type": "object", "required": ["data", "event"], "properties": properties}
    if done:  # ``[DONE]``, else JSON
        event |= {"if": {"properties": {"data": {"const": "[DONE]"}}}, "else": {"properties": {"data": json_data}}}
    return {"text/event-stream": {"schema": event}}


def _openai_chunk(kind: str) -> Schema:
    """A chunk of an OpenAI stream (``object`` is ``kind``), or the error that ends it."""
    chunk = _shape({"id": _STRING, "object": {"const": kind}, "choices": {"type": "array"}})
    return {"anyOf": [chunk, OPENAI_ERROR]}


_TYPED_EVENT = _shape({"type": _STRING})  # Anthropic's and the Responses API's events name their type
_ERROR_STATUSES = ("4XX", "502", "503", "504")  # 502-504: the upstreams failed (gateway/errors.py)
_KEY: list[dict[str, list[str]]] = [{"bearer": []}, {"apiKey": []}]


def _errors(shape: str, statuses: tuple[str, ...] = _ERROR_STATUSES) -> dict[str, Any]:
    return {status: {"description": "an error", "content": _json(shape)} for status in statuses}


def _operation(
    summary: str,
    answer: dict[str, Any],
    *,
    body: str | None = None,
    error: str = "OpenAIError",
    keyed: bool = True,
    statuses: tuple[str, ...] = _ERROR_STATUSES,
) -> Operation:
    operation: Operation = {"summary": summary, "responses": {"200": {"description": "OK", "content": answer}}}
    operation["responses"] |= _errors(error, statuses)
    if body is not None:
        operation["requestBody"] = {"required": True, "content": _json(body)}
    operation["security"] = _KEY if keyed else []
    return operation


def _path_param(name: str) -> list[Schema]:
    return [{"name": name, "in": "path", "required": True, "schema": _STRING}]


_LOCAL = ("4XX",)  # answered by the gateway alone: no upstream called


def paths() -> dict[str, dict[str, Any]]:
    """Every route the app serves (gateway/http/app.py ``_add_routes``), with its methods."""
    stored = _path_param("response_id")
    return {
        "/v1/chat/completions": {
            "post": _operation(
                "OpenAI chat completions",
                _json("ChatCompletion") | _events(_openai_chunk("chat.completion.chunk"), named=False, done=True),
                body="ChatCompletionRequest",
            )
        },
        "/v1/completions": {
            "post": _operation(
                "OpenAI text completions",
                _json("Completion") | _events(_openai_chunk("text_completion"), named=False, done=True),
                body="CompletionRequest",
            )
        },
        "/v1/embeddings": {"post": _operation("OpenAI embeddings", _json("EmbeddingList"), body="EmbeddingRequest")},
        "/v1/messages": {
            "post": _operation(
                "Anthropic Messages API",
                _json("Message") | _events(_TYPED_EVENT, named=True),
                body="MessagesRequest",
                error="AnthropicError",
            )
        },
        "/v1/messages/count_tokens": {
            "post": _operation(
                "The gateway's token estimate of a Messages request",
                _json("TokenCount"),
                body="CountTokensRequest",
                error="AnthropicError",
                statuses=_LOCAL,
            )
        },
        "/v1/responses": {
            "post": _operation(
                "OpenAI Responses API", _json("Response") | _events(_TYPED_EVENT, named=True), body="ResponsesRequest"
            )
        },
        "/v1/responses/{response_id}": {
            "parameters": stored,
            "get": _operation("A stored response (this key's tenant)", _json("Response"), statuses=(*_LOCAL, "503")),
            "delete": _operation("Delete a stored response", _json("DeletedResponse"), statuses=(*_LOCAL, "503")),
        },
        "/v1/responses/{response_id}/input_items": {
            "parameters": stored,
            "get": _operation("A stored response's input items", _json("ItemList"), statuses=(*_LOCAL, "503")),
        },
        "/v1/models": {
            "get": _operation("The routes and models this key may use", _json("ModelList"), statuses=_LOCAL)
        },
        "/v1/models/{model_id}": {
            "parameters": _path_param("model_id"),
            "get": _operation("One route or model", _json("Model"), statuses=_LOCAL),
        },
        "/v1/route/explain": {
            "post": _operation(
                "The routing decision for a chat request, without calling an upstream",
                _json("Explanation"),
                body="ChatCompletionRequest",
                statuses=_LOCAL,
            )
        },
        "/admin/deployments": {
            "get": _operation(
                "Each deployment's breaker, load and errors (an admin key)", _json("DeploymentReport"), statuses=_LOCAL
            )
        },
        "/admin/policies": {
            "get": _operation(
                "The policy revision in force, when and where it was loaded from, the last refused reload (admin key)",
                _json("PolicyReport"),
                statuses=_LOCAL,
            )
        },
        "/admin/policies/reload": {
            "post": _operation(
                "Reload the policy files now; 422 with every problem when they are invalid (an admin key)",
                _json("PolicyReport"),
                statuses=_LOCAL,
            )
        },
        "/healthz": {"get": _operation("Liveness", _json("Status"), keyed=False, statuses=())},
        "/readyz": {"get": _operation("Readiness", _json("Status"), keyed=False, statuses=("503",), error="Status")},
        "/metrics": {
            "get": _operation(
                "Prometheus metrics (a metrics key when the policy names admin.metrics_keys)",
                {"text/plain": {"schema": _STRING}},
                statuses=_LOCAL,
            )
        },
        "/openapi.json": {
            "get": _operation("This document", {"application/json": {"schema": _OBJECT}}, keyed=False, statuses=())
        },
    }


@functools.cache
def document() -> dict[str, Any]:
    """The whole OpenAPI 3.1 document (the same for every policy: it names no tenant, key or deployment)."""
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Switchyard gateway",
            "version": "1",
            "description": "OpenAI- and Anthropic-compatible endpoints in front of policy-routed deployments.",
        },
        "paths": paths(),
        "components": {
            "schemas": request_schemas() | RESPONSE_SCHEMAS,
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer", "description": "Authorization: Bearer <key>"},
                "apiKey": {"type": "apiKey", "in": "header", "name": "x-api-key"},
            },
        },
    }
