"""Direct proxy to OpenAI-compatible upstreams (vLLM, SGLang, Ollama, llama.cpp, TGI, OpenAI itself).

This is the hot path: one pooled HTTP client, bodies parsed once with orjson, no translation.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import orjson

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


class OpenAICompatibleProvider:
    def __init__(self, *, max_connections: int = 512) -> None:
        limits = httpx.Limits(max_connections=max_connections, max_keepalive_connections=max_connections)
        self._client = httpx.AsyncClient(limits=limits, timeout=None, follow_redirects=False, trust_env=False)

    async def aclose(self) -> None:
        await self._client.aclose()

    def _request(self, endpoint: Endpoint, target: Target, body: Json) -> httpx.Request:
        headers = {"content-type": "application/json", "accept": "application/json"}
        if target.api_key:
            headers["authorization"] = f"Bearer {target.api_key}"
        timeout = httpx.Timeout(target.timeout_seconds, connect=min(_CONNECT_TIMEOUT, target.timeout_seconds))
        url = (target.base_url or "").rstrip("/") + PATHS[endpoint]
        return self._client.build_request(
            "POST", url, content=orjson.dumps(body), headers=headers, extensions={"timeout": timeout.as_dict()}
        )

    async def complete(self, endpoint: Endpoint, target: Target, body: Json) -> Json:
        request = self._request(endpoint, target, body)
        try:
            response = await self._client.send(request)
        except httpx.HTTPError as exc:
            raise _transport_error(target, exc) from None
        if response.status_code != 200:
            raise _status_error(target, response.status_code, response.content, response.headers)
        try:
            parsed = orjson.loads(response.content)
        except orjson.JSONDecodeError:
            raise UpstreamBadResponse(f"deployment {target.deployment!r} answered with invalid JSON") from None
        if not isinstance(parsed, dict):
            raise UpstreamBadResponse(f"deployment {target.deployment!r} answered with a non-object JSON body")
        return parsed

    async def stream(self, endpoint: Endpoint, target: Target, body: Json) -> AsyncIterator[Json]:
        request = self._request(endpoint, target, body)
        try:
            response = await self._client.send(request, stream=True)
        except httpx.HTTPError as exc:
            raise _transport_error(target, exc) from None
        try:
            if response.status_code != 200:
                content = await response.aread()
                raise _status_error(target, response.status_code, content, response.headers)
            async for chunk in _sse_json(target, response):
                yield chunk
        except httpx.HTTPError as exc:
            raise _transport_error(target, exc) from None
        finally:
            await response.aclose()


async def _sse_json(target: Target, response: httpx.Response) -> AsyncIterator[Json]:
    done = False
    async for line in response.aiter_lines():
        if done or not line.startswith("data:"):
            continue
        data = line[5:].strip()
        if data == "[DONE]":
            done = True
            continue  # read to the end of the body, so the connection goes back to the pool
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


def _transport_error(target: Target, exc: httpx.HTTPError) -> UpstreamError:
    if isinstance(exc, httpx.TimeoutException):
        return UpstreamTimeout(f"deployment {target.deployment!r} timed out ({type(exc).__name__})")
    return UpstreamUnavailable(f"deployment {target.deployment!r} is unreachable ({type(exc).__name__})")


def _status_error(target: Target, status: int, content: bytes, headers: httpx.Headers) -> UpstreamError:
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
