"""An upstream's error answer -> the gateway error the client gets, without the upstream's words.

The client is told the deployment and the status, never the upstream's text: providers echo parts
of the request in their messages (one echoed an ``authorization=Bearer sk-...`` string it had been
sent), and a tenant must not read another party's configuration. The text is logged server-side,
redacted, with the request id, so ops can still see why.

Some answers are recognised by their body, because inference servers report input errors in ways a
status code alone does not say (listed so that ops can check them against their servers):

context too long, answered 400 ``context_length_exceeded`` with the numbers when the body has them:
    llama.cpp   400  error.type "exceed_context_size_error", error.n_prompt_tokens, error.n_ctx
    OpenAI      400  error.code "context_length_exceeded"
    vLLM        400  "This model's maximum context length is N tokens. However, you requested M tokens ..."
    SGLang      400  "The input (M tokens) is longer than the model's context length (N tokens)."
    TGI         422  "Input validation error: `inputs` tokens + `max_new_tokens` must be <= N. Given: M ..."
input errors reported as server errors, answered 400 ``upstream_rejected``, not retried and not
counted against the deployment's circuit breaker (the deployment is healthy; the request is not):
    llama.cpp   500  "input (N tokens) is too large to process. increase the physical batch size ..."
    llama.cpp   500  "... exceeds the available context size ..." (older builds, without the 400 type)
    vLLM / TGI  500  "... maximum context length ..." / "Input validation error: ..."
Every other status keeps its meaning: 429 rate limited, 408/504 timeout, 401/403/404 and other 5xx
unavailable (the deployment is misconfigured or down: fall back), other 4xx rejected, with the upstream's
``error.param`` kept when it is a field path (the one part of its error a client needs to fix the request).
"""

from __future__ import annotations

import logging
import re
from typing import Any, Final

import orjson

from gateway.errors import (
    ContextLengthExceeded,
    UpstreamError,
    UpstreamRateLimited,
    UpstreamRejected,
    UpstreamTimeout,
    UpstreamUnavailable,
)

log = logging.getLogger("gateway.upstream")
_LOGGED_CHARS: Final = 500
_PROMPT_FIRST, _CONTEXT_FIRST = True, False
_CONTEXT_NUMBERS: Final = (  # a phrase with both numbers, and which comes first
    (re.compile(r"maximum context length is (\d+) tokens.*?(?:requested|resulted in) (\d+) tokens", re.I | re.S),
     _CONTEXT_FIRST),
    (re.compile(r"input \((\d+) tokens\) is longer than the model's context length \((\d+) tokens\)", re.I),
     _PROMPT_FIRST),
    (re.compile(r"must be <= (\d+)\. Given: (\d+) `inputs` tokens", re.I), _CONTEXT_FIRST),
    (re.compile(r"request \((\d+) tokens\) exceeds the available context size \((\d+) tokens\)", re.I),
     _PROMPT_FIRST),
)  # fmt: skip
_CONTEXT_WORDS: Final = re.compile(
    r"context[ _]length[ _]exceeded|exceeds the (?:available )?context (?:size|length)|maximum context length", re.I
)
_INPUT_AS_SERVER_ERROR: Final = re.compile(
    r"is too large to process|exceeds the available context size|maximum context length|input validation error",
    re.I,
)
_PARAM: Final = re.compile(r"[A-Za-z0-9_.\[\]-]{1,128}")
_SECRETS: Final = (
    re.compile(r"(bearer\s+)[^\s\"',;]+", re.I),
    re.compile(r"\b(sk-|sk_|key-)[A-Za-z0-9_\-]{6,}"),
    re.compile(
        r"((?:api[_-]?key|authorization|x-api-key|password|secret|token)[\"']?\s*[:=]\s*[\"']?)[^\s\"',;&]+", re.I
    ),
)


def status_error(
    deployment: str, status: int, content: bytes, api_key: str | None = None, retry_after: float | None = None
) -> UpstreamError:
    """The error for an upstream answer with ``status`` (not 200) and body ``content``; ``retry_after`` is
    the answer's Retry-After in seconds, kept on a 429 or 503 so that the caller can honour it."""
    body = _json(content)
    text = error_text(body) or content[:_LOGGED_CHARS].decode("utf-8", "replace")
    log.warning("deployment %s answered %s: %s", deployment, status, redact(text, api_key)[:_LOGGED_CHARS])
    where = f"deployment {deployment!r} answered {status}"
    overflow = context_overflow(status, body, text)
    if overflow is not None:
        return ContextLengthExceeded(_overflow_message(deployment, *overflow))
    if status == 429:
        return UpstreamRateLimited(where, retry_after=retry_after)
    if status in (408, 504):
        return UpstreamTimeout(where)
    if status >= 500 and _INPUT_AS_SERVER_ERROR.search(text):
        return UpstreamRejected(f"{where}: the deployment could not process this input")
    if status >= 500 or status in (401, 403, 404):
        return UpstreamUnavailable(where, retry_after=retry_after if status == 503 else None)
    return UpstreamRejected(f"{where}: the deployment refused the request", param=error_param(body))


def stream_error(deployment: str, chunk: dict[str, Any], api_key: str | None = None) -> UpstreamError:
    """The error for an ``{"error": ...}`` event inside a stream that had answered 200."""
    text = error_text(chunk)
    log.warning("deployment %s failed mid-stream: %s", deployment, redact(text, api_key)[:_LOGGED_CHARS])
    overflow = context_overflow(400, chunk, text)
    if overflow is not None:
        return ContextLengthExceeded(_overflow_message(deployment, *overflow))
    return UpstreamUnavailable(f"deployment {deployment!r} failed mid-stream")


def context_overflow(status: int, body: Any, text: str) -> tuple[int | None, int | None] | None:
    """(prompt tokens, context size), each None when not given, if the answer says the prompt is over the
    context size; else None."""
    if status not in (400, 413, 422, 500):
        return None
    error = body.get("error") if isinstance(body, dict) else None
    if isinstance(error, dict) and error.get("type") == "exceed_context_size_error":
        return _int(error.get("n_prompt_tokens")), _int(error.get("n_ctx"))
    for phrase, prompt_first in _CONTEXT_NUMBERS:
        match = phrase.search(text)
        if match is not None:
            first, second = (int(group) for group in match.groups())
            return (first, second) if prompt_first else (second, first)
    if (isinstance(error, dict) and error.get("code") == "context_length_exceeded") or _CONTEXT_WORDS.search(text):
        return None, None
    return None


def error_text(body: Any) -> str:
    """The message of an OpenAI-shaped (or vLLM ``{"object": "error"}``) error body, else ""."""
    if not isinstance(body, dict):
        return ""
    error = body.get("error")
    if isinstance(error, dict) and isinstance(error.get("message"), str):
        return str(error["message"])
    if isinstance(error, str):
        return error
    message = body.get("message")
    return message if isinstance(message, str) else ""


def error_param(body: Any) -> str | None:
    """The field an upstream's 400 names (OpenAI's ``error.param``), kept for the client: a field path, so
    only a short one of name characters (``messages[0].content``), never free text."""
    error = body.get("error") if isinstance(body, dict) else None
    param = error.get("param") if isinstance(error, dict) else None
    return param if isinstance(param, str) and _PARAM.fullmatch(param) else None


def redact(text: str, api_key: str | None = None) -> str:
    """``text`` without credentials: bearer tokens, ``sk-...`` keys, ``api_key=...`` values, the deployment's key."""
    if api_key:
        text = text.replace(api_key, "***")
    for pattern in _SECRETS:
        text = pattern.sub(lambda m: (m.group(1) if m.groups() else "") + "***", text)
    return text


def _overflow_message(deployment: str, prompt: int | None, context: int | None) -> str:
    if prompt is not None and context is not None:
        return (
            f"The prompt is {prompt} tokens; deployment {deployment!r} has a context size of {context} tokens. "
            "Shorten the messages or lower max_tokens."
        )
    return f"The prompt is longer than the context size of deployment {deployment!r}. Shorten the messages."


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _json(content: bytes) -> Any:
    try:
        return orjson.loads(content)
    except orjson.JSONDecodeError:
        return None
