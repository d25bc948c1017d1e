"""Legacy text completions and embeddings, OpenAI wire."""

from __future__ import annotations

import base64
import hashlib
import math
import struct
from typing import Any

from gateway.standin.canned import answer_text, finish, new_id, prompt_tokens, tokens
from gateway.standin.gate import Json, WireError
from gateway.standin.openai_chat import FINISH_REASON, MAX_CHOICES, Answer
from gateway.standin.params import int_param, model_of, stop_list

DEFAULT_DIMENSIONS = 16
MAX_DIMENSIONS = 8192
MAX_WORD = 2**32 - 1


def answer_completion(body: Json) -> Answer:
    model = model_of(body)
    prompts = [_prompt_text(p) for p in _inputs(body, "prompt")]
    count = int_param(body, "n", high=MAX_CHOICES) or 1
    stops = stop_list(body.get("stop"), "stop")
    limit = int_param(body, "max_tokens")
    replies = [finish(answer_text(model, p), stops=stops, limit=limit) for p in prompts for _ in range(count)]
    return Answer(model, replies, prompt_tokens(prompts), id=new_id("cmpl-"))


def completion_response(answer: Answer) -> Json:
    return {
        "id": answer.id,
        "object": "text_completion",
        "created": answer.created,
        "model": answer.model,
        "choices": [
            {"index": i, "text": reply.text, "logprobs": None, "finish_reason": FINISH_REASON[reply.ending]}
            for i, reply in enumerate(answer.replies)
        ],
        "usage": answer.usage(),
    }


def embeddings_response(body: Json) -> Json:
    model = model_of(body)
    inputs = _inputs(body, "input")
    dimensions = int_param(body, "dimensions", high=MAX_DIMENSIONS) or DEFAULT_DIMENSIONS
    as_base64 = _encoding(body) == "base64"
    data = [
        {"object": "embedding", "index": i, "embedding": _encoded(vector(item, dimensions), as_base64)}
        for i, item in enumerate(inputs)
    ]
    used = sum(tokens(item) if isinstance(item, str) else len(item) for item in inputs)
    return {"object": "list", "data": data, "model": model, "usage": {"prompt_tokens": used, "total_tokens": used}}


def vector(item: str | list[int], dimensions: int) -> list[float]:
    """A deterministic unit vector derived from a hash of the input (float32 precision)."""
    key = item if isinstance(item, str) else ",".join(map(str, item))
    raw = struct.unpack(f"<{dimensions}I", hashlib.shake_256(key.encode()).digest(4 * dimensions))
    values = [2 * word / MAX_WORD - 1 for word in raw]
    norm = math.sqrt(sum(v * v for v in values)) or 1.0
    packed = struct.pack(f"<{dimensions}f", *(v / norm for v in values))
    return list(struct.unpack(f"<{dimensions}f", packed))


def _encoded(values: list[float], as_base64: bool) -> list[float] | str:
    if not as_base64:
        return values
    return base64.b64encode(struct.pack(f"<{len(values)}f", *values)).decode()


def _encoding(body: Json) -> str:
    encoding = body.get("encoding_format") or "float"
    if encoding not in ("float", "base64"):
        raise WireError(400, "encoding_format must be 'float' or 'base64'", param="encoding_format")
    return str(encoding)


def _inputs(body: Json, name: str) -> list[str | list[int]]:
    """A string, list of strings, token array, or list of token arrays, as a list of items."""
    value = body.get(name)
    if isinstance(value, str) or _is_tokens(value):
        value = [value]
    if not isinstance(value, list) or not value or not all(isinstance(v, str) or _is_tokens(v) for v in value):
        raise WireError(400, f"{name} must be a string, a list of strings or token arrays", param=name)
    if any(len(v) == 0 for v in value):
        raise WireError(400, f"{name} must not contain empty strings or arrays", param=name)
    return value


def _is_tokens(value: Any) -> bool:
    return isinstance(value, list) and bool(value) and all(type(v) is int for v in value)


def _prompt_text(item: str | list[int]) -> str:
    return item if isinstance(item, str) else f"<{len(item)} tokens>"
