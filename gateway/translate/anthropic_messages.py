"""Anthropic Messages API <-> OpenAI chat completions, as pure functions.

Clients of the official ``anthropic`` SDK call ``POST /v1/messages``. The edge turns their body into an
OpenAI chat body with :func:`to_openai`, the pipeline routes it as usual, and the OpenAI answer goes back
with :func:`from_openai` (or :class:`gateway.translate.anthropic_stream.StreamTranslator` for streams).
Errors leave in Anthropic's shape through :func:`error_body` and :func:`error_event`.

Request, Anthropic -> OpenAI:
    system (string or text blocks)       -> first message, role "system" (blocks joined with a newline);
                                            a ``role: "system"`` message (typed by newer SDKs) likewise, in place
    string content                       -> the same string
    content blocks                       -> see gateway.translate.anthropic_content (text, images, documents,
                                            tool_use, tool_result with its images and documents)
    max_tokens, temperature, top_p       -> same names
    top_k                                -> ``top_k``: not an OpenAI field, passed for upstreams that take it (vLLM)
    stop_sequences                       -> stop
    stream: true                         -> stream: true, stream_options: {"include_usage": true}
    tools (custom: name, description, input_schema) -> function tools
    tool_choice auto | any | tool | none -> "auto" | "required" | {"type": "function", ...} | "none";
                                            disable_parallel_tool_use: true -> parallel_tool_calls: false;
                                            auto / none without tools are dropped (OpenAI refuses them)
    metadata.user_id                     -> user
Dropped on purpose: ``thinking`` and thinking / redacted_thinking blocks of assistant turns (no portable
equivalent), ``cache_control`` and ``citations`` on blocks, and every other top-level field (service_tier,
container, mcp_servers, ...). These are not lost when the deployment speaks Anthropic's API: the gateway then
sends the client's own body (gateway.upstream.providers.anthropic_passthrough), and this translation only
routes the request. Refused with ``InvalidRequest`` naming the field: anything malformed, and what the gateway
cannot carry: server tools and the block sources listed in anthropic_content.

Response, OpenAI -> Anthropic (choice 0 only):
    content (or refusal, when content is empty) -> one text block; reasoning fields are dropped
    tool_calls   -> tool_use blocks, id verbatim (so the client's tool_result routes back), ``input`` parsed from the
                    arguments; "" gives {}, and arguments that are not a JSON object give ``{"_raw": "<arguments>"}``:
                    the client's tool sees the malformed call and can report it, instead of the turn failing.
                    Streams pass the argument fragments through unchanged (they cannot be re-parsed mid-stream).
    finish_reason -> stop_reason: stop -> end_turn, length -> max_tokens, tool_calls / function_call -> tool_use,
                    content_filter -> refusal, tool calls with stop -> tool_use, anything else -> end_turn.
                    OpenAI does not say which stop sequence matched; vLLM does, in the choice's ``stop_reason`` (a
                    string): then stop_reason is stop_sequence and stop_sequence that string, else it is null.
    usage        -> input_tokens = prompt_tokens - cached, cache_read_input_tokens = cached, output_tokens,
                    cache_creation_input_tokens = 0 (OpenAI-style upstreams do not report cache writes)
    id           -> "msg_" + the upstream id, so logs on both sides line up
"""

from __future__ import annotations

import uuid
from typing import Any

import orjson

from gateway.errors import GatewayError, InvalidRequest, UpstreamBadResponse
from gateway.translate import anthropic_content as content_blocks
from gateway.translate.anthropic_content import Json, blocks, string, text_of
from gateway.translate.anthropic_content import shown as _shown

_TOOL_CHOICES = {"auto": "auto", "any": "required", "none": "none"}
STOP_REASONS = {
    "stop": "end_turn",
    "length": "max_tokens",
    "tool_calls": "tool_use",
    "function_call": "tool_use",
    "content_filter": "refusal",
}
ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    402: "billing_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    500: "api_error",
    503: "overloaded_error",
    504: "timeout_error",
    529: "overloaded_error",
}
_SERVER_ERROR = 500


# ---- request: Anthropic -> OpenAI ----------------------------------------------------------------


def to_openai(body: Json) -> Json:
    """An Anthropic Messages request body as an OpenAI chat completion body; ``InvalidRequest`` names a bad field."""
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise InvalidRequest("'model' is required and must be a non-empty string.", param="model")
    messages = [*_system(body.get("system"), "system"), *_messages(body.get("messages"))]
    out: Json = {"model": model, "messages": messages, "max_tokens": _max_tokens(body.get("max_tokens"))}
    return out | _sampling(body) | _stream(body.get("stream")) | _tools(body) | _user_id(body.get("metadata"))


def _max_tokens(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise InvalidRequest("'max_tokens' is required and must be a positive integer.", param="max_tokens")
    return value


def _sampling(body: Json) -> Json:
    out: Json = {}
    for name in ("temperature", "top_p", "top_k"):
        value = body.get(name)
        if value is None:
            continue
        kinds, noun = (int, "integer") if name == "top_k" else ((int, float), "number")
        if isinstance(value, bool) or not isinstance(value, kinds) or value < 0:
            raise InvalidRequest(f"'{name}' must be a non-negative {noun}.", param=name)
        out[name] = value
    stops = body.get("stop_sequences")
    if stops is not None and (not isinstance(stops, list) or not all(isinstance(s, str) for s in stops)):
        raise InvalidRequest("'stop_sequences' must be an array of strings.", param="stop_sequences")
    return out | ({"stop": stops} if stops else {})


def _stream(value: Any) -> Json:
    if value is not None and not isinstance(value, bool):
        raise InvalidRequest("'stream' must be a boolean.", param="stream")
    return {"stream": True, "stream_options": {"include_usage": True}} if value else {}


def _user_id(metadata: Any) -> Json:
    if metadata is None:
        return {}
    if not isinstance(metadata, dict):
        raise InvalidRequest("'metadata' must be an object.", param="metadata")
    user_id = metadata.get("user_id")
    if user_id is not None and not isinstance(user_id, str):
        raise InvalidRequest("'metadata.user_id' must be a string.", param="metadata.user_id")
    return {"user": user_id} if user_id else {}


def _system(content: Any, param: str, *, required: bool = False) -> list[Json]:
    if content is None and not required:
        return []
    if isinstance(content, str):
        texts = [content]
    elif isinstance(content, list):
        texts = [text_of(block, where) for where, block in blocks(content, param, {"text"})] if content else []
    else:
        raise InvalidRequest(f"'{param}' must be a string or an array of text blocks.", param=param)
    text = "\n".join(texts)
    return [{"role": "system", "content": text}] if text else []


def _messages(messages: Any) -> list[Json]:
    if not isinstance(messages, list) or not messages:
        raise InvalidRequest("'messages' is required and must be a non-empty array.", param="messages")
    out: list[Json] = []
    for index, message in enumerate(messages):
        param = f"messages[{index}]"
        if not isinstance(message, dict):
            raise InvalidRequest(f"'{param}' must be an object.", param=param)
        role, content = message.get("role"), message.get("content")
        if role == "user":
            out += content_blocks.user(content, f"{param}.content")
        elif role == "assistant":
            out.append(content_blocks.assistant(content, f"{param}.content"))
        elif role == "system":
            out += _system(content, f"{param}.content", required=True)
        else:
            raise InvalidRequest(
                f"'{param}.role' must be 'user' or 'assistant', got {_shown(role)}.", param=f"{param}.role"
            )
    return out


def _tools(body: Json) -> Json:
    tools = body.get("tools")
    if tools is not None and not isinstance(tools, list):
        raise InvalidRequest("'tools' must be an array.", param="tools")
    functions = [_function(tool, f"tools[{index}]") for index, tool in enumerate(tools or [])]
    names = [f["function"]["name"] for f in functions]
    choice = _tool_choice(body.get("tool_choice"), names)
    return ({"tools": functions} if functions else {}) | choice


def _function(tool: Any, where: str) -> Json:
    if not isinstance(tool, dict):
        raise InvalidRequest(f"'{where}' must be an object.", param=where)
    if tool.get("type") not in (None, "custom"):
        raise InvalidRequest(
            f"'{where}.type' {_shown(tool['type'])} is a server tool, which the gateway cannot run; "
            "only custom tools (name, description, input_schema) are supported.",
            param=f"{where}.type",
        )
    function: Json = {"name": string(tool, "name", where)}
    description = tool.get("description")
    if description is not None:
        if not isinstance(description, str):
            raise InvalidRequest(f"'{where}.description' must be a string.", param=f"{where}.description")
        function["description"] = description
    schema = tool.get("input_schema")
    if not isinstance(schema, dict):
        raise InvalidRequest(f"'{where}.input_schema' must be a JSON Schema object.", param=f"{where}.input_schema")
    return {"type": "function", "function": function | {"parameters": schema}}


def _tool_choice(choice: Any, names: list[str]) -> Json:
    if choice is None:
        return {}
    kind = choice.get("type") if isinstance(choice, dict) else None
    if kind not in ("auto", "any", "tool", "none"):
        raise InvalidRequest("'tool_choice.type' must be one of 'auto', 'any', 'tool', 'none'.", param="tool_choice")
    if not names:
        if kind in ("auto", "none"):
            return {}
        raise InvalidRequest(f"'tool_choice' {kind!r} needs a non-empty 'tools' array.", param="tool_choice")
    picked: Any = _TOOL_CHOICES.get(kind)
    if kind == "tool":
        name = choice.get("name")
        if name not in names:
            raise InvalidRequest(
                f"'tool_choice.name' must be one of the tools {names}, got {_shown(name)}.", param="tool_choice.name"
            )
        picked = {"type": "function", "function": {"name": name}}
    parallel = {"parallel_tool_calls": False} if choice.get("disable_parallel_tool_use") is True else {}
    return {"tool_choice": picked} | parallel


# ---- response: OpenAI -> Anthropic ---------------------------------------------------------------


def from_openai(response: Json, model: str) -> Json:
    """An OpenAI chat completion as an Anthropic message; ``model`` is the name the client asked for."""
    choices = response.get("choices")
    choice = choices[0] if isinstance(choices, list) and choices else None
    message = choice.get("message") if isinstance(choice, dict) else None
    if not isinstance(choice, dict) or not isinstance(message, dict):
        raise UpstreamBadResponse("The upstream answer has no choices[0].message.")
    calls = message.get("tool_calls") or []
    content = _text_blocks(message) + [_tool_use(call) for call in calls]
    return {
        "id": message_id(response.get("id")),
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": content,
        **stop_fields(choice.get("finish_reason"), choice.get("stop_reason"), tool_use=bool(calls)),
        "usage": usage(response.get("usage")),
    }


def _text_blocks(message: Json) -> list[Json]:
    text = message.get("content") or message.get("refusal")
    if isinstance(text, list):  # some upstreams answer with content parts
        text = "".join(p["text"] for p in text if isinstance(p, dict) and isinstance(p.get("text"), str))
    return [{"type": "text", "text": text}] if isinstance(text, str) and text else []


def _tool_use(call: Any) -> Json:
    function = call.get("function") if isinstance(call, dict) else None
    if not isinstance(function, dict) or not isinstance(function.get("name"), str):
        raise UpstreamBadResponse("The upstream answer has a tool call without a function name.")
    ident = call.get("id") or new_id("toolu_")
    return {"type": "tool_use", "id": ident, "name": function["name"], "input": tool_input(function.get("arguments"))}


def tool_input(arguments: Any) -> Json:
    """Tool call arguments as an object: "" -> {}, anything not a JSON object -> ``{"_raw": arguments}``."""
    if isinstance(arguments, dict):
        return arguments
    if arguments is None or (isinstance(arguments, str) and not arguments.strip()):
        return {}
    try:
        value = orjson.loads(arguments) if isinstance(arguments, str) else None
    except orjson.JSONDecodeError:
        value = None
    return value if isinstance(value, dict) else {"_raw": arguments if isinstance(arguments, str) else str(arguments)}


def stop_fields(finish_reason: Any, matched: Any, *, tool_use: bool) -> Json:
    """``stop_reason`` and ``stop_sequence``; ``matched`` is vLLM's ``stop_reason``, the stop string that ended it."""
    if finish_reason == "stop" and not tool_use and isinstance(matched, str) and matched:
        return {"stop_reason": "stop_sequence", "stop_sequence": matched}
    return {"stop_reason": stop_reason(finish_reason, tool_use=tool_use), "stop_sequence": None}


def stop_reason(finish_reason: Any, *, tool_use: bool) -> str:
    if tool_use and finish_reason in (None, "stop"):
        return "tool_use"
    return STOP_REASONS.get(finish_reason, "end_turn") if isinstance(finish_reason, str) else "end_turn"


def usage(raw: Any) -> Json:
    """OpenAI usage as Anthropic usage; Anthropic's input_tokens excludes the tokens read from cache."""
    raw = raw if isinstance(raw, dict) else {}
    details = raw.get("prompt_tokens_details")
    cached = _count(details.get("cached_tokens")) if isinstance(details, dict) else 0
    return {
        "input_tokens": max(_count(raw.get("prompt_tokens")) - cached, 0),
        "output_tokens": _count(raw.get("completion_tokens")),
        "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": cached,
    }


def _count(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else 0


def message_id(upstream_id: Any) -> str:
    if not isinstance(upstream_id, str) or not upstream_id:
        return new_id("msg_")
    return upstream_id if upstream_id.startswith("msg_") else f"msg_{upstream_id}"


def new_id(prefix: str) -> str:
    return prefix + uuid.uuid4().hex[:24]


# ---- errors and the SSE wire ---------------------------------------------------------------------


def error_type(status: int) -> str:
    """Anthropic's error ``type`` for an HTTP status; other 4xx are invalid_request_error, other 5xx api_error."""
    return ERROR_TYPES.get(status) or ("api_error" if status >= _SERVER_ERROR else "invalid_request_error")


def error_body(exc: GatewayError, *, request_id: str | None = None) -> Json:
    """Anthropic's error shape, ``{"type": "error", "error": {"type", "message"}, "request_id"}``, with the
    gateway's ``code`` (``model_not_capable``, ...) and ``param`` (the field) beside ``type`` and ``message``:
    extra keys, which the anthropic SDKs keep and ignore."""
    error: Json = {"type": error_type(exc.status), "message": exc.message}
    error |= {"code": exc.code} if exc.code else {}
    error |= {"param": exc.param} if exc.param else {}
    return {"type": "error", "error": error} | ({"request_id": request_id} if request_id else {})


def error_event(exc: GatewayError) -> tuple[str, Json]:
    """The ``event: error`` that ends a stream which already answered 200."""
    return "error", error_body(exc)


def encode_event(name: str, data: Json) -> bytes:
    return b"event: " + name.encode() + b"\ndata: " + orjson.dumps(data) + b"\n\n"
