"""OpenAI Responses API request -> OpenAI chat completion request, as pure functions.

Clients of ``POST /v1/responses`` (the openai SDK's ``responses.create``, the Agents SDK, LangChain's
``use_responses_api``) send a body that :func:`to_chat` turns into a chat body; the pipeline routes it as any
chat request. The answer goes back through :mod:`gateway.translate.responses_response` (or
:mod:`gateway.translate.responses_stream` for streams). A deployment that speaks the Responses API itself gets
the client's own body instead (``Native("responses", ...)``), so nothing here limits it.

    input: string                         -> one user message
    input items (in order):
      message (role user|system|developer|assistant; ``type`` may be omitted)
        content string                    -> the same string (developer -> system)
        input_text / output_text parts    -> text parts (assistant: joined into one string)
        input_image (image_url)           -> image_url part {"url", "detail"}
        input_file (file_data)            -> file part {"filename", "file_data"} (a PDF)
        refusal (assistant)               -> its text
      function_call {call_id, name, arguments}  -> an assistant message's tool_calls (consecutive calls, and the
                                                 assistant text right before them, share one message)
      function_call_output {call_id, output}    -> a ``role: "tool"`` message (output parts: their text, joined)
      reasoning                           -> dropped (chat has no way to send reasoning back)
    instructions                          -> a system message before the input
    tools (type function: name, description, parameters, strict) -> chat function tools
    tool_choice "auto"|"none"|"required" -> the same; {"type": "function", "name"} -> {"type": "function",
                                            "function": {"name"}}
    parallel_tool_calls, temperature, top_p, user, safety_identifier, prompt_cache_key, service_tier,
    top_logprobs                          -> the same names (top_logprobs adds logprobs: true)
    max_output_tokens                     -> max_tokens
    text.format json_object | json_schema {name, schema, strict, description} -> response_format
    text.verbosity                        -> verbosity
    reasoning.effort                      -> reasoning_effort (vLLM and OpenAI take it; others ignore it)
    stream: true                          -> stream: true, stream_options.include_usage: true
Kept at the edge, not sent: metadata, store, previous_response_id (the edge resolves it into input items),
truncation, include. Refused with ``InvalidRequest`` naming the field: what chat cannot carry (tools other than
function tools, file_id / image file_id inputs, item_reference, background, conversation, prompt templates) and
anything malformed.
"""

from __future__ import annotations

from typing import Any

from gateway.errors import InvalidRequest
from gateway.translate.anthropic_content import Json
from gateway.translate.anthropic_content import shown as _shown

ROLES = {"user": "user", "system": "system", "developer": "system", "assistant": "assistant"}
_SAME = ("parallel_tool_calls", "temperature", "top_p", "user", "safety_identifier", "prompt_cache_key", "service_tier")
_UNSUPPORTED = {
    "background": "background responses",
    "conversation": "conversations",
    "prompt": "prompt templates",
}
_TEXT_PARTS = frozenset({"input_text", "output_text", "text"})


def to_chat(body: Json, history: list[Json] | None = None) -> Json:
    """A Responses request body as a chat completion body; ``history``: the input and output items of the
    ``previous_response_id`` chain, oldest first, which come before this body's input."""
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise InvalidRequest("'model' is required and must be a non-empty string.", param="model")
    for name, feature in _UNSUPPORTED.items():
        if body.get(name) not in (None, False):
            raise InvalidRequest(f"'{name}': {feature} are not supported by this gateway.", param=name)
    messages = _instructions(body.get("instructions")) + messages_of([*(history or []), *input_items(body)])
    if not messages:
        raise InvalidRequest("'input' must not be empty.", param="input")
    out: Json = {"model": model, "messages": messages}
    out |= {name: body[name] for name in _SAME if body.get(name) is not None}
    if body.get("max_output_tokens") is not None:
        out["max_tokens"] = body["max_output_tokens"]
    if body.get("top_logprobs") is not None:
        out |= {"logprobs": True, "top_logprobs": body["top_logprobs"]}
    if body.get("stream") is True:
        out |= {"stream": True, "stream_options": {"include_usage": True}}
    return out | _text(body.get("text")) | _reasoning(body.get("reasoning")) | _tools(body)


def input_items(body: Json) -> list[Json]:
    """The body's ``input`` as a list of items (a string is one user message)."""
    value = body.get("input")
    if isinstance(value, str):
        return [{"type": "message", "role": "user", "content": value}]
    if value is None:
        return []
    if not isinstance(value, list):
        raise InvalidRequest("'input' must be a string or an array of input items.", param="input")
    for index, item in enumerate(value):
        if not isinstance(item, dict):
            raise InvalidRequest(f"'input[{index}]' must be an object.", param=f"input[{index}]")
    return value


def _instructions(value: Any) -> list[Json]:
    if value is None or value == "":
        return []
    if not isinstance(value, str):
        raise InvalidRequest("'instructions' must be a string.", param="instructions")
    return [{"role": "system", "content": value}]


def messages_of(items: list[Json]) -> list[Json]:
    """Input items (and output items of earlier responses, which are valid input) as chat messages."""
    out: list[Json] = []
    for index, item in enumerate(items):
        param = f"input[{index}]"
        kind = item.get("type", "message" if "role" in item else None)
        if kind == "message":
            out.append(_message(item, param))
        elif kind == "function_call":
            _add_call(out, item, param)
        elif kind == "function_call_output":
            out.append(_call_output(item, param))
        elif kind != "reasoning":
            raise InvalidRequest(
                f"'{param}.type' {_shown(kind)} is not supported; the gateway takes message, function_call, "
                "function_call_output and reasoning items.",
                param=f"{param}.type",
            )
    return out


def _message(item: Json, param: str) -> Json:
    role = ROLES.get(item.get("role"))  # type: ignore[arg-type]
    if role is None:
        raise InvalidRequest(
            f"'{param}.role' must be one of {sorted(ROLES)}, got {_shown(item.get('role'))}.", param=f"{param}.role"
        )
    content = item.get("content")
    if isinstance(content, str):
        return {"role": role, "content": content}
    if not isinstance(content, list):
        raise InvalidRequest(f"'{param}.content' must be a string or an array of parts.", param=f"{param}.content")
    parts = [_part(part, f"{param}.content[{i}]") for i, part in enumerate(content)]
    if role != "user" or all(part["type"] == "text" for part in parts):
        if any(part["type"] != "text" for part in parts):
            raise InvalidRequest(f"'{param}.content': only user messages may carry images and files.", param=param)
        return {"role": role, "content": "".join(part["text"] for part in parts)}
    return {"role": role, "content": parts}


def _part(part: Any, param: str) -> Json:
    kind = part.get("type") if isinstance(part, dict) else None
    if kind in _TEXT_PARTS or kind == "refusal":
        text = part.get("refusal" if kind == "refusal" else "text")
        if not isinstance(text, str):
            raise InvalidRequest(f"'{param}.text' must be a string.", param=f"{param}.text")
        return {"type": "text", "text": text}
    if kind == "input_image":
        url = part.get("image_url")
        if not isinstance(url, str) or not url:
            raise InvalidRequest(
                f"'{param}.image_url' must be a URL or a data: URL (file_id images need the Files API, which the "
                "gateway does not have).",
                param=f"{param}.image_url",
            )
        detail = part.get("detail")
        return {"type": "image_url", "image_url": {"url": url} | ({"detail": detail} if detail else {})}
    if kind == "input_file":
        data = part.get("file_data")
        if not isinstance(data, str) or not data:
            raise InvalidRequest(
                f"'{param}.file_data' is required: file_id and file_url inputs need the Files API, which the gateway "
                "does not have.",
                param=f"{param}.file_data",
            )
        return {"type": "file", "file": {"filename": part.get("filename") or "document.pdf", "file_data": data}}
    raise InvalidRequest(
        f"'{param}.type' must be input_text, input_image, input_file or output_text, got {_shown(kind)}.",
        param=f"{param}.type",
    )


def _add_call(out: list[Json], item: Json, param: str) -> None:
    for name in ("call_id", "name", "arguments"):
        if not isinstance(item.get(name), str):
            raise InvalidRequest(f"'{param}.{name}' must be a string.", param=f"{param}.{name}")
    call = {
        "id": item["call_id"],
        "type": "function",
        "function": {"name": item["name"], "arguments": item["arguments"]},
    }
    last = out[-1] if out else None
    if last is not None and last["role"] == "assistant" and isinstance(last.get("content"), str | None):
        last.setdefault("tool_calls", []).append(call)
    else:
        out.append({"role": "assistant", "content": None, "tool_calls": [call]})


def _call_output(item: Json, param: str) -> Json:
    call_id, output = item.get("call_id"), item.get("output")
    if not isinstance(call_id, str):
        raise InvalidRequest(f"'{param}.call_id' must be a string.", param=f"{param}.call_id")
    if isinstance(output, list):
        output = "".join(p["text"] for p in output if isinstance(p, dict) and isinstance(p.get("text"), str))
    if not isinstance(output, str):
        raise InvalidRequest(f"'{param}.output' must be a string or an array of parts.", param=f"{param}.output")
    return {"role": "tool", "tool_call_id": call_id, "content": output}


def _text(value: Any) -> Json:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise InvalidRequest("'text' must be an object.", param="text")
    out: Json = {"verbosity": value["verbosity"]} if isinstance(value.get("verbosity"), str) else {}
    spec = value.get("format")
    kind = spec.get("type") if isinstance(spec, dict) else None
    if spec is None or kind == "text":
        return out
    if kind == "json_object":
        return out | {"response_format": {"type": "json_object"}}
    if kind != "json_schema":
        raise InvalidRequest(
            "'text.format.type' must be 'text', 'json_object' or 'json_schema'.", param="text.format.type"
        )
    assert isinstance(spec, dict)
    name, schema = spec.get("name"), spec.get("schema")
    if not isinstance(name, str) or not name:
        raise InvalidRequest("'text.format.name' is required for json_schema.", param="text.format.name")
    if not isinstance(schema, dict):
        raise InvalidRequest("'text.format.schema' must be a JSON Schema object.", param="text.format.schema")
    inner = {"name": name, "schema": schema} | {k: spec[k] for k in ("strict", "description") if k in spec}
    return out | {"response_format": {"type": "json_schema", "json_schema": inner}}


def _reasoning(value: Any) -> Json:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise InvalidRequest("'reasoning' must be an object.", param="reasoning")
    effort = value.get("effort")
    return {"reasoning_effort": effort} if isinstance(effort, str) else {}


def _tools(body: Json) -> Json:
    tools = body.get("tools")
    if tools is not None and not isinstance(tools, list):
        raise InvalidRequest("'tools' must be an array.", param="tools")
    functions = [_function(tool, f"tools[{index}]") for index, tool in enumerate(tools or [])]
    out: Json = {"tools": functions} if functions else {}
    choice = body.get("tool_choice")
    if choice is None or (not functions and choice in ("auto", "none")):
        return out
    if isinstance(choice, str) and choice in ("auto", "none", "required"):
        return out | {"tool_choice": choice}
    if isinstance(choice, dict) and choice.get("type") == "function" and isinstance(choice.get("name"), str):
        names = [f["function"]["name"] for f in functions]
        if choice["name"] not in names:
            raise InvalidRequest(
                f"'tool_choice.name' must be one of the tools {names}, got {_shown(choice['name'])}.",
                param="tool_choice.name",
            )
        return out | {"tool_choice": {"type": "function", "function": {"name": choice["name"]}}}
    raise InvalidRequest(
        "'tool_choice' must be 'auto', 'none', 'required' or {\"type\": \"function\", \"name\": ...}.",
        param="tool_choice",
    )


def _function(tool: Any, where: str) -> Json:
    kind = tool.get("type") if isinstance(tool, dict) else None
    if kind != "function":
        raise InvalidRequest(
            f"'{where}.type' {_shown(kind)} is a hosted tool, which the gateway cannot run; only function tools "
            "are supported.",
            param=f"{where}.type",
        )
    assert isinstance(tool, dict)
    name = tool.get("name")
    if not isinstance(name, str) or not name:
        raise InvalidRequest(f"'{where}.name' is required and must be a string.", param=f"{where}.name")
    function: Json = {"name": name, "parameters": tool.get("parameters") or {"type": "object", "properties": {}}}
    if not isinstance(function["parameters"], dict):
        raise InvalidRequest(f"'{where}.parameters' must be a JSON Schema object.", param=f"{where}.parameters")
    for key in ("description", "strict"):
        if tool.get(key) is not None:
            function[key] = tool[key]
    return {"type": "function", "function": function}
