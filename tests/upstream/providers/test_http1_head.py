"""An answer's head is bounded, and each limit an upstream hits is reported (for gateway_upstream_limits)."""

from __future__ import annotations

import asyncio

import pytest

from gateway.errors import UpstreamBadResponse, UpstreamTimeout
from gateway.upstream.providers import http1
from gateway.upstream.providers.openai_compat import OpenAICompatibleProvider
from tests.upstream.providers.test_openai_compat import HELLO, STREAM, RawServer, Request, always, target

pytestmark = pytest.mark.anyio


def endless_header(request: Request, writer: asyncio.StreamWriter) -> None:
    writer.write(b"HTTP/1.1 200 OK\r\nX-Pad: " + b"a" * (2 * http1.MAX_HEAD_BYTES))


async def test_a_head_over_the_limit_is_a_bad_response_and_reported() -> None:
    heard: list[tuple[str, str]] = []

    async def answer(request: Request, writer: asyncio.StreamWriter) -> None:
        endless_header(request, writer)
        await writer.drain()

    async with RawServer(answer) as server:
        provider = OpenAICompatibleProvider(on_limit=lambda dep, limit: heard.append((dep, limit)))
        try:
            with pytest.raises(UpstreamBadResponse, match=f"the answer's head exceeds {http1.MAX_HEAD_BYTES} bytes"):
                await provider.complete("chat", target(server.url), HELLO)
        finally:
            await provider.aclose()
    assert heard == [("dep", "head_bytes")]


async def test_a_stream_that_stalls_is_reported_as_a_read_timeout() -> None:
    heard: list[tuple[str, str]] = []
    head = b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n"
    async with RawServer(always(head)) as server:  # the head, then nothing
        provider = OpenAICompatibleProvider(on_limit=lambda dep, limit: heard.append((dep, limit)))
        try:
            with pytest.raises(UpstreamTimeout, match=r"sent nothing for 0\.3 s mid-stream"):
                async for _ in provider.stream("chat", target(server.url, timeout=0.3), STREAM):
                    pass
        finally:
            await provider.aclose()
    assert heard == [("dep", "stream_read_timeout")]
