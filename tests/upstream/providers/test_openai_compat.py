"""OpenAICompatibleProvider and its HTTP/1.1 client against real servers on loopback.

The stand-ins (uvicorn, chunked SSE) answer and misbehave on request; bench.upstream (httptools, uvloop)
counts connections; a raw asyncio server of a few lines writes exactly the bytes a test needs, cut
where the test wants, and counts the connections it accepted and saw closed.
"""

from __future__ import annotations

import asyncio
import gzip
import shutil
import socket
import ssl
import struct
import subprocess
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
import pytest

from bench import upstream as bench_upstream
from gateway.errors import (
    UpstreamBadResponse,
    UpstreamError,
    UpstreamRateLimited,
    UpstreamRejected,
    UpstreamTimeout,
    UpstreamUnavailable,
)
from gateway.standin.control import Fault
from gateway.upstream.providers.base import Endpoint, Json, Target
from gateway.upstream.providers.openai_compat import OpenAICompatibleProvider
from tests.conftest import OPENAI_KEY, Upstreams

pytestmark = pytest.mark.anyio

HELLO: Json = {"model": "m", "messages": [{"role": "user", "content": "Say hello"}], "max_tokens": 50}
STREAM: Json = HELLO | {"stream": True, "stream_options": {"include_usage": True}}
LIMIT = 4 * 1024 * 1024


@pytest.fixture(
    params=[pytest.param(("asyncio", {}), id="asyncio"), pytest.param(("asyncio", {"use_uvloop": True}), id="uvloop")]
)
def anyio_backend(request: pytest.FixtureRequest) -> Any:
    return request.param


@pytest.fixture
async def single() -> AsyncIterator[OpenAICompatibleProvider]:
    """A provider whose pool holds one connection, over all origins."""
    provider = OpenAICompatibleProvider(max_connections=1)
    yield provider
    await provider.aclose()


def target(base_url: str, *, key: str | None = None, timeout: float = 5.0) -> Target:
    return Target("dep", "openai", "m", base_url, key, timeout)


async def collect(provider: OpenAICompatibleProvider, at: Target, body: Json = STREAM) -> list[Json]:
    return [chunk async for chunk in provider.stream("chat", at, body)]


def text_of(chunks: list[Json]) -> str:
    return "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks if c.get("choices"))


# -- a raw server -------------------------------------------------------------------------


@dataclass
class Request:
    head: bytes
    body: bytes
    index: int  # 0 for the first request on its connection

    def header(self, name: str) -> str | None:
        for line in self.head.decode("latin-1").split("\r\n")[1:]:
            key, _, value = line.partition(":")
            if key.strip().lower() == name:
                return value.strip()
        return None


Answer = Callable[[Request, asyncio.StreamWriter], Awaitable[bool | None]]  # False: close the connection


async def read_request(reader: asyncio.StreamReader) -> tuple[bytes, bytes] | None:
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except (asyncio.IncompleteReadError, ConnectionError):
        return None
    length = next(
        (int(line.split(b":")[1]) for line in head.split(b"\r\n") if line.lower().startswith(b"content-length:")), 0
    )
    return head, await reader.readexactly(length)


@dataclass
class RawServer:
    """Answers each request on a connection with ``answer``; counts connections accepted and closed by the client."""

    answer: Answer
    tls: ssl.SSLContext | None = None
    accepted: int = 0
    ended: int = 0  # connections whose client closed them (EOF or reset)
    requests: list[Request] = field(default_factory=list)
    port: int = 0
    _server: asyncio.Server | None = None
    _handlers: set[asyncio.Task[Any]] = field(default_factory=set)
    _ended: asyncio.Event = field(default_factory=asyncio.Event)

    async def __aenter__(self) -> RawServer:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0, ssl=self.tls)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()
        for handler in self._handlers:
            handler.cancel()
        await asyncio.gather(*self._handlers, return_exceptions=True)
        await self._server.wait_closed()

    @property
    def url(self) -> str:
        return f"{'https' if self.tls else 'http'}://127.0.0.1:{self.port}/v1"

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.accepted += 1
        self._handlers.add(asyncio.current_task())  # type: ignore[arg-type]
        index = 0
        try:
            while (request := await read_request(reader)) is not None:
                self.requests.append(Request(*request, index))
                index += 1
                if await self.answer(self.requests[-1], writer) is False:
                    return
            self.ended += 1
            self._ended.set()
        except (ConnectionError, ssl.SSLError):
            self.ended += 1
            self._ended.set()
        finally:
            writer.close()

    async def until_ended(self, count: int) -> None:
        async with asyncio.timeout(2):
            while self.ended < count:
                self._ended.clear()
                await self._ended.wait()


def head(status: int = 200, *headers: str) -> bytes:
    return ("\r\n".join([f"HTTP/1.1 {status} X", *headers]) + "\r\n\r\n").encode()


def json_answer(payload: Any, *headers: str, status: int = 200) -> bytes:
    body = payload if isinstance(payload, bytes) else orjson.dumps(payload)
    return head(status, "Content-Type: application/json", f"Content-Length: {len(body)}", *headers) + body


def chunked(body: bytes, sizes: tuple[int, ...] = (64,)) -> bytes:
    """``body`` in HTTP chunks whose sizes cycle through ``sizes``."""
    out, at, turn = [], 0, 0
    while at < len(body):
        size = sizes[turn % len(sizes)]
        out.append(b"%x\r\n%b\r\n" % (len(body[at : at + size]), body[at : at + size]))
        at, turn = at + size, turn + 1
    return b"".join(out) + b"0\r\n\r\n"


def sse(*events: Json | str, newline: str = "\n") -> bytes:
    text = "".join(f"data: {e if isinstance(e, str) else orjson.dumps(e).decode()}{newline}{newline}" for e in events)
    return text.encode()


def delta(text: str) -> Json:
    return {"object": "chat.completion.chunk", "choices": [{"index": 0, "delta": {"content": text}}]}


COMPLETION: Json = {
    "object": "chat.completion",
    "choices": [{"message": {"content": "hi"}}],
    "usage": {"total_tokens": 3},
}
EVENTS = sse(delta("Hel"), delta("lo, "), delta("world"), {"choices": [], "usage": {"total_tokens": 7}}, "[DONE]")


async def dribble(writer: asyncio.StreamWriter, data: bytes, size: int) -> None:
    """Write ``data`` in pieces of ``size`` bytes, each its own TCP segment as far as the kernel allows."""
    for at in range(0, len(data), size):
        writer.write(data[at : at + size])
        await writer.drain()
        await asyncio.sleep(0)


def always(data: bytes) -> Answer:
    async def answer(request: Request, writer: asyncio.StreamWriter) -> None:
        writer.write(data)
        await writer.drain()

    return answer


def after(seconds: float, data: bytes) -> Answer:
    """``data`` for every request, ``seconds`` after it arrived."""

    async def answer(request: Request, writer: asyncio.StreamWriter) -> None:
        await asyncio.sleep(seconds)
        writer.write(data)
        await writer.drain()

    return answer


# -- against the stand-ins ------------------------------------------------------------------


@pytest.mark.parametrize("endpoint", ["chat", "completions", "embeddings"])
async def test_complete_answers_every_endpoint(
    provider: OpenAICompatibleProvider, upstreams: Upstreams, endpoint: Endpoint
) -> None:
    body = {"model": "m", "input": "hello"} if endpoint == "embeddings" else HELLO
    if endpoint == "completions":
        body = {"model": "m", "prompt": "Say hello", "max_tokens": 20}
    answer = await provider.complete(endpoint, target(upstreams.v1()["a"]), body)
    assert answer["model"] == "m" and answer["usage"]["prompt_tokens"] > 0
    [call] = upstreams.controls["a"].calls()
    assert call.path == f"/v1/{'chat/completions' if endpoint == 'chat' else endpoint}"


async def test_complete_sends_the_key_and_gets_text(provider: OpenAICompatibleProvider, upstreams: Upstreams) -> None:
    answer = await provider.complete("chat", target(upstreams.v1()["c"], key=OPENAI_KEY), HELLO)
    assert "hello" in answer["choices"][0]["message"]["content"].lower()
    assert answer["usage"]["completion_tokens"] > 0
    [call] = upstreams.controls["c"].calls()
    assert call.headers["authorization"] == f"Bearer {OPENAI_KEY}"
    assert call.headers["content-type"] == "application/json"


async def test_stream_assembles_the_text_and_ends_with_usage(
    provider: OpenAICompatibleProvider, upstreams: Upstreams
) -> None:
    at = target(upstreams.v1()["a"])
    whole = await provider.complete("chat", at, HELLO)
    chunks = await collect(provider, at)
    assert text_of(chunks) == whole["choices"][0]["message"]["content"]
    assert chunks[-1]["usage"]["completion_tokens"] == whole["usage"]["completion_tokens"]


async def test_a_wrong_key_is_an_unavailable_deployment_and_the_upstreams_message_is_only_logged(
    provider: OpenAICompatibleProvider, upstreams: Upstreams, caplog: pytest.LogCaptureFixture
) -> None:
    with pytest.raises(UpstreamUnavailable, match=r"'dep' answered 401$"):
        await provider.complete("chat", target(upstreams.v1()["c"], key="sk-wrong"), HELLO)
    assert "answered 401: Incorrect API key" in caplog.text


STATUS_ERRORS = [
    (429, UpstreamRateLimited),
    (408, UpstreamTimeout),
    (504, UpstreamTimeout),
    (500, UpstreamUnavailable),
    (503, UpstreamUnavailable),
    (401, UpstreamUnavailable),
    (403, UpstreamUnavailable),
    (404, UpstreamUnavailable),
    (400, UpstreamRejected),
    (422, UpstreamRejected),
]


@pytest.mark.parametrize(("status", "error"), STATUS_ERRORS)
@pytest.mark.parametrize("streamed", [False, True], ids=["complete", "stream"])
async def test_status_codes_map_to_errors_that_name_the_status_but_not_the_upstreams_message(
    provider: OpenAICompatibleProvider,
    upstreams: Upstreams,
    status: int,
    error: type[UpstreamError],
    streamed: bool,
    caplog: pytest.LogCaptureFixture,
) -> None:
    upstreams.controls["a"].inject(Fault(status=status, message=f"no luck {status} authorization=Bearer sk-echoed-key"))
    with pytest.raises(error, match=f"'dep' answered {status}") as info:
        if streamed:
            await collect(provider, target(upstreams.v1()["a"]))
        else:
            await provider.complete("chat", target(upstreams.v1()["a"]), HELLO)
    assert "no luck" not in info.value.message
    assert f"no luck {status} authorization=***" in caplog.text  # logged for ops, without the credential
    assert "sk-echoed-key" not in caplog.text


async def test_a_slow_answer_times_out(provider: OpenAICompatibleProvider, upstreams: Upstreams) -> None:
    upstreams.controls["a"].inject(Fault(delay=3.0, times=2))
    started = time.monotonic()
    with pytest.raises(UpstreamTimeout, match="'dep' timed out"):
        await provider.complete("chat", target(upstreams.v1()["a"], timeout=0.3), HELLO)
    with pytest.raises(UpstreamTimeout):
        await collect(provider, target(upstreams.v1()["a"], timeout=0.3))
    assert time.monotonic() - started < 2.0


async def test_a_stalled_stream_times_out_between_events(
    provider: OpenAICompatibleProvider, upstreams: Upstreams
) -> None:
    upstreams.controls["a"].set_timing(chunk_gap=0.1)
    assert text_of(await collect(provider, target(upstreams.v1()["a"], timeout=0.5)))  # each gap is under the timeout
    upstreams.controls["a"].set_timing(chunk_gap=2.0)
    got: list[Json] = []
    with pytest.raises(UpstreamTimeout):
        async for chunk in provider.stream("chat", target(upstreams.v1()["a"], timeout=0.3), STREAM):
            got.append(chunk)
    assert len(got) == 1


async def test_a_dropped_stream_is_unavailable_after_the_events_before_it(
    provider: OpenAICompatibleProvider, upstreams: Upstreams
) -> None:
    upstreams.controls["a"].inject(Fault(drop_after=2))
    got: list[Json] = []
    with pytest.raises(UpstreamUnavailable, match="'dep' is unreachable"):
        async for chunk in provider.stream("chat", target(upstreams.v1()["a"]), STREAM):
            got.append(chunk)
    assert len(got) == 2


async def test_a_cut_answer_is_unavailable(provider: OpenAICompatibleProvider, upstreams: Upstreams) -> None:
    upstreams.controls["a"].inject(Fault(drop_after=0))
    with pytest.raises(UpstreamUnavailable, match=r"unreachable \(ConnectionClosed\)"):
        await provider.complete("chat", target(upstreams.v1()["a"]), HELLO)


async def test_a_refused_connection_is_unavailable(provider: OpenAICompatibleProvider) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # closed again: nothing listens there
    with pytest.raises(UpstreamUnavailable, match=r"unreachable \(ConnectionRefusedError\)"):
        await provider.complete("chat", target(f"http://127.0.0.1:{port}/v1"), HELLO)
    with pytest.raises(UpstreamUnavailable, match="ConnectionRefusedError"):
        await collect(provider, target(f"http://127.0.0.1:{port}/v1"))


@pytest.mark.parametrize("base_url", [None, "ftp://example.com/v1", "http:///v1", "http://h:99999/v1"])
async def test_an_unusable_base_url_is_unavailable(provider: OpenAICompatibleProvider, base_url: str | None) -> None:
    with pytest.raises(UpstreamUnavailable, match="InvalidRequest"):
        await provider.complete("chat", Target("dep", "openai", "m", base_url, None, 5.0), HELLO)


# -- connection reuse -----------------------------------------------------------------------


@pytest.fixture
async def bench() -> AsyncIterator[tuple[str, bench_upstream.Upstream]]:
    """bench.upstream (httptools server, chunked SSE) in this loop; its stats count accepted connections."""
    state = bench_upstream.Upstream(bench_upstream.Config(chunks=5))
    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: bench_upstream.Connection(state), "127.0.0.1", 0)
    yield f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}/v1", state
    server.close()
    await server.wait_closed()


async def test_sequential_requests_and_streams_share_one_connection(
    provider: OpenAICompatibleProvider, bench: tuple[str, bench_upstream.Upstream]
) -> None:
    url, state = bench
    for _ in range(10):
        assert (await provider.complete("chat", target(url), HELLO))["usage"]["total_tokens"] > 0
        assert text_of(await collect(provider, target(url)))
    assert (state.stats.requests, state.stats.connections) == (20, 1)


async def test_concurrent_requests_stay_within_the_pool_limit(bench: tuple[str, bench_upstream.Upstream]) -> None:
    url, state = bench
    state.config.delay_ms = 20
    provider = OpenAICompatibleProvider(max_connections=3)
    try:
        answers = await asyncio.gather(*(provider.complete("chat", target(url), HELLO) for _ in range(12)))
        streams = await asyncio.gather(*(collect(provider, target(url)) for _ in range(6)))
    finally:
        await provider.aclose()
    assert len(answers) == 12 and all(text_of(s) for s in streams)
    assert state.stats.connections == 3


async def test_a_full_pool_closes_an_idle_connection_of_another_origin(single: OpenAICompatibleProvider) -> None:
    async with RawServer(always(json_answer(COMPLETION))) as one, RawServer(always(json_answer(COMPLETION))) as two:
        await single.complete("chat", target(one.url), HELLO)
        await single.complete("chat", target(two.url), HELLO)
        await one.until_ended(1)
        await single.complete("chat", target(one.url), HELLO)
        assert (one.accepted, two.accepted) == (2, 1)


async def test_a_waiter_for_another_origin_gets_the_slot_of_a_finished_request(
    single: OpenAICompatibleProvider,
) -> None:
    async with RawServer(after(0.2, json_answer(COMPLETION))) as one, RawServer(always(json_answer(COMPLETION))) as two:
        first = asyncio.ensure_future(single.complete("chat", target(one.url), HELLO))
        await asyncio.sleep(0.05)
        assert await single.complete("chat", target(two.url), HELLO) == COMPLETION  # waits for the slot
        assert await first == COMPLETION
        await one.until_ended(1)  # its connection was closed to make room
        assert (one.accepted, two.accepted) == (1, 1)


async def test_waiting_for_a_free_connection_is_bounded_by_the_timeout(single: OpenAICompatibleProvider) -> None:
    async with RawServer(after(1.0, json_answer(COMPLETION))) as server:
        first = asyncio.ensure_future(single.complete("chat", target(server.url), HELLO))
        await asyncio.sleep(0.05)
        with pytest.raises(UpstreamTimeout):
            await single.complete("chat", target(server.url, timeout=0.2), HELLO)
        assert (await first)["usage"]
        assert server.accepted == 1


async def test_an_answer_with_connection_close_is_not_reused(provider: OpenAICompatibleProvider) -> None:
    async with RawServer(always(json_answer(COMPLETION, "Connection: close"))) as server:
        for _ in range(3):
            assert await provider.complete("chat", target(server.url), HELLO) == COMPLETION
        assert server.accepted == 3


async def test_a_body_that_ends_with_the_connection_is_read_whole(provider: OpenAICompatibleProvider) -> None:
    async def until_close(request: Request, writer: asyncio.StreamWriter) -> bool:
        stream = orjson.loads(request.body).get("stream")
        writer.write(head(200, "Content-Type: text/event-stream" if stream else "Content-Type: application/json"))
        await dribble(writer, EVENTS if stream else orjson.dumps(COMPLETION), 10)
        return False

    async with RawServer(until_close) as server:
        assert await provider.complete("chat", target(server.url), HELLO) == COMPLETION
        await until(lambda: server.accepted == 2)  # closed after its answer: the next one is opened ahead
        assert text_of(await collect(provider, target(server.url))) == "Hello, world"
        await until(lambda: server.accepted == 3)
        assert [r.index for r in server.requests] == [0, 0]


async def test_a_host_name_is_resolved_and_its_addresses_tried_in_turn(provider: OpenAICompatibleProvider) -> None:
    async with RawServer(always(json_answer(COMPLETION))) as server:  # on 127.0.0.1 only; localhost may be ::1 first
        for _ in range(2):
            assert await provider.complete("chat", target(f"http://localhost:{server.port}/v1"), HELLO) == COMPLETION
        assert server.accepted == 1
        assert server.requests[0].header("host") == f"localhost:{server.port}"


@pytest.mark.parametrize("when", ["with-the-answer", "later"])
async def test_bytes_after_an_answer_end_its_connection(provider: OpenAICompatibleProvider, when: str) -> None:
    async def chatty(request: Request, writer: asyncio.StreamWriter) -> None:
        if request.index or server.accepted > 1:
            writer.write(json_answer(COMPLETION))
        elif when == "later":
            writer.write(json_answer(COMPLETION))
            await writer.drain()
            await asyncio.sleep(0.05)
            writer.write(json_answer(COMPLETION))  # unasked
        else:
            writer.write(json_answer(COMPLETION) * 2)

    async with RawServer(chatty) as server:
        assert await provider.complete("chat", target(server.url), HELLO) == COMPLETION
        await server.until_ended(1)
        await asyncio.sleep(0.05)  # a connection opened ahead, if any, is ready
        assert await provider.complete("chat", target(server.url), HELLO) == COMPLETION
        assert server.accepted == 2 and [r.index for r in server.requests] == [0, 0], "not the chatty connection"


async def test_the_request_head_is_plain_http11(provider: OpenAICompatibleProvider) -> None:
    async with RawServer(always(json_answer(COMPLETION))) as server:
        await provider.complete("chat", target(server.url, key="sk-1"), HELLO)
        [request] = server.requests
    assert request.head.startswith(b"POST /v1/chat/completions HTTP/1.1\r\n")
    assert request.header("host") == f"127.0.0.1:{server.port}"
    assert request.header("authorization") == "Bearer sk-1"
    assert request.header("content-type") == "application/json"
    assert request.header("accept") == "application/json"
    assert request.header("accept-encoding") is None
    assert orjson.loads(request.body) == HELLO


# -- stale connections ------------------------------------------------------------------------


@pytest.mark.parametrize("how", ["close", "reset"])
@pytest.mark.parametrize("streamed", [False, True], ids=["complete", "stream"])
async def test_a_connection_closed_while_idle_is_retried_on_a_fresh_one(
    provider: OpenAICompatibleProvider, how: str, streamed: bool
) -> None:
    async def once(request: Request, writer: asyncio.StreamWriter) -> bool:
        if request.index:  # a second request on this connection: hang up without a word, as if idle too long
            if how == "reset":
                sock = writer.get_extra_info("socket")
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            return False
        writer.write(
            json_answer(COMPLETION) if not streamed else head(200, "Transfer-Encoding: chunked") + chunked(EVENTS)
        )
        return True

    async with RawServer(once) as server:
        for _ in range(3):
            if streamed:
                assert text_of(await collect(provider, target(server.url))) == "Hello, world"
            else:
                assert await provider.complete("chat", target(server.url), HELLO) == COMPLETION
        assert (server.accepted, len(server.requests)) == (3, 5)


async def test_a_connection_the_server_closed_while_idle_is_not_used(provider: OpenAICompatibleProvider) -> None:
    async def one_shot(request: Request, writer: asyncio.StreamWriter) -> bool:
        writer.write(json_answer(COMPLETION))  # keep-alive by the headers, but closed right after
        await writer.drain()
        return False

    async with RawServer(one_shot) as server:
        for _ in range(3):
            assert await provider.complete("chat", target(server.url), HELLO) == COMPLETION
            await asyncio.sleep(0.05)
        await until(lambda: server.accepted == 4)  # each closed one was replaced ahead of the next request
        assert [r.index for r in server.requests] == [0, 0, 0]


async def test_a_fresh_connection_that_fails_is_not_retried(provider: OpenAICompatibleProvider) -> None:
    async def hang_up(request: Request, writer: asyncio.StreamWriter) -> bool:
        return False

    async with RawServer(hang_up) as server:
        with pytest.raises(UpstreamUnavailable, match="ConnectionClosed"):
            await provider.complete("chat", target(server.url), HELLO)
        assert server.accepted == 1


async def test_a_reused_connection_that_fails_after_answering_part_is_not_retried(
    provider: OpenAICompatibleProvider,
) -> None:
    async def half(request: Request, writer: asyncio.StreamWriter) -> bool:
        whole = json_answer(COMPLETION)
        writer.write(whole if request.index == 0 else whole[:-5])
        return request.index == 0

    async with RawServer(half) as server:
        await provider.complete("chat", target(server.url), HELLO)
        with pytest.raises(UpstreamUnavailable, match="ConnectionClosed"):
            await provider.complete("chat", target(server.url), HELLO)
        assert (server.accepted, len(server.requests)) == (1, 2)


# -- streams cut at awkward places ------------------------------------------------------------


@pytest.mark.parametrize("newline", ["\n", "\r\n"], ids=["lf", "crlf"])
@pytest.mark.parametrize("sizes", [(1,), (3, 7), (13, 2, 64)], ids=str)
async def test_events_cut_anywhere_assemble(
    provider: OpenAICompatibleProvider, newline: str, sizes: tuple[int]
) -> None:
    body = (
        f": keep-alive comment{newline}event: message{newline}id: 1{newline}retry: 100{newline}{newline}".encode()
        + sse(delta("Hel"), delta("lo, "), newline=newline)
        + sse(delta("world"), {"choices": [], "usage": {"total_tokens": 7}}, "[DONE]", newline=newline)
    )

    async def cut(request: Request, writer: asyncio.StreamWriter) -> None:
        await dribble(writer, head(200, "Content-Type: text/event-stream", "Transfer-Encoding: chunked"), 5)
        await dribble(writer, chunked(body, sizes), max(sizes) // 2 + 1)

    async with RawServer(cut) as server:
        for _ in range(2):
            chunks = await collect(provider, target(server.url))
            assert text_of(chunks) == "Hello, world" and chunks[-1]["usage"] == {"total_tokens": 7}
        assert server.accepted == 1  # read to the end, so reused


async def test_a_stream_with_a_content_length_body(provider: OpenAICompatibleProvider) -> None:
    async with RawServer(always(head(200, f"Content-Length: {len(EVENTS)}") + EVENTS)) as server:
        assert text_of(await collect(provider, target(server.url))) == "Hello, world"
        assert text_of(await collect(provider, target(server.url))) == "Hello, world"
        assert server.accepted == 1


async def test_a_slow_reader_pauses_the_upstream_and_still_gets_every_event(
    provider: OpenAICompatibleProvider,
) -> None:
    many = sse(*[delta("x" * 1500)] * 2000, "[DONE]")  # 3 MB, far over what is buffered before reading pauses
    async with RawServer(always(head(200, "Transfer-Encoding: chunked") + chunked(many, (65536,)))) as server:
        for _ in range(2):
            got = 0
            async for _chunk in provider.stream("chat", target(server.url), STREAM):
                got += 1
                if got == 1:
                    await asyncio.sleep(0.2)
            assert got == 2000
        assert server.accepted == 1


async def test_an_interim_answer_and_a_chunked_json_body(provider: OpenAICompatibleProvider) -> None:
    answer = head(100) + head(200, "Transfer-Encoding: chunked") + chunked(orjson.dumps(COMPLETION), (5,))
    async with RawServer(always(answer)) as server:
        assert await provider.complete("chat", target(server.url), HELLO) == COMPLETION
        assert await provider.complete("chat", target(server.url), HELLO) == COMPLETION
        assert server.accepted == 1


async def test_a_last_line_without_a_line_break_still_counts(provider: OpenAICompatibleProvider) -> None:
    body = sse(delta("Hi")) + b"data: [DONE]"
    async with RawServer(always(head(200, "Transfer-Encoding: chunked") + chunked(body))) as server:
        assert text_of(await collect(provider, target(server.url))) == "Hi"


async def test_an_error_event_mid_stream_is_unavailable(provider: OpenAICompatibleProvider) -> None:
    body = sse(delta("Hel"), {"error": {"message": "the GPU fell over"}})
    async with RawServer(always(head(200, "Transfer-Encoding: chunked") + chunked(body))) as server:
        got: list[Json] = []
        with pytest.raises(UpstreamUnavailable, match=r"'dep' failed mid-stream$"):
            async for chunk in provider.stream("chat", target(server.url), STREAM):
                got.append(chunk)
        assert text_of(got) == "Hel"


async def test_a_stream_that_ends_before_done_is_unavailable(provider: OpenAICompatibleProvider) -> None:
    async with RawServer(always(head(200, "Transfer-Encoding: chunked") + chunked(sse(delta("Hel"))))) as server:
        with pytest.raises(UpstreamUnavailable, match=r"closed the stream before \[DONE\]"):
            await collect(provider, target(server.url))


@pytest.mark.parametrize("ended", [True, False], ids=["ended-line", "unended-line"])
async def test_an_over_long_line_is_a_bad_response(provider: OpenAICompatibleProvider, ended: bool) -> None:
    body = b"data: " + b"x" * (LIMIT + 10) + (b"\n\n" if ended else b"")

    async def huge(request: Request, writer: asyncio.StreamWriter) -> None:
        writer.write(head(200, "Transfer-Encoding: chunked"))
        await dribble(writer, chunked(body, (65536,)), 1 << 20)

    async with RawServer(huge) as server:
        with pytest.raises(UpstreamBadResponse, match=f"'dep' sent a stream line over {LIMIT} bytes"):
            await collect(provider, target(server.url))


async def test_unparseable_answers_are_bad_responses(provider: OpenAICompatibleProvider) -> None:
    async with RawServer(always(json_answer(b"{nope"))) as server:
        with pytest.raises(UpstreamBadResponse, match="invalid JSON"):
            await provider.complete("chat", target(server.url), HELLO)
    async with RawServer(always(json_answer([1, 2]))) as server:
        with pytest.raises(UpstreamBadResponse, match="non-object"):
            await provider.complete("chat", target(server.url), HELLO)
    async with RawServer(always(head(200, "Transfer-Encoding: chunked") + chunked(sse("{nope")))) as server:
        with pytest.raises(UpstreamBadResponse, match="unparseable stream event"):
            await collect(provider, target(server.url))


async def test_a_malformed_http_answer_is_unavailable(provider: OpenAICompatibleProvider) -> None:
    async with RawServer(always(b"HTTP/1.1 OK-ish\r\nwhat\r\n\r\n")) as server:
        with pytest.raises(UpstreamUnavailable, match="ProtocolError"):
            await provider.complete("chat", target(server.url), HELLO)


# -- encodings ----------------------------------------------------------------------------


async def test_gzip_answers_are_decoded(provider: OpenAICompatibleProvider) -> None:
    packed = gzip.compress(orjson.dumps(COMPLETION))
    packed_events = gzip.compress(EVENTS)

    async def zipped(request: Request, writer: asyncio.StreamWriter) -> None:
        if orjson.loads(request.body).get("stream"):
            writer.write(head(200, "Content-Encoding: gzip", "Transfer-Encoding: chunked"))
            await dribble(writer, chunked(packed_events, (3, 7)), 9)  # a gzip header alone decodes to nothing
        else:
            writer.write(json_answer(packed, "Content-Encoding: gzip"))

    async with RawServer(zipped) as server:
        assert await provider.complete("chat", target(server.url), HELLO) == COMPLETION
        assert text_of(await collect(provider, target(server.url))) == "Hello, world"
        assert server.accepted == 1


@pytest.mark.parametrize(
    ("encoding", "body", "message"),
    [("br", b"\x0b\x02\x80{}\x03", "unsupported Content-Encoding 'br'"), ("gzip", b"not gzip", "gzip body is corrupt")],
)
async def test_bodies_that_cannot_be_decoded_are_bad_responses(
    provider: OpenAICompatibleProvider, encoding: str, body: bytes, message: str
) -> None:
    async with RawServer(always(json_answer(body, f"Content-Encoding: {encoding}"))) as server:
        with pytest.raises(UpstreamBadResponse, match=message):
            await provider.complete("chat", target(server.url), HELLO)


# -- closing ------------------------------------------------------------------------------


@pytest.mark.parametrize("all_sent", [True, False], ids=["all-sent", "still-sending"])
async def test_an_abandoned_stream_closes_its_connection(provider: OpenAICompatibleProvider, all_sent: bool) -> None:
    async def events(request: Request, writer: asyncio.StreamWriter) -> None:
        whole = chunked(EVENTS)
        writer.write(
            head(200, "Transfer-Encoding: chunked") + (whole if all_sent or server.accepted > 1 else whole[:-60])
        )
        await writer.drain()

    async with RawServer(events) as server:
        stream = provider.stream("chat", target(server.url), STREAM)
        assert text_of([await anext(stream)]) == "Hel"
        await stream.aclose()  # type: ignore[attr-defined]
        await server.until_ended(1)
        assert text_of(await collect(provider, target(server.url))) == "Hello, world"
        assert server.accepted == 2


async def test_a_cancelled_request_closes_its_connection_and_frees_its_slot(single: OpenAICompatibleProvider) -> None:
    async def slow(request: Request, writer: asyncio.StreamWriter) -> None:
        if request.index == 0 and len(orjson.loads(request.body)["messages"]) == 2:
            await asyncio.sleep(5)  # the client gives up first
        writer.write(json_answer(COMPLETION))

    async with RawServer(slow) as server:
        two = HELLO | {"messages": HELLO["messages"] * 2}
        task = asyncio.ensure_future(single.complete("chat", target(server.url), two))
        await asyncio.sleep(0.1)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert await single.complete("chat", target(server.url), HELLO) == COMPLETION
        assert server.accepted == 2


async def test_a_stalled_request_is_closed_after_its_timeout(provider: OpenAICompatibleProvider) -> None:
    async def stall_first(request: Request, writer: asyncio.StreamWriter) -> None:
        if len(server.requests) == 1:
            await asyncio.sleep(3)
        writer.write(json_answer(COMPLETION))

    async with RawServer(stall_first) as server:
        with pytest.raises(UpstreamTimeout):
            await provider.complete("chat", target(server.url, timeout=0.2), HELLO)
        assert await provider.complete("chat", target(server.url), HELLO) == COMPLETION
        assert server.accepted == 2


async def test_aclose_closes_idle_connections_and_later_calls_fail() -> None:
    provider = OpenAICompatibleProvider()
    async with RawServer(always(json_answer(COMPLETION))) as server:
        await provider.complete("chat", target(server.url), HELLO)
        await provider.aclose()
        await server.until_ended(1)
        with pytest.raises(UpstreamUnavailable, match="PoolClosed"):
            await provider.complete("chat", target(server.url), HELLO)


# -- https ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1, made offline by the openssl command."""
    if shutil.which("openssl") is None:
        pytest.skip("the openssl command is not installed")
    folder = tmp_path_factory.mktemp("tls")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-days", "1",
         "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", str(key), "-out", str(cert)],
        check=True,
        capture_output=True,
    )  # fmt: skip
    return cert, key


async def test_https_upstreams_are_verified(certificate: tuple[Path, Path]) -> None:
    cert, key = certificate
    server_side = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_side.load_cert_chain(cert, key)
    trusting = ssl.create_default_context(cafile=str(cert))

    async def answer(request: Request, writer: asyncio.StreamWriter) -> None:
        if orjson.loads(request.body).get("stream"):
            writer.write(head(200, "Transfer-Encoding: chunked") + chunked(EVENTS, (5, 9)))
        else:
            writer.write(json_answer(COMPLETION))

    async with RawServer(answer, tls=server_side) as server:
        provider = OpenAICompatibleProvider(ssl_context=trusting)
        try:
            assert await provider.complete("chat", target(server.url), HELLO) == COMPLETION
            assert text_of(await collect(provider, target(server.url))) == "Hello, world"
            assert server.accepted == 1
        finally:
            await provider.aclose()
        untrusting = OpenAICompatibleProvider()
        try:
            with pytest.raises(UpstreamUnavailable, match="certificate verify failed: self-signed certificate"):
                await untrusting.complete("chat", target(server.url), HELLO)
        finally:
            await untrusting.aclose()


# -- upstreams that close the connection after each answer (llama.cpp's server after a stream) ---------


def closing_after(data: bytes) -> Answer:
    async def answer(request: Request, writer: asyncio.StreamWriter) -> bool:
        writer.write(data)
        await writer.drain()
        return False  # and close, as llama-server does after a streamed answer

    return answer


STREAMED = head(200, "Content-Type: text/event-stream", "Transfer-Encoding: chunked") + chunked(EVENTS)


async def test_a_connection_is_opened_ahead_for_an_upstream_that_closes_after_each_answer(
    provider: OpenAICompatibleProvider,
) -> None:
    async with RawServer(closing_after(STREAMED)) as server:
        assert text_of(await collect(provider, target(server.url))) == "Hello, world"
        await until(lambda: server.accepted == 2)  # the next request's connection, opened ahead
        assert text_of(await collect(provider, target(server.url))) == "Hello, world"
        assert [r.index for r in server.requests] == [0, 0], "each request on a connection of its own"
        await until(lambda: server.accepted == 3)
        await asyncio.sleep(0.2)
        assert server.accepted == 3, "one connection ahead, not more"


async def test_a_connection_opened_ahead_that_the_upstream_drops_opens_no_other(
    provider: OpenAICompatibleProvider,
) -> None:
    async with RawServer(closing_after(STREAMED)) as server:
        await collect(provider, target(server.url))
        await until(lambda: server.accepted == 2)
        for handler in list(server._handlers):  # among them the connection opened ahead, waiting for a request
            handler.cancel()  # the upstream drops it (an idle timeout, a restart)
        await asyncio.sleep(0.3)
        assert server.accepted == 2, "its loss opened no other connection"
        assert text_of(await collect(provider, target(server.url))) == "Hello, world"


async def until(condition: Callable[[], bool], seconds: float = 2.0) -> None:
    async with asyncio.timeout(seconds):
        while not condition():
            await asyncio.sleep(0.01)
