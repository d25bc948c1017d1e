"""Direct proxy to OpenAI-compatible upstreams (vLLM, SGLang, Ollama, llama.cpp, TGI, OpenAI itself).

This is the hot path: one pooled aiohttp session (httpx's connection pool cost 35-50% of the
gateway's CPU under load in bench/RESULTS.md), bodies parsed once with orjson, no translation.
"""

from __future__ import annotations

import functools
from collections.abc import AsyncIterator, Mapping
from types import MappingProxyType
from typing import Any

import aiohttp
import orjson
import yarl

from gateway.errors import (
    UpstreamBadResponse,
    UpstreamError,
    UpstreamRateLimited,
    UpstreamRejected,
    UpstreamTimeout,
    UpstreamUnavailable,
)
from gateway.providers.base import Endpoint, Json, Target

PATHS: dict[str, str] = {"chat": "/chat/completions", "completions": "/completions", "embeddings": "/embeddings"}
_CONNECT_TIMEOUT = 5.0
_LINE_LIMIT = 4 * 1024 * 1024  # the longest stream event line accepted


class OpenAICompatibleProvider:
    def __init__(self, *, max_connections: int = 512) -> None:
        self._max_connections = max_connections
        self._session: aiohttp.ClientSession | None = None  # made in the running loop, on first use

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None:
            connector = aiohttp.TCPConnector(limit=self._max_connections, limit_per_host=0, ttl_dns_cache=300)
            self._session = aiohttp.ClientSession(
                connector=connector, trust_env=False, read_bufsize=_LINE_LIMIT, auto_decompress=True
            )
        return self._session

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()

    async def _post(self, endpoint: Endpoint, target: Target, body: Json, *, stream: bool) -> aiohttp.ClientResponse:
        headers = _headers(target.api_key, stream)
        connect = min(_CONNECT_TIMEOUT, target.timeout_seconds)
        timeout = (
            aiohttp.ClientTimeout(total=None, connect=connect, sock_read=target.timeout_seconds)
            if stream
            else aiohttp.ClientTimeout(total=target.timeout_seconds, connect=connect)
        )
        try:
            url = _url(target.base_url or "", endpoint)
            return await self._client().post(url, data=orjson.dumps(body), headers=headers, timeout=timeout)
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise _transport_error(target, exc) from None

    async def complete(self, endpoint: Endpoint, target: Target, body: Json) -> Json:
        response = await self._post(endpoint, target, body, stream=False)
        try:
            content = await response.read()
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise _transport_error(target, exc) from None
        finally:
            response.release()
        if response.status != 200:
            raise _status_error(target, response.status, content)
        try:
            parsed = orjson.loads(content)
        except orjson.JSONDecodeError:
            raise UpstreamBadResponse(f"deployment {target.deployment!r} answered with invalid JSON") from None
        if not isinstance(parsed, dict):
            raise UpstreamBadResponse(f"deployment {target.deployment!r} answered with a non-object JSON body")
        return parsed

    async def stream(self, endpoint: Endpoint, target: Target, body: Json) -> AsyncIterator[Json]:
        response = await self._post(endpoint, target, body, stream=True)
        try:
            if response.status != 200:
                raise _status_error(target, response.status, await response.read())
            async for chunk in _sse_json(target, response):
                yield chunk
        except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
            raise _transport_error(target, exc) from None
        finally:
            response.release()


@functools.lru_cache(maxsize=1024)
def _url(base_url: str, endpoint: Endpoint) -> yarl.URL:
    """Parsed once per deployment and endpoint (parsing a URL per request showed in the profile)."""
    return yarl.URL(base_url.rstrip("/") + PATHS[endpoint])


@functools.lru_cache(maxsize=1024)
def _headers(api_key: str | None, stream: bool) -> Mapping[str, str]:
    headers = {"content-type": "application/json", "accept": "text/event-stream" if stream else "application/json"}
    if api_key:
        headers["authorization"] = f"Bearer {api_key}"
    return MappingProxyType(headers)


async def _sse_json(target: Target, response: aiohttp.ClientResponse) -> AsyncIterator[Json]:
    done = False
    async for raw in response.content:  # one line at a time; read to the end so the connection is reused
        if done or not raw.startswith(b"data:"):
            continue
        data = raw[5:].strip()
        if data == b"[DONE]":
            done = True
            continue
        try:
            chunk = orjson.loads(data)
        except orjson.JSONDecodeError:
            raise UpstreamBadResponse(f"deployment {target.deployment!r} sent an unparseable stream event") from None
        if isinstance(chunk, dict) and "error" in chunk:
            raise UpstreamUnavailable(f"deployment {target.deployment!r} failed mid-stream: {_error_text(chunk)}")
        if isinstance(chunk, dict):
            yield chunk
    if not done:
        raise UpstreamUnavailable(f"deployment {target.deployment!r} closed the stream before [DONE]")


def _transport_error(target: Target, exc: BaseException) -> UpstreamError:
    if isinstance(exc, TimeoutError):
        return UpstreamTimeout(f"deployment {target.deployment!r} timed out")
    if isinstance(exc, ValueError):
        return UpstreamBadResponse(f"deployment {target.deployment!r} sent a stream line over {_LINE_LIMIT} bytes")
    return UpstreamUnavailable(f"deployment {target.deployment!r} is unreachable ({type(exc).__name__})")


def _status_error(target: Target, status: int, content: bytes) -> UpstreamError:
    detail = _error_text(_maybe_json(content)) or content[:200].decode("utf-8", "replace")
    message = f"deployment {target.deployment!r} answered {status}: {detail}"
    if status == 429:
        return UpstreamRateLimited(message)
    if status in (408, 504):
        return UpstreamTimeout(message)
    if status >= 500 or status in (401, 403, 404):
        return UpstreamUnavailable(message)
    return UpstreamRejected(message)


def _maybe_json(content: bytes) -> Any:
    try:
        return orjson.loads(content)
    except orjson.JSONDecodeError:
        return None


def _error_text(body: Any) -> str:
    if isinstance(body, dict):
        error = body.get("error")
        if isinstance(error, dict) and isinstance(error.get("message"), str):
            return str(error["message"])[:300]
        if isinstance(error, str):
            return error[:300]
    return ""
