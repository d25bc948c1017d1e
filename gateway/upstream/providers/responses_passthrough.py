"""Responses API in, Responses deployment out: the client's body passed through, not translated twice.

A ``/v1/responses`` request routed to a deployment with ``api: responses`` (OpenAI's own API, or any server that
speaks it) is sent as the client wrote it, with ``model`` replaced by the deployment's ``upstream_model``, to
``{base_url}/responses`` with the deployment's key as a Bearer token. The edge has already resolved
``previous_response_id`` into ``input`` (the gateway keeps the chain, so any deployment can continue it); ``store``
is the client's, so a deployment that keeps responses itself (OpenAI) can still resolve the reasoning items a
client sends back. The answer comes back as the deployment wrote it.

A stream's events come out as envelopes ``{"event": type, "data": event}`` that also carry what the request
record counts, in the fields it reads on OpenAI chunks: ``usage`` (``prompt_tokens``/``completion_tokens`` from
the final response's usage) and, for a text or argument delta, ``choices[0].delta.content``. The stream ends
with ``response.completed``, ``response.incomplete`` or ``response.failed``; ``error`` raises, like an error
chunk of an OpenAI stream. Per-deployment proxy and TLS settings are not applied here (as for the Anthropic
passthrough).
"""

from __future__ import annotations

import functools
from collections.abc import AsyncIterator
from typing import Any

import orjson

from gateway.errors import UpstreamBadResponse, UpstreamError, UpstreamTimeout, UpstreamUnavailable
from gateway.request import Native
from gateway.upstream.providers import http1
from gateway.upstream.providers.base import Json, Target
from gateway.upstream.providers.openai_compat import DataLines, LineTooLong
from gateway.upstream.providers.upstream_errors import status_error

API = "responses"  # the deployments' ``api`` that speaks the Responses API
ENDINGS = frozenset({"response.completed", "response.incomplete", "response.failed"})
_DELTAS = frozenset({"response.output_text.delta", "response.function_call_arguments.delta"})
_CONNECT_TIMEOUT = 5.0
_TRANSPORT_ERRORS = (http1.HttpError, OSError, LineTooLong)


def speaks(api: str, native: Native | None) -> bool:
    return native is not None and native.api == API and api == API


class ResponsesPassthrough:
    def __init__(self, *, max_connections: int = 256) -> None:
        self._pool = http1.Pool(max_connections=max_connections)

    async def aclose(self) -> None:
        await self._pool.aclose()

    async def complete(self, target: Target, native: Native) -> Json:
        post = _post(target.base_url or "", target.api_key, False)
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
        if not isinstance(answer, dict) or answer.get("object") != "response":
            raise UpstreamBadResponse(f"deployment {target.deployment!r} answered with something other than a response")
        return answer

    async def stream(self, target: Target, native: Native) -> AsyncIterator[Json]:
        post = _post(target.base_url or "", target.api_key, True)
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
            lines = DataLines()
            while True:
                piece = await response.read_some()
                for data in lines.feed(piece) if piece else lines.end():
                    envelope = _envelope(target, data)
                    yield envelope
                    if envelope["event"] in ENDINGS:
                        finished = True
                        return
                if not piece:
                    raise UpstreamUnavailable(f"deployment {target.deployment!r} closed the stream before it ended")
        except _TRANSPORT_ERRORS as exc:
            raise _transport_error(target, exc) from None
        finally:
            if finished:
                response.release()
            else:
                response.close()


def _envelope(target: Target, data: bytes) -> Json:
    try:
        event = orjson.loads(data)
    except orjson.JSONDecodeError:
        raise UpstreamBadResponse(f"deployment {target.deployment!r} sent an unparseable event") from None
    if not isinstance(event, dict) or not isinstance(event.get("type"), str):
        raise UpstreamBadResponse(f"deployment {target.deployment!r} sent an event without a type")
    kind = event["type"]
    out: Json = {"event": kind, "data": event}
    if kind in _DELTAS and isinstance(event.get("delta"), str):
        out["choices"] = [{"index": 0, "delta": {"content": event["delta"]}}]
    elif kind in ENDINGS:
        response = event.get("response")
        out["usage"] = counts(response.get("usage") if isinstance(response, dict) else None)
    elif kind == "error":
        raise UpstreamUnavailable(f"deployment {target.deployment!r} failed mid-stream ({event.get('code')})")
    return out


def counts(usage: Any) -> Json:
    """A Responses usage in the chat fields the request record reads."""
    usage = usage if isinstance(usage, dict) else {}
    prompt, output = usage.get("input_tokens"), usage.get("output_tokens")
    return {
        "prompt_tokens": prompt if type(prompt) is int and prompt >= 0 else 0,
        "completion_tokens": output if type(output) is int and output >= 0 else 0,
    }


def _body(native: Native, target: Target) -> bytes:
    return orjson.dumps(native.body | {"model": target.upstream_model})


def _connect(target: Target) -> float:
    return min(_CONNECT_TIMEOUT, target.timeout_seconds)


@functools.lru_cache(maxsize=1024)
def _post(base_url: str, api_key: str | None, stream: bool) -> http1.Post:
    headers = {
        "User-Agent": "switchyard-gateway",
        "Content-Type": "application/json",
        "Accept": "text/event-stream" if stream else "application/json",
    }
    if api_key:
        headers["Authorization"] = f"Bearer {api_key}"
    return http1.Post.to(base_url.rstrip("/") + "/responses", headers)


def _transport_error(target: Target, exc: BaseException) -> UpstreamError:
    if isinstance(exc, TimeoutError):
        return UpstreamTimeout(f"deployment {target.deployment!r} timed out")
    if isinstance(exc, LineTooLong | http1.ResponseTooLarge):
        error = UpstreamBadResponse(f"deployment {target.deployment!r} sent an answer over the size limit")
        error.retry_same = False
        return error
    return UpstreamUnavailable(f"deployment {target.deployment!r} is unreachable ({type(exc).__name__})")
