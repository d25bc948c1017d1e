"""Direct proxy to OpenAI-compatible upstreams (vLLM, SGLang, Ollama, llama.cpp, TGI, OpenAI itself).

This is the hot path: a lean pooled HTTP/1.1 client (:mod:`gateway.upstream.providers.http1`; aiohttp's client
cost ~76 µs of CPU per request, httpx's pool 35-50% of the gateway's CPU in bench/RESULTS.md), request
heads precomputed per deployment, bodies parsed once with orjson, no translation.
"""

from __future__ import annotations

import functools
import ssl
from collections.abc import AsyncIterator

import orjson

from gateway.errors import (
    UpstreamBadResponse,
    UpstreamError,
    UpstreamTimeout,
    UpstreamUnavailable,
)
from gateway.upstream.providers import http1
from gateway.upstream.providers.base import Endpoint, Json, Target
from gateway.upstream.providers.upstream_errors import status_error, stream_error

PATHS: dict[str, str] = {"chat": "/chat/completions", "completions": "/completions", "embeddings": "/embeddings"}
_CONNECT_TIMEOUT = 5.0
_LINE_LIMIT = 4 * 1024 * 1024  # the longest stream event line accepted
_DRAIN_SECONDS = 1.0  # after [DONE], how long to wait for the end of the body (to reuse the connection)
_USER_AGENT = "switchyard-gateway"


class _LineTooLong(Exception):
    pass


_TRANSPORT_ERRORS = (http1.HttpError, OSError, _LineTooLong)  # OSError includes TimeoutError


class OpenAICompatibleProvider:
    def __init__(self, *, max_connections: int = 512, ssl_context: ssl.SSLContext | None = None) -> None:
        """``ssl_context`` replaces ``ssl.create_default_context()`` for https upstreams (tests trust their own CA)."""
        self._pool = http1.Pool(max_connections=max_connections, ssl_context=ssl_context)

    async def aclose(self) -> None:
        await self._pool.aclose()

    async def complete(self, endpoint: Endpoint, target: Target, body: Json) -> Json:
        try:
            post = _post(target.base_url or "", endpoint, target.api_key, False)
            if target.traceparent is not None:
                post = post.with_header("traceparent", target.traceparent)
            timeout = target.timeout_seconds
            connect = min(_CONNECT_TIMEOUT, timeout)
            status, content, retry_after = await self._pool.fetch(
                post, orjson.dumps(body), timeout=timeout, connect_timeout=connect
            )
        except _TRANSPORT_ERRORS as exc:
            raise _transport_error(target, exc) from None
        if status != 200:
            raise status_error(target.deployment, status, content, target.api_key, retry_after)
        try:
            parsed = orjson.loads(content)
        except orjson.JSONDecodeError:
            raise UpstreamBadResponse(f"deployment {target.deployment!r} answered with invalid JSON") from None
        if not isinstance(parsed, dict):
            raise UpstreamBadResponse(f"deployment {target.deployment!r} answered with a non-object JSON body")
        return parsed

    async def stream(self, endpoint: Endpoint, target: Target, body: Json) -> AsyncIterator[Json]:
        response = await self._open(endpoint, target, body)
        finished = False  # read to the end: the connection may be reused; otherwise it is closed
        try:
            if response.status != 200:
                content = await response.read()
                finished = True
                raise status_error(target.deployment, response.status, content, target.api_key, response.retry_after)
            lines = _DataLines()
            while True:
                piece = await response.read_some()  # b"" at the end of the body
                for data in lines.feed(piece) if piece else lines.end():
                    if data == b"[DONE]":
                        finished = True
                        await response.drain(min(_DRAIN_SECONDS, target.timeout_seconds))
                        return
                    chunk = _chunk(target, data)
                    if chunk is not None:
                        yield chunk
                if not piece:
                    raise UpstreamUnavailable(f"deployment {target.deployment!r} closed the stream before [DONE]")
        except _TRANSPORT_ERRORS as exc:
            raise _transport_error(target, exc) from None
        finally:
            if finished:
                response.release()
            else:
                response.close()

    async def _open(self, endpoint: Endpoint, target: Target, body: Json) -> http1.Response:
        try:
            post = _post(target.base_url or "", endpoint, target.api_key, True)
            if target.traceparent is not None:
                post = post.with_header("traceparent", target.traceparent)
            timeout = target.timeout_seconds
            connect = min(_CONNECT_TIMEOUT, timeout)
            return await self._pool.stream(post, orjson.dumps(body), read_timeout=timeout, connect_timeout=connect)
        except _TRANSPORT_ERRORS as exc:
            raise _transport_error(target, exc) from None


@functools.lru_cache(maxsize=1024)
def _post(base_url: str, endpoint: Endpoint, api_key: str | None, stream: bool) -> http1.Post:
    """The request head, built once per deployment and endpoint."""
    headers = {
        "User-Agent": _USER_AGENT,
        "Content-Type": "application/json",
        "Accept": "text/event-stream" if stream else "application/json",
    }
    if api_key:
        headers["Authorization"] = f"Bearer {api_key}"
    return http1.Post.to(base_url.rstrip("/") + PATHS[endpoint], headers)


class _DataLines:
    """Splits a stream body into lines, however it was cut, and keeps the ``data:`` payloads."""

    __slots__ = ("_pending", "_size")

    def __init__(self) -> None:
        self._pending: list[bytes] = []  # the start of a line not yet ended
        self._size = 0

    def feed(self, piece: bytes) -> list[bytes]:
        one_event = len(piece) <= _LINE_LIMIT and piece.find(b"\n") == len(piece) - 2 and piece.endswith(b"\n\n")
        if one_event and not self._pending:
            return [piece[5:].strip()] if piece.startswith(b"data:") else []  # the usual piece: one whole event
        lines = piece.split(b"\n")
        rest = lines.pop()
        if self._pending and lines:
            self._pending.append(lines[0])
            lines[0] = b"".join(self._pending)
            self._pending, self._size = [], 0
        if rest:
            self._pending.append(rest)
            self._size += len(rest)
            if self._size > _LINE_LIMIT:
                raise _LineTooLong
        if len(piece) + len(lines[0] if lines else b"") > _LINE_LIMIT and any(len(x) > _LINE_LIMIT for x in lines):
            raise _LineTooLong
        return [line[5:].strip() for line in lines if line.startswith(b"data:")]

    def end(self) -> list[bytes]:
        """The payload of a last line that no line break ended."""
        line = b"".join(self._pending)
        self._pending, self._size = [], 0
        return [line[5:].strip()] if line.startswith(b"data:") else []


def _chunk(target: Target, data: bytes) -> Json | None:
    try:
        chunk = orjson.loads(data)
    except orjson.JSONDecodeError:
        raise UpstreamBadResponse(f"deployment {target.deployment!r} sent an unparseable stream event") from None
    if not isinstance(chunk, dict):
        return None
    if "error" in chunk:
        raise stream_error(target.deployment, chunk, target.api_key)
    return chunk


def _transport_error(target: Target, exc: BaseException) -> UpstreamError:
    if isinstance(exc, TimeoutError):
        return UpstreamTimeout(f"deployment {target.deployment!r} timed out")
    if isinstance(exc, _LineTooLong):
        return UpstreamBadResponse(f"deployment {target.deployment!r} sent a stream line over {_LINE_LIMIT} bytes")
    if isinstance(exc, http1.ResponseTooLarge):  # not worth asking the same deployment again
        error = UpstreamBadResponse(f"deployment {target.deployment!r} sent an answer over the size limit: {exc}")
        error.retry_same = False
        return error
    if isinstance(exc, http1.ContentError):
        return UpstreamBadResponse(f"deployment {target.deployment!r} sent a body that cannot be decoded: {exc}")
    return UpstreamUnavailable(f"deployment {target.deployment!r} is unreachable ({type(exc).__name__})")
