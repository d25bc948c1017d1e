"""A fake of Google's Gemini API (Google AI Studio, ``generativelanguage.googleapis.com``), its wire format.

Routes: ``POST /v1beta/models/{model}:generateContent`` and ``:streamGenerateContent``; the stream is
server-sent events with ``?alt=sse`` (``data: <GenerateContentResponse>`` separated by CRLF CRLF, as
Google sends it) and one JSON array without. The key goes in ``x-goog-api-key`` or ``?key=``: none is a
403 ``PERMISSION_DENIED``, a wrong one a 400 ``INVALID_ARGUMENT`` with reason ``API_KEY_INVALID``, as Google
answers. Unknown top-level fields are refused (Google's "Invalid JSON payload received. Unknown name").
Answers carry ``usageMetadata`` (``promptTokenCount``, ``candidatesTokenCount``, ``totalTokenCount``), on every
stream chunk with the counts so far; a tool call is a ``functionCall`` part; ``thinkingConfig.includeThoughts``
adds a ``thought: true`` part and ``thoughtsTokenCount``. Errors: ``{"error": {code, message, status}}``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from gateway.standin.canned import Reply, new_id, prompt_tokens, tokens, words
from gateway.standin.control import Control
from gateway.standin.delivery import Delivery
from gateway.standin.gate import Json, WireError
from tests.upstream.fakes.wire import Tool, as_int, gated, reply_to

FIELDS = frozenset({
    "contents", "systemInstruction", "generationConfig", "tools", "toolConfig", "safetySettings", "cachedContent",
    "labels",
})  # fmt: skip
STATUS = {400: "INVALID_ARGUMENT", 403: "PERMISSION_DENIED", 404: "NOT_FOUND", 429: "RESOURCE_EXHAUSTED",
          500: "INTERNAL", 503: "UNAVAILABLE", 504: "DEADLINE_EXCEEDED"}  # fmt: skip
FINISH = {"end": "STOP", "stop": "STOP", "tool": "STOP", "length": "MAX_TOKENS"}
OPAQUE = frozenset({"parameters", "parametersJsonSchema", "args", "response", "responseSchema", "responseJsonSchema"})
THOUGHT = "The user wants a short answer; I will give one."


@dataclass(frozen=True, slots=True)
class GeminiWire:
    api_key: str

    def authenticate(self, request: Request) -> None:
        sent = request.headers.get("x-goog-api-key") or request.query_params.get("key")
        if not sent:
            raise WireError(403, "Method doesn't allow unregistered callers (callers without established identity).")
        if sent != self.api_key:
            raise WireError(400, "API key not valid. Please pass a valid API key.", code="API_KEY_INVALID")

    def error(self, error: WireError) -> Response:
        body: Json = {"code": error.status, "message": error.message, "status": STATUS.get(error.status, "UNKNOWN")}
        if error.code:
            body["details"] = [{"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": error.code,
                                "domain": "googleapis.com"}]  # fmt: skip
        return JSONResponse({"error": body}, status_code=error.status, headers=error.headers)


def create_gemini_app(control: Control, *, api_key: str) -> Starlette:
    wire = GeminiWire(api_key)
    route = Route("/v1beta/models/{action:path}", gated(wire, control, _model, _answer), methods=["POST"])
    return Starlette(routes=[route])


def _model(request: Request) -> str:
    model, _, action = str(request.path_params["action"]).partition(":")
    if action not in ("generateContent", "streamGenerateContent"):
        raise WireError(404, f"unknown method {action!r} of models/{model}")
    return model


def _answer(body: Json, model: str, request: Request, delivery: Delivery) -> Response:
    turn = _Turn.read(body, model)
    if not str(request.path_params["action"]).endswith(":streamGenerateContent"):
        return delivery.json(turn.response(turn.reply.text, final=True))
    pieces = list(turn.pieces())
    if request.query_params.get("alt") == "sse":
        return delivery.events(f"data: {json.dumps(p)}\r\n\r\n" for p in pieces)
    return JSONResponse(pieces)  # without alt=sse Google streams one JSON array


@dataclass(frozen=True, slots=True)
class _Turn:
    model: str
    reply: Reply
    prompt: int
    thoughts: bool
    id: str

    @classmethod
    def read(cls, body: Json, model: str) -> _Turn:
        body = json_names(body)
        unknown = set(body) - FIELDS
        if unknown:
            name = sorted(unknown)[0]
            raise WireError(400, f'Invalid JSON payload received. Unknown name "{name}": Cannot find field.')
        contents = body.get("contents")
        if not isinstance(contents, list) or not contents:
            raise WireError(400, "* GenerateContentRequest.contents: contents is not specified")
        texts, last_user, tool_result = _read_contents(contents)
        system = _parts_text(body.get("systemInstruction") or {})
        config = body.get("generationConfig") or {}
        tools, forced = _read_tools(body)
        limit = as_int(config.get("maxOutputTokens"), "maxOutputTokens")
        stops = list(config.get("stopSequences") or [])
        reply = reply_to(model, last_user, tool_result=tool_result, tools=tools, forced=forced, stops=stops,
                         limit=limit)  # fmt: skip
        thinking = config.get("thinkingConfig") or {}
        prompt = prompt_tokens([system, *texts])
        return cls(model, reply, prompt, bool(thinking.get("includeThoughts")), new_id("", 22))

    def pieces(self) -> Iterator[Json]:
        if self.reply.tool is not None:
            yield self.response("", final=True)
            return
        parts = words(self.reply.text)
        for i, piece in enumerate(parts):
            yield self.response(piece, final=i == len(parts) - 1, so_far="".join(parts[: i + 1]))

    def response(self, text: str, *, final: bool, so_far: str | None = None) -> Json:
        candidate: Json = {"content": {"parts": self._parts(text, first=so_far in (None, text)), "role": "model"},
                           "index": 0}  # fmt: skip
        if final:
            candidate["finishReason"] = FINISH[self.reply.ending]
        output = self.reply.output_tokens if final else tokens(so_far or "")
        usage: Json = {"promptTokenCount": self.prompt, "candidatesTokenCount": output,
                       "totalTokenCount": self.prompt + output,
                       "promptTokensDetails": [{"modality": "TEXT", "tokenCount": self.prompt}]}  # fmt: skip
        if self.thoughts:
            usage["thoughtsTokenCount"] = tokens(THOUGHT)
            usage["totalTokenCount"] += tokens(THOUGHT)
        return {"candidates": [candidate], "usageMetadata": usage, "modelVersion": self.model, "responseId": self.id}

    def _parts(self, text: str, *, first: bool) -> list[Json]:
        if self.reply.tool is not None:
            return [{"functionCall": {"name": self.reply.tool.name, "args": self.reply.tool.arguments}}]
        thought = [{"text": THOUGHT, "thought": True}] if self.thoughts and first else []
        return [*thought, {"text": text}]


def json_names(value: Any) -> Any:
    """Google's JSON mapping takes a field by its proto name (``system_instruction``) or its JSON name
    (``systemInstruction``): the JSON names, everywhere but inside the values that are the client's own data."""
    if isinstance(value, list):
        return [json_names(item) for item in value]
    if not isinstance(value, dict):
        return value
    named = {re.sub(r"_([a-z])", lambda m: m.group(1).upper(), key): item for key, item in value.items()}
    return {key: item if key in OPAQUE else json_names(item) for key, item in named.items()}


def _read_contents(contents: list[object]) -> tuple[list[str], str, str | None]:
    """Every text of the conversation, the last user text, and the last part's tool result (if it is one)."""
    texts: list[str] = []
    last_user, tool_result = "", None
    for content in contents:
        if not isinstance(content, dict) or content.get("role", "user") not in ("user", "model", "function"):
            raise WireError(400, "Please use a valid role: user, model.")
        parts = content.get("parts")
        if not isinstance(parts, list) or not parts:
            raise WireError(400, "* GenerateContentRequest.contents.parts: contents.parts must not be empty.")
        text = _parts_text(content)
        texts.append(text)
        last_user = text if content.get("role", "user") == "user" and text else last_user
        responses = [p["functionResponse"] for p in parts if isinstance(p, dict) and "functionResponse" in p]
        tool_result = json.dumps(responses[-1].get("response")) if responses else None
    return texts, last_user, tool_result


def _parts_text(content: Json) -> str:
    parts = content.get("parts") or []
    return " ".join(p["text"] for p in parts if isinstance(p, dict) and isinstance(p.get("text"), str))


def _read_tools(body: Json) -> tuple[list[Tool], str | None]:
    """The offered functions, and the one the client forces (mode ANY), if any; mode NONE offers none."""
    declared = [d for t in body.get("tools") or [] for d in (t.get("functionDeclarations") or [])]
    tools = [Tool(d["name"], d.get("parameters") or d.get("parametersJsonSchema") or {}) for d in declared]
    config = (body.get("toolConfig") or {}).get("functionCallingConfig") or {}
    mode = config.get("mode", "AUTO")
    if mode not in ("AUTO", "ANY", "NONE", "VALIDATED"):
        raise WireError(400, f"Invalid value at 'tool_config.function_calling_config.mode' ({mode})")
    allowed = config.get("allowedFunctionNames") or []
    if mode == "NONE":
        return [], None
    return tools, (allowed[0] if mode == "ANY" and allowed else None)
