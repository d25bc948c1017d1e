"""Raw body bytes -> :class:`ChatRequest`, or an ``InvalidRequest`` naming the bad field.

Bodies nested deeper than :data:`MAX_DEPTH` levels are refused at parse. orjson reads up to 1,024 levels
but writes only 254, and the gateway writes the body again (to the upstream, into the cache key, after
the Anthropic translation), so a deeper body would fail there, after routing, as a server error.
128 leaves room for the levels the gateway adds and is far beyond what a real request (a JSON schema in
``tools`` or ``response_format``) needs. Fields the gateway reads are type-checked here, the other fields
each API defines by the tables of :mod:`gateway.routing.validate`; unknown fields pass through untouched.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import orjson

from gateway.errors import InvalidRequest
from gateway.policy.aliases import Aliases
from gateway.request import CHARS_PER_TOKEN, ChatRequest, Endpoint, Native
from gateway.routing.prompt_size import prompt_chars
from gateway.routing.validate import RULES, check, shown

ROLES = frozenset({"system", "developer", "user", "assistant", "tool", "function"})
_CLASSIFY_CHARS = 4_000  # the classifier reads at most this much text from each end
MAX_DEPTH = 128  # levels of arrays and objects in a request body, the body itself being level 1


def parse_json(raw: bytes) -> dict[str, Any]:
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise InvalidRequest(f"The request body is not valid JSON: {exc}") from None
    if not isinstance(body, dict):
        raise InvalidRequest("The request body must be a JSON object.")
    # a body cannot be deeper than its count of opening brackets: two byte scans spare the walk almost always
    if raw.count(b"{") + raw.count(b"[") > MAX_DEPTH and depth(body) > MAX_DEPTH:
        raise InvalidRequest(f"The request body nests arrays and objects more than {MAX_DEPTH} levels deep.")
    return body


def depth(value: Any) -> int:
    """Levels of nested arrays and objects in a parsed JSON value (a scalar is 0), without recursion:
    one list comprehension per level, so a body of any depth costs no Python stack."""
    level = [value] if isinstance(value, dict | list) else []
    levels = 0
    while level:
        levels += 1
        level = [
            child
            for node in level
            for child in (node.values() if isinstance(node, dict) else node)
            if isinstance(child, dict | list)
        ]
    return levels


def normalize(
    endpoint: Endpoint,
    raw: bytes | dict[str, Any],
    headers: Mapping[str, str],
    native: Native | None = None,
    aliases: Aliases | None = None,
) -> ChatRequest:
    """``raw`` is the body's bytes, or a body already parsed and checked (a translation's, next to ``native``).
    ``aliases``: the policy's, which map a client's model name to a route or catalog model."""
    body = raw if isinstance(raw, dict) else parse_json(raw)
    if native is None:
        check(RULES[endpoint], body)
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise InvalidRequest("'model' is required and must be a non-empty string.", param="model")
    stream = _flag(body, "stream")
    if endpoint == "chat":
        texts, last_user, turns, vision = _chat_text(body.get("messages"))
    elif endpoint == "completions":
        texts, last_user, turns, vision = _prompt_text(body.get("prompt"), "prompt")
    else:
        texts, last_user, turns, vision = _prompt_text(body.get("input"), "input")
        stream = False
    text = "\n".join(texts)
    resolved = aliases.resolve(model) if aliases else None
    return ChatRequest(
        endpoint=endpoint,
        model=resolved.target if resolved else model,
        body=body,
        stream=stream,
        include_usage=stream and _include_usage(body),
        text=text if len(text) <= 2 * _CLASSIFY_CHARS else text[:_CLASSIFY_CHARS] + "\n" + text[-_CLASSIFY_CHARS:],
        whole_text=None if len(text) <= 2 * _CLASSIFY_CHARS else text,
        last_user=last_user,
        turns=turns,
        needs_tools=_needs_tools(body),
        needs_json=_needs_json(body),
        needs_vision=vision,
        max_tokens=_max_tokens(body),
        prompt_tokens_estimate=max(1, len(text) // CHARS_PER_TOKEN),
        data_class=headers.get("x-gateway-data-class") or None,
        native=native,
        traceparent=_traceparent(headers),
        requested_model=model if resolved else None,
        alias=resolved.alias if resolved else None,
        prompt_chars=prompt_chars(endpoint, body, texts),
    )


_TRACEPARENT = re.compile(r"^[0-9a-f]{2}-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}$")


def _traceparent(headers: Mapping[str, str]) -> str | None:
    """The client's W3C ``traceparent``, if well formed (it goes into the upstream request's head)."""
    value = headers.get("traceparent")
    return value if value is not None and _TRACEPARENT.match(value) else None


def _flag(body: Mapping[str, Any], name: str) -> bool:
    value = body.get(name, False)
    if value is None:
        return False
    if not isinstance(value, bool):
        raise InvalidRequest(f"'{name}' must be a boolean.", param=name)
    return value


def _include_usage(body: Mapping[str, Any]) -> bool:
    options = body.get("stream_options")
    if options is None:
        return False
    if not isinstance(options, dict):
        raise InvalidRequest("'stream_options' must be an object.", param="stream_options")
    return _flag(options, "include_usage")


def _chat_text(messages: Any) -> tuple[list[str], str, int, bool]:
    if not isinstance(messages, list) or not messages:
        raise InvalidRequest("'messages' must be a non-empty array.", param="messages")
    texts: list[str] = []
    last_user, turns, vision = "", 0, False
    for index, message in enumerate(messages):
        if not isinstance(message, dict):
            raise InvalidRequest(f"messages[{index}] must be an object.", param=f"messages[{index}]")
        role = message.get("role")
        if not isinstance(role, str) or role not in ROLES:
            raise InvalidRequest(
                f"messages[{index}].role must be one of {sorted(ROLES)}, got {shown(role)}.",
                param=f"messages[{index}].role",
            )
        _tool_calls(message.get("tool_calls"), f"messages[{index}].tool_calls")
        if message.get("content") is None and not (role == "assistant" and _calls(message)):
            raise InvalidRequest(
                f"messages[{index}].content is required (only an assistant turn with tool calls may omit it).",
                param=f"messages[{index}].content",
            )
        text, has_image = _content_text(message.get("content"), f"messages[{index}].content")
        vision = vision or has_image
        texts.append(text)
        if role == "user":
            last_user, turns = text, turns + 1
    return texts, last_user, turns, vision


def _calls(message: Mapping[str, Any]) -> bool:
    return bool(message.get("tool_calls") or message.get("function_call") or message.get("audio"))


def _tool_calls(calls: Any, param: str) -> None:
    """An assistant turn's tool calls: an array of objects whose function has a string name and arguments."""
    if calls is None:
        return
    if not isinstance(calls, list):
        raise InvalidRequest(f"'{param}' must be an array.", param=param)
    for index, call in enumerate(calls):
        function = call.get("function") if isinstance(call, dict) else None
        if not isinstance(function, dict) or not all(isinstance(function.get(k), str) for k in ("name", "arguments")):
            where = f"{param}[{index}]"
            raise InvalidRequest(
                f"'{where}' must be an object whose 'function' has a string 'name' and 'arguments'.", param=where
            )


def _content_text(content: Any, param: str) -> tuple[str, bool]:
    if content is None or isinstance(content, str):
        return content or "", False
    if not isinstance(content, list):
        raise InvalidRequest(f"'{param}' must be a string or an array of content parts.", param=param)
    parts, image = [], False
    for index, part in enumerate(content):
        if not isinstance(part, dict) or not isinstance(part.get("type"), str):
            raise InvalidRequest(f"'{param}[{index}]' must be a content part with a 'type'.", param=f"{param}[{index}]")
        if isinstance(part.get("text"), str):
            parts.append(part["text"])
        image = image or part["type"] in ("image_url", "input_image", "image", "file")  # a file: a PDF
    return "\n".join(parts), image


def _prompt_text(prompt: Any, param: str) -> tuple[list[str], str, int, bool]:
    if isinstance(prompt, str):
        return [prompt], prompt, 1, False
    if isinstance(prompt, list) and prompt:
        if all(isinstance(p, str) for p in prompt):
            return list(prompt), prompt[-1], 1, False
        if all(isinstance(p, int) for p in prompt) or all(isinstance(p, list) for p in prompt):
            return [" " * CHARS_PER_TOKEN * _count_tokens(prompt)], "", 1, False
    raise InvalidRequest(f"'{param}' must be a string, an array of strings or an array of token arrays.", param=param)


def _count_tokens(prompt: list[Any]) -> int:
    return sum(len(p) if isinstance(p, list) else 1 for p in prompt)


def _needs_tools(body: Mapping[str, Any]) -> bool:
    offered = [_functions(body.get(name), name) for name in ("tools", "functions")]
    choice = body.get("tool_choice")
    if choice is not None and not isinstance(choice, str | dict):
        raise InvalidRequest("'tool_choice' must be a string or an object.", param="tool_choice")
    return any(offered) and choice != "none"


def _functions(tools: Any, param: str) -> bool:
    """Whether ``tools`` (or the older ``functions``) offers any. The function of each must be an object
    with a string ``name`` and, if any, object ``parameters``: upstreams and litellm trip over others."""
    if tools is None:
        return False
    if not isinstance(tools, list):
        raise InvalidRequest(f"'{param}' must be an array.", param=param)
    for index, tool in enumerate(tools):
        where = f"{param}[{index}]"
        if not isinstance(tool, dict):
            raise InvalidRequest(f"'{where}' must be an object.", param=where)
        if param == "functions":
            _function(tool, where)
        elif "function" in tool:
            _function(tool["function"], f"{where}.function")
    return bool(tools)


def _function(function: Any, param: str) -> None:
    if not isinstance(function, dict) or not isinstance(function.get("name"), str):
        raise InvalidRequest(f"'{param}' must be an object with a string 'name'.", param=param)
    if function.get("parameters") is not None and not isinstance(function["parameters"], dict):
        raise InvalidRequest(f"'{param}.parameters' must be a JSON Schema object.", param=f"{param}.parameters")


def _needs_json(body: Mapping[str, Any]) -> bool:
    response_format = body.get("response_format")
    if response_format is None:
        return False
    if not isinstance(response_format, dict) or not isinstance(response_format.get("type"), str):
        raise InvalidRequest("'response_format' must be an object with a 'type'.", param="response_format")
    return response_format["type"] in ("json_object", "json_schema")


def _max_tokens(body: Mapping[str, Any]) -> int | None:
    for name in ("max_completion_tokens", "max_tokens"):
        value = body.get(name)
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise InvalidRequest(f"'{name}' must be a positive integer.", param=name)
        return int(value)
    return None
