"""Direct proxy to OpenAI-compatible upstreams (vLLM, SGLang, Ollama, llama.cpp, TGI, OpenAI itself).

This is the hot path: a lean pooled HTTP/1.1 client (:mod:`gateway.upstream.providers.http1`; aiohttp's client
cost ~76 µs of CPU per request, httpx's pool 35-50% of the gateway's CPU in bench/RESULTS.md), request
heads precomputed per deployment, bodies parsed once with orjson, no translation.
"""

from __future__ import annotations

import functools
import logging
import ssl
from collections.abc import AsyncIterator, Callable, Mapping

import orjson

from gateway.errors import (
    UpstreamBadResponse,
    UpstreamError,
    UpstreamTimeout,
    UpstreamUnavailable,
)
from gateway.policy.policy_set import PolicySet
from gateway.upstream.providers import http1
from gateway.upstream.providers.base import Endpoint, Json, Target
from gateway.upstream.providers.network import Link, ProxyEnv, link_for
from gateway.upstream.providers.upstream_errors import status_error, stream_error

PATHS: dict[str, str] = {"chat": "/chat/completions", "completions": "/completions", "embeddings": "/embeddings"}
_CONNECT_TIMEOUT = 5.0
_LINE_LIMIT = 4 * 1024 * 1024  # the longest stream event line accepted
_DRAIN_SECONDS = 1.0  # after [DONE], how long to wait for the end of the body (to reuse the connection)
_USER_AGENT = "switchyard-gateway"
log = logging.getLogger("gateway.upstream")
OnLimit = Callable[[str, str], None]  # (deployment, limit) when an upstream hit one of the client's limits


class _LineTooLong(Exception):
    pass


_TRANSPORT_ERRORS = (http1.HttpError, OSError, _LineTooLong)  # OSError includes TimeoutError


class OpenAICompatibleProvider:
    def __init__(
        self,
        *,
        max_connections: int = 512,
        ssl_context: ssl.SSLContext | None = None,
        env: Mapping[str, str] | None = None,
        on_limit: OnLimit | None = None,
    ) -> None:
        """``ssl_context`` replaces the default trust for https deployments without ``tls:`` (tests trust their
        own CA); ``env`` is where the proxy variables are read (none: no proxy unless a deployment names one);
        ``on_limit`` hears of each answer refused for a size limit or a stream's read timeout (for metrics)."""
        self._pool = http1.Pool(max_connections=max_connections, ssl_context=ssl_context)
        self._proxies = ProxyEnv.read(env or {})
        self._links: dict[str, Link] = {}
        self._on_limit = on_limit

    def configure(self, policy: PolicySet) -> None:
        """How each deployment of ``policy`` is reached (proxy, TLS); run at start and at each reload."""
        self._links = {
            dep.id: link_for(dep.spec.proxy, dep.spec.tls, dep.spec.base_url or "", self._proxies)
            for dep in policy.deployments.values()
            if dep.spec.base_url
        }
        for dep_id, link in self._links.items():
            if link.proxy is not None:
                log.info("deployment %s is reached through the proxy %s", dep_id, link.proxy)

    def _link(self, target: Target) -> Link:
        link = self._links.get(target.deployment)
        if link is None:  # not in the policy this provider was configured with (a direct caller, a test)
            link = link_for(None, None, target.base_url or "", self._proxies)
        return link

    async def aclose(self) -> None:
        await self._pool.aclose()

    async def complete(self, endpoint: Endpoint, target: Target, body: Json) -> Json:
        try:
            post = _post(target.base_url or "", endpoint, target.api_key, False, self._link(target))
            if target.traceparent is not None:
                post = post.with_header("traceparent", target.traceparent)
            timeout = target.timeout_seconds
            connect = min(_CONNECT_TIMEOUT, timeout)
            status, content, retry_after = await self._pool.fetch(
                post, orjson.dumps(body), timeout=timeout, connect_timeout=connect
            )
        except _TRANSPORT_ERRORS as exc:
            raise self._transport_error(target, exc, streaming=False) from None
        if status != 200:
            raise _status_error(target, status, content, retry_after)
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
                raise _status_error(target, response.status, content, response.retry_after)
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
            raise self._transport_error(target, exc, streaming=True) from None
        finally:
            if finished:
                response.release()
            else:
                response.close()

    async def _open(self, endpoint: Endpoint, target: Target, body: Json) -> http1.Response:
        try:
            post = _post(target.base_url or "", endpoint, target.api_key, True, self._link(target))
            if target.traceparent is not None:
                post = post.with_header("traceparent", target.traceparent)
            timeout = target.timeout_seconds
            connect = min(_CONNECT_TIMEOUT, timeout)
            return await self._pool.stream(post, orjson.dumps(body), read_timeout=timeout, connect_timeout=connect)
        except _TRANSPORT_ERRORS as exc:
            raise self._transport_error(target, exc, streaming=False) from None

    async def get(self, target: Target, url: str) -> tuple[int, bytes]:
        """``GET url`` the way ``target``'s deployment is reached (its proxy, its TLS), within its timeout.

        For health checks and the model list; raises the same :class:`UpstreamError` as a call."""
        link = self._link(target)
        headers = {"User-Agent": _USER_AGENT, "Accept": "application/json"}
        if target.api_key:
            headers["Authorization"] = f"Bearer {target.api_key}"
        try:
            request = http1.Post.to(url, headers, proxy=link.proxy, tls=link.tls, method="GET")
            timeout = target.timeout_seconds
            connect = min(_CONNECT_TIMEOUT, timeout)
            answer = await self._pool.fetch(request, b"", timeout=timeout, connect_timeout=connect)
        except _TRANSPORT_ERRORS as exc:
            raise self._transport_error(target, exc, streaming=False) from None
        return answer.status, answer.body

    def _transport_error(self, target: Target, exc: BaseException, *, streaming: bool) -> UpstreamError:
        limit = _limit_hit(exc, streaming)
        if limit is not None and self._on_limit is not None:
            self._on_limit(target.deployment, limit)
        return _transport_error(target, exc, streaming)


@functools.lru_cache(maxsize=1024)
def _post(base_url: str, endpoint: Endpoint, api_key: str | None, stream: bool, link: Link) -> http1.Post:
    """The request head, built once per deployment and endpoint."""
    headers = {
        "User-Agent": _USER_AGENT,
        "Content-Type": "application/json",
        "Accept": "text/event-stream" if stream else "application/json",
    }
    if api_key:
        headers["Authorization"] = f"Bearer {api_key}"
    return http1.Post.to(base_url.rstrip("/") + PATHS[endpoint], headers, proxy=link.proxy, tls=link.tls)


def _status_error(target: Target, status: int, content: bytes, retry_after: float | None) -> UpstreamError:
    if status == 407:  # from a proxy on the way (absolute-form requests), not from the deployment
        return UpstreamUnavailable(
            f"deployment {target.deployment!r}: the proxy refused the request: 407 Proxy Authentication Required"
        )
    return status_error(target.deployment, status, content, target.api_key, retry_after)


def _limit_hit(exc: BaseException, streaming: bool) -> str | None:
    """Which of the client's limits the upstream ran into, if any (a metrics label)."""
    if isinstance(exc, http1.ResponseTooLarge):
        return exc.limit
    if isinstance(exc, _LineTooLong):
        return "stream_line_bytes"
    if streaming and isinstance(exc, TimeoutError):
        return "stream_read_timeout"
    return None


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


DataLines, LineTooLong = _DataLines, _LineTooLong  # also the line reader of the Anthropic passthrough's streams


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


def _transport_error(target: Target, exc: BaseException, streaming: bool) -> UpstreamError:
    name = target.deployment
    if isinstance(exc, TimeoutError):
        if streaming:
            return UpstreamTimeout(f"deployment {name!r} sent nothing for {target.timeout_seconds:g} s mid-stream")
        return UpstreamTimeout(f"deployment {name!r} timed out")
    if isinstance(exc, _LineTooLong):
        return UpstreamBadResponse(f"deployment {name!r} sent a stream line over {_LINE_LIMIT} bytes")
    if isinstance(exc, http1.ResponseTooLarge):  # not worth asking the same deployment again
        error: UpstreamError = UpstreamBadResponse(f"deployment {name!r} sent an answer over the size limit: {exc}")
        error.retry_same = False
        return error
    if isinstance(exc, http1.ContentError):
        return UpstreamBadResponse(f"deployment {name!r} sent a body that cannot be decoded: {exc}")
    if isinstance(exc, http1.ProxyError):
        return UpstreamUnavailable(f"deployment {name!r} is unreachable: {exc}")
    if isinstance(exc, ssl.SSLError):  # certificate not trusted, client certificate refused, ...
        error = UpstreamUnavailable(f"deployment {name!r} is unreachable: TLS failed ({_tls_reason(exc)})")
        error.retry_same = False
        return error
    return UpstreamUnavailable(f"deployment {name!r} is unreachable ({type(exc).__name__})")


def _tls_reason(exc: ssl.SSLError) -> str:
    if isinstance(exc, ssl.SSLCertVerificationError) and exc.verify_message:
        return f"certificate verify failed: {exc.verify_message}"
    return str(exc.reason or exc.strerror or type(exc).__name__).replace("_", " ").lower()
