"""What the client sees of an upstream answer: the catalog model name, usage, schema-complete chunks."""

from __future__ import annotations

from typing import Any

from gateway.request import ChatRequest
from gateway.upstream.providers.base import Json

CHUNK_FIELDS = frozenset(
    {"id", "object", "created", "model", "system_fingerprint", "service_tier", "choices", "usage", "obfuscation"}
)  # the fields of OpenAI's chat.completion.chunk and text_completion; anything else is the upstream's own
TEXT_FIELDS = frozenset({"content", "reasoning_content", "reasoning", "refusal"})  # generated text in a delta


def upstream_body(request: ChatRequest, upstream_model: str) -> Json:
    """The client's body as the upstream should get it. Streams always ask for usage, for accounting."""
    body = dict(request.body)
    body["model"] = upstream_model
    if request.stream:
        options = dict(body.get("stream_options") or {})
        options["include_usage"] = True
        body["stream_options"] = options
    return body


def response(body: Json, model_id: str) -> Json:
    body["model"] = model_id
    return body


def chunk(body: Json, model_id: str, include_usage: bool) -> Json | None:
    """Fix one stream chunk for the client, or None to drop it (a usage chunk the client did not ask for;
    its :func:`extras` belong on the client's last chunk, see ``gateway.sse.OpenAIEvents``)."""
    choices = body.get("choices")
    if not include_usage:
        if not choices and body.get("usage") is not None:
            return None
        body.pop("usage", None)
    elif "usage" not in body:
        body["usage"] = None
    body["model"] = model_id
    if isinstance(choices, list):
        for choice in choices:
            if isinstance(choice, dict) and "finish_reason" not in choice:
                choice["finish_reason"] = None
    return body


def extras(body: Json) -> Json:
    """The fields of a chunk that OpenAI's chunk schema does not have, such as llama.cpp's ``timings``."""
    return {name: value for name, value in body.items() if name not in CHUNK_FIELDS}


def finished(body: Json) -> bool:
    """Whether a (fixed) chunk ends one of its choices: it carries a finish_reason."""
    for choice in body.get("choices") or ():  # noqa: SIM110 - any() over a generator costs twice this per chunk
        if type(choice) is dict and choice.get("finish_reason"):
            return True
    return False


def usage_of(body: Json) -> tuple[int, int] | None:
    """The upstream's own (prompt, completion) token counts, or None when it gave none that can be trusted.

    Never raises: this runs on every stream chunk, where an exception would break the client's stream, and
    the answer itself is still good. A malformed usage (see :func:`usage_problem`) counts as unknown, so the
    request is settled with the gateway's estimate instead (``RequestRecord.usage_estimated``)."""
    usage: Any = body.get("usage")
    if not isinstance(usage, dict) or usage_problem(usage) is not None:
        return None
    prompt = _first(usage, "prompt_tokens", "input_tokens")
    return prompt, _first(usage, "completion_tokens", "output_tokens")


def usage_problem(usage: Any, *, require_prompt: bool = True) -> str | None:
    """What is wrong with an upstream's ``usage``, or None when it is usable: an object whose counts are
    non-negative integers (not strings, floats, booleans or objects) and, with ``require_prompt``, whose
    prompt count is there. Without it, the check a whole answer must pass (gateway.upstream.caller)."""
    if not isinstance(usage, dict):
        return f"usage is {type(usage).__name__}, not an object"
    if require_prompt and "prompt_tokens" not in usage and "input_tokens" not in usage:
        return "usage has no prompt_tokens"
    for name in ("prompt_tokens", "input_tokens", "completion_tokens", "output_tokens"):
        value = usage.get(name)
        if value is not None and (type(value) is not int or value < 0):
            return f"usage.{name} is {value!r}, not a non-negative integer"
    return None


def _first(usage: Json, *names: str) -> int:
    for name in names:
        value = usage.get(name)
        if value is not None:
            return int(value)
    return 0


def output_chars(body: Json) -> int:
    """Characters the upstream generated in an answer or a stream chunk (every choice): content, reasoning
    and tool-call arguments, or a completion's text. Used to estimate output tokens when no usage comes.

    This runs on every stream chunk: the usual one (one choice, a delta of content only) takes a few
    lookups; anything else walks each choice's few items once."""
    choices = body.get("choices")
    if type(choices) is not list:
        return 0
    if len(choices) == 1 and type(choice := choices[0]) is dict:
        delta = choice.get("delta")
        if type(delta) is dict and len(delta) == 1 and type(content := delta.get("content")) is str:
            return len(content)
    return _choice_chars(choices)


def _choice_chars(choices: list[Any]) -> int:
    chars = 0
    for choice in choices:
        if type(choice) is not dict:
            continue
        part = choice.get("delta") or choice.get("message")
        if type(part) is not dict:
            text = choice.get("text")
            chars += len(text) if type(text) is str else 0
            continue
        for name, value in part.items():
            if type(value) is str:
                chars += len(value) if name in TEXT_FIELDS else 0
            elif name == "tool_calls" and type(value) is list:
                chars += _argument_chars(value)
    return chars


def _argument_chars(calls: list[Any]) -> int:
    chars = 0
    for call in calls:
        function = call.get("function") if type(call) is dict else None
        arguments = function.get("arguments") if type(function) is dict else None
        chars += len(arguments) if type(arguments) is str else 0
    return chars


def text_of(body: Json) -> str:
    """The answer text of a response or a stream chunk (choice 0), for the audit log."""
    choices = body.get("choices")
    if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
        return ""
    choice = choices[0]
    part = choice.get("message") or choice.get("delta") or {}
    text = part.get("content") if isinstance(part, dict) else None
    if text is None:
        text = choice.get("text")
    return text if isinstance(text, str) else ""
