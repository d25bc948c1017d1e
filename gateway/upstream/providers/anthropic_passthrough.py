"""Anthropic Messages in, Anthropic deployment out: the client's body passed through, not translated.

A ``/v1/messages`` request routed to a deployment with ``provider: anthropic`` is sent as the client wrote it
(``thinking``, ``cache_control``, ``citations``, document blocks and all), with only ``model`` replaced by the
deployment's ``upstream_model``, to ``{base_url}/v1/messages`` with the deployment's key in ``x-api-key`` and the
client's ``anthropic-version`` and ``anthropic-beta`` headers. The answer comes back as Anthropic wrote it, too;
the edge renames ``model`` to the catalog name and sends it on. litellm is not involved.

A stream's events come out as envelopes ``{"event": name, "data": event}`` that also carry what the request
record counts, in the fields it reads on OpenAI chunks: ``usage`` (``prompt_tokens``/``completion_tokens`` from
``message_start`` and, final, from ``message_delta``, cache reads and writes included in the prompt) and, for a
text, thinking or tool-input delta, ``choices[0].delta.content`` with its text, so the output of a stream the client
leaves is estimated as for any other. An ``error`` event raises, like an error chunk of an OpenAI stream.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import AsyncIterator
from typing import Any

import orjson

from gateway.errors import UpstreamBadResponse, UpstreamError, UpstreamTimeout, UpstreamUnavailable
from gateway.request import Native
from gateway.upstream.providers import http1
from gateway.upstream.providers.base import Json, Target
from gateway.upstream.providers.openai_compat import DataLines, LineTooLong
from gateway.upstream.providers.upstream_errors import redact, status_error

API_VERSION = "2023-06-01"
PROVIDER = "anthropic"  # the deployments' provider kind that speaks Anthropic's Messages API
_CONNECT_TIMEOUT = 5.0
_DELTA_TEXT = ("text", "thinking", "partial_json")
_TRANSPORT_ERRORS = (http1.HttpError, OSError, LineTooLong)
log = logging.getLogger("gateway.upstream")


def speaks(provider: str, native: Native | None) -> bool:
    """Whether a deployment of this provider kind takes the client's own body."""
    return native is not None and native.api == "anthropic" and provider == PROVIDER


class AnthropicPassthrough:
    def __init__(self, *, max_connections: int = 256) -> None:
        self._pool = http1.Pool(max_connections=max_connections)

    async def aclose(self) -> None:
        await self._pool.aclose()

    async def complete(self, target: Target, native: Native) -> Json:
        post = _post(target.base_url or "", target.api_key, native.headers, False)
        try:
            status, content, retry_after = await self._pool.fetch(
                post, _body(native, target), timeout=target.timeout_seconds, connect_timeout=_connect(target)
            )
        except _TRANSPORT_ERRORS as exc:
            raise _transport_error(target, exc) from None
        if status != 200:
            raise status_error(target.deployment, status, content, target.api_key, retry_after)
        try:
            answer = orjson.loads(content)
        except orjson.JSONDecodeError:
            answer = None
        if not isinstance(answer, dict) or answer.get("type") != "message":
            raise UpstreamBadResponse(f"deployment {target.deployment!r} answered with something other than a message")
        return answer

    async def stream(self, target: Target, native: Native) -> AsyncIterator[Json]:
        post = _post(target.base_url or "", target.api_key, native.headers, True)
        try:
            response = await self._pool.stream(
                post, _body(native, target), read_timeout=target.timeout_seconds, connect_timeout=_connect(target)
            )
        except _TRANSPORT_ERRORS as exc:
            raise _transport_error(target, exc) from None
        finished = False
        try:
            if response.status != 200:
                content = await response.read()
                finished = True
                raise status_error(target.deployment, response.status, content, target.api_key, response.retry_after)
            counter = _Counter(target)
            lines = DataLines()
            while True:
                piece = await response.read_some()
                for data in lines.feed(piece) if piece else lines.end():
                    envelope = counter.envelope(data)
                    yield envelope
                    if envelope["event"] == "message_stop":
                        finished = True
                        return
                if not piece:
                    raise UpstreamUnavailable(f"deployment {target.deployment!r} closed the stream before message_stop")
        except _TRANSPORT_ERRORS as exc:
            raise _transport_error(target, exc) from None
        finally:
            if finished:
                response.release()
            else:
                response.close()


class _Counter:
    """Reads one stream's events into envelopes, keeping the prompt count of ``message_start``."""

    __slots__ = ("prompt", "target")

    def __init__(self, target: Target) -> None:
        self.target = target
        self.prompt = 0

    def envelope(self, data: bytes) -> Json:
        try:
            event = orjson.loads(data)
        except orjson.JSONDecodeError:
            raise UpstreamBadResponse(f"deployment {self.target.deployment!r} sent an unparseable event") from None
        if not isinstance(event, dict) or not isinstance(event.get("type"), str):
            raise UpstreamBadResponse(f"deployment {self.target.deployment!r} sent an event without a type")
        kind = event["type"]
        out: Json = {"event": kind, "data": event}
        if kind == "content_block_delta":
            delta = event.get("delta") or {}
            text = next((delta[k] for k in _DELTA_TEXT if isinstance(delta.get(k), str)), "")
            out["choices"] = [{"index": 0, "delta": {"content": text}}]
        elif kind == "message_start":
            message = event.get("message")
            usage = message.get("usage") if isinstance(message, dict) else None
            self.prompt = _prompt(usage)
            out |= {"usage": _counts(self.prompt, usage), "choices": [{"index": 0, "delta": {}}]}
        elif kind == "message_delta":
            usage = event.get("usage")
            if isinstance(usage, dict) and "input_tokens" in usage:
                self.prompt = _prompt(usage)
            out["usage"] = _counts(self.prompt, usage)
        elif kind == "error":
            raise _stream_error(self.target, event)
        return out


def counted(message: Json) -> Json:
    """What the request record reads of a whole message, in the OpenAI fields it reads: usage (the prompt with
    its cache reads and writes) and the text."""
    usage = message.get("usage")
    content = message.get("content")
    blocks: list[Any] = content if isinstance(content, list) else []
    text = "".join(b["text"] for b in blocks if isinstance(b, dict) and isinstance(b.get("text"), str))
    return {"usage": _counts(_prompt(usage), usage), "choices": [{"index": 0, "message": {"content": text}}]}


def _prompt(usage: Any) -> int:
    """Anthropic's prompt in all: input_tokens excludes what was read from or written to the cache."""
    if not isinstance(usage, dict):
        return 0
    names = ("input_tokens", "cache_read_input_tokens", "cache_creation_input_tokens")
    return sum(v for v in (usage.get(n) for n in names) if type(v) is int and v > 0)


def _counts(prompt: int, usage: Any) -> Json:
    output = usage.get("output_tokens") if isinstance(usage, dict) else None
    return {"prompt_tokens": prompt, "completion_tokens": output if type(output) is int and output >= 0 else 0}


def _stream_error(target: Target, event: Json) -> UpstreamError:
    found = event.get("error")
    error: Json = found if isinstance(found, dict) else {}
    text = str(error.get("message") or "")
    kind = error.get("type")
    log.warning("deployment %s failed mid-stream (%s): %s", target.deployment, kind, redact(text, target.api_key)[:500])
    return UpstreamUnavailable(f"deployment {target.deployment!r} failed mid-stream ({kind})")


def _body(native: Native, target: Target) -> bytes:
    body = dict(native.body)
    body["model"] = target.upstream_model
    return orjson.dumps(body)


def _connect(target: Target) -> float:
    return min(_CONNECT_TIMEOUT, target.timeout_seconds)


@functools.lru_cache(maxsize=1024)
def _post(base_url: str, api_key: str | None, forwarded: tuple[tuple[str, str], ...], stream: bool) -> http1.Post:
    """The request head per deployment, key and forwarded protocol headers."""
    headers = {
        "User-Agent": "switchyard-gateway",
        "Content-Type": "application/json",
        "Accept": "text/event-stream" if stream else "application/json",
        "anthropic-version": API_VERSION,
    }
    headers |= dict(forwarded)
    if api_key:
        headers["x-api-key"] = api_key
    return http1.Post.to(base_url.rstrip("/") + "/v1/messages", headers)


def _transport_error(target: Target, exc: BaseException) -> UpstreamError:
    if isinstance(exc, TimeoutError):
        return UpstreamTimeout(f"deployment {target.deployment!r} timed out")
    if isinstance(exc, LineTooLong):
        return UpstreamBadResponse(f"deployment {target.deployment!r} sent an event line over the size limit")
    if isinstance(exc, http1.ResponseTooLarge):
        error = UpstreamBadResponse(f"deployment {target.deployment!r} sent an answer over the size limit: {exc}")
        error.retry_same = False
        return error
    return UpstreamUnavailable(f"deployment {target.deployment!r} is unreachable ({type(exc).__name__})")
