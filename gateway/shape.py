"""What the client sees of an upstream answer: the catalog model name, usage, schema-complete chunks."""

from __future__ import annotations

from typing import Any

from gateway.providers.base import Json
from gateway.request import ChatRequest


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
    """Fix one stream chunk for the client, or None to drop it (a usage chunk the client did not ask for)."""
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


def usage_of(body: Json) -> tuple[int, int]:
    usage: Any = body.get("usage")
    if not isinstance(usage, dict):
        return 0, 0
    prompt = usage.get("prompt_tokens") or usage.get("input_tokens") or 0
    completion = usage.get("completion_tokens") or usage.get("output_tokens") or 0
    return int(prompt), int(completion)


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
