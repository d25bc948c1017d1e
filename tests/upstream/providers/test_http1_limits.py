"""The HTTP/1.1 client's size limits, against misbehaving upstreams on loopback (issue #18, item 5).

Each upstream here is a plain socket server in a thread: it reads a request and answers with
bytes a real upstream should never send (a gzip bomb, a 100 MB body, a stream that never ends,
endless empty deflate blocks), counting what it managed to write before the client hung up.
"""

from __future__ import annotations

import asyncio
import socket
import socketserver
import struct
import threading
import tracemalloc
import zlib
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

import httpx
import pytest

from gateway.errors import UpstreamBadResponse
from gateway.upstream.providers import http1
from gateway.upstream.providers.base import Json, Target
from gateway.upstream.providers.openai_compat import OpenAICompatibleProvider
from tests.conftest import GatewayFactory
from tests.factories import small_policy

pytestmark = pytest.mark.anyio

MiB = 1024 * 1024
DEFAULT_BODY = 32 * MiB
HELLO: Json = {"model": "m", "messages": [{"role": "user", "content": "Say hello"}]}
EVENT = b'data: {"choices": [{"index": 0, "delta": {"content": "la"}}]}\n\n'
EMPTY_BLOCK = b"\x00\x00\x00\xff\xff"  # a deflate stored block of no bytes: decodes to nothing
GZIP_HEADER = b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x02\xff"


# -- misbehaving upstreams -------------------------------------------------------------------


@dataclass
class Upstream:
    """Answers every request with ``answer(upstream, socket)``; ``sent`` counts the bytes it wrote."""

    answer: Callable[[Upstream, socket.socket], None]
    url: str = ""
    sent: int = 0
    hung_up: threading.Event = field(default_factory=threading.Event)  # a connection ended

    async def until_hung_up(self) -> bool:
        """Whether a connection ended within two seconds (waited for in a thread: the client's loop must run)."""
        return await asyncio.to_thread(self.hung_up.wait, 2)

    def send(self, sock: socket.socket, data: bytes) -> None:
        sock.sendall(data)
        self.sent += len(data)


class _Handler(socketserver.BaseRequestHandler):
    server: _Server

    def handle(self) -> None:
        upstream, sock = self.server.upstream, self.request
        try:
            with sock.makefile("rb") as reader:
                while _read_request(reader):
                    upstream.answer(upstream, sock)
        except OSError:
            pass  # the client hung up mid-answer: what these tests want to see
        finally:
            upstream.hung_up.set()


class _Server(socketserver.ThreadingTCPServer):
    daemon_threads = True

    def __init__(self, upstream: Upstream) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.upstream = upstream


def _read_request(reader: BinaryIO) -> bool:
    """Read one request (head and body); False at the end of the connection."""
    length = 0
    for line in iter(reader.readline, b""):
        if line == b"\r\n":
            reader.read(length)
            return True
        name, _, value = line.partition(b":")
        if name.lower() == b"content-length":
            length = int(value)
    return False


@contextmanager
def serving(answer: Callable[[Upstream, socket.socket], None]) -> Iterator[Upstream]:
    upstream = Upstream(answer)
    server = _Server(upstream)
    upstream.url = f"http://127.0.0.1:{server.server_address[1]}/v1"
    thread = threading.Thread(target=server.serve_forever, args=(0.02,), daemon=True)
    thread.start()
    try:
        yield upstream
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def head(*headers: str, status: int = 200) -> bytes:
    return ("\r\n".join([f"HTTP/1.1 {status} X", *headers]) + "\r\n\r\n").encode()


def chunk(data: bytes) -> bytes:
    return b"%x\r\n%b\r\n" % (len(data), data)


def whole(body: bytes, *headers: str, status: int = 200) -> Callable[[Upstream, socket.socket], None]:
    answer = head(f"Content-Length: {len(body)}", *headers, status=status) + body

    def write(upstream: Upstream, sock: socket.socket) -> None:
        upstream.send(sock, answer)

    return write


def gzip_bomb(decoded: int) -> bytes:
    """A valid gzip body of ``decoded`` zero bytes (a whole number of MiB), about a thousandth of that size."""
    zero = bytes(MiB)
    packer = zlib.compressobj(9, zlib.DEFLATED, -15)
    block = packer.compress(zero) + packer.flush(zlib.Z_FULL_FLUSH)  # the same bytes for every further MiB
    crc = 0
    for _ in range(decoded // MiB):
        crc = zlib.crc32(zero, crc)
    return GZIP_HEADER + block * (decoded // MiB) + packer.flush() + struct.pack("<II", crc, decoded & 0xFFFFFFFF)


def gzipped(data: bytes) -> bytes:
    packer = zlib.compressobj(6, zlib.DEFLATED, 31)
    return packer.compress(data) + packer.flush()


def zeros(size: int) -> Callable[[Upstream, socket.socket], None]:
    """A ``size``-byte body written a MiB at a time, for as long as the client reads."""

    def write(upstream: Upstream, sock: socket.socket) -> None:
        upstream.send(sock, head(f"Content-Length: {size}", "Content-Type: application/json"))
        for _ in range(size // MiB):
            upstream.send(sock, bytes(MiB))

    return write


def endless(piece: bytes, *headers: str, first: bytes = b"") -> Callable[[Upstream, socket.socket], None]:
    """A chunked body of ``first``, then ``piece`` after ``piece`` until the client hangs up."""

    def write(upstream: Upstream, sock: socket.socket) -> None:
        upstream.send(sock, head("Transfer-Encoding: chunked", *headers) + (chunk(first) if first else b""))
        while True:
            upstream.send(sock, chunk(piece))

    return write


# -- clients ------------------------------------------------------------------------------------


PoolFactory = Callable[..., http1.Pool]


@pytest.fixture
async def make_pool() -> AsyncIterator[PoolFactory]:
    """``make_pool(**limits)``: an :class:`http1.Pool`, closed after the test."""
    pools: list[http1.Pool] = []

    def make(
        *, max_body_bytes: int = http1.MAX_BODY_BYTES, max_stream_bytes: int = http1.MAX_STREAM_BYTES
    ) -> http1.Pool:
        pools.append(http1.Pool(max_body_bytes=max_body_bytes, max_stream_bytes=max_stream_bytes))
        return pools[-1]

    yield make
    for pool in pools:
        await pool.aclose()


@contextmanager
def traced() -> Iterator[Callable[[], int]]:
    """The peak of memory allocated while inside (every thread, Python's allocators and the C ones it wraps)."""
    tracemalloc.start()
    try:
        yield lambda: tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def target(url: str) -> Target:
    return Target("dep", "openai", "m", url, None, 10.0)


def post(url: str) -> http1.Post:
    return http1.Post.to(url + "/chat/completions", {"Content-Type": "application/json"})


async def fetch(pool: http1.Pool, url: str) -> tuple[int, bytes]:
    answer = await pool.fetch(post(url), b"{}", timeout=10.0, connect_timeout=2.0)
    return answer.status, answer.body


async def read_stream(pool: http1.Pool, url: str) -> int:
    """Bytes of a streamed answer read to the end (or until it fails)."""
    response = await pool.stream(post(url), b"{}", read_timeout=10.0, connect_timeout=2.0)
    size = 0
    try:
        while piece := await response.read_some():
            size += len(piece)
    finally:
        response.close()
    return size


# -- through the provider, with the default limits ---------------------------------------------


async def test_a_gzip_bomb_is_a_bad_response_and_never_inflates_in_memory(provider: OpenAICompatibleProvider) -> None:
    bomb = gzip_bomb(512 * MiB)  # 0.5 MB that decodes to 512 MiB
    with serving(whole(bomb, "Content-Encoding: gzip", "Content-Type: application/json")) as upstream, traced() as peak:
        with pytest.raises(UpstreamBadResponse, match="a compression bomb"):
            await provider.complete("chat", target(upstream.url), HELLO)
        assert await upstream.until_hung_up(), "the connection is dropped"
    assert peak() < DEFAULT_BODY, f"{peak() / MiB:.0f} MiB allocated for one answer"


async def test_a_100_mb_body_is_cut_off_at_the_limit(provider: OpenAICompatibleProvider) -> None:
    with serving(zeros(100 * MiB)) as upstream:
        with pytest.raises(UpstreamBadResponse, match=f"the answer exceeds {DEFAULT_BODY} bytes"):
            await provider.complete("chat", target(upstream.url), HELLO)
        assert await upstream.until_hung_up()
    assert upstream.sent < 64 * MiB, "the client stopped reading at the limit (plus what the sockets buffer)"


async def test_a_client_gets_a_502_that_names_the_limit(tmp_path: Path, make_gateway: GatewayFactory) -> None:
    bomb = gzip_bomb(64 * MiB)
    with serving(whole(bomb, "Content-Encoding: gzip", "Content-Type: application/json")) as upstream:
        policy = small_policy(tmp_path / "p", dict.fromkeys("abc", upstream.url))
        with make_gateway(policy, {}) as url:
            answer = httpx.post(
                url + "/v1/chat/completions",
                json={"model": "us-open", "messages": [{"role": "user", "content": "hi"}]},
                headers={"authorization": "Bearer open-key"},
                timeout=30,
            )
    assert answer.status_code == 502
    error = answer.json()["error"]
    assert error["code"] == "upstream_bad_response"
    assert "inflates more than 100 times" in error["message"]


# -- the pool's limits, set small --------------------------------------------------------------


def sized(size: int, encoding: str) -> Callable[[Upstream, socket.socket], None]:
    body = b"x" * size
    return whole(gzipped(body) if encoding == "gzip" else body, f"Content-Encoding: {encoding}")


@pytest.mark.parametrize("encoding", ["identity", "gzip"])
async def test_an_answer_of_the_limit_passes_and_one_byte_more_fails(make_pool: PoolFactory, encoding: str) -> None:
    pool = make_pool(max_body_bytes=1000)
    with serving(sized(1000, encoding)) as upstream:
        assert await fetch(pool, upstream.url) == (200, b"x" * 1000)
    with serving(sized(1001, encoding)) as upstream, pytest.raises(http1.ResponseTooLarge) as failed:
        await fetch(pool, upstream.url)
    assert str(failed.value) == "the answer exceeds 1000 bytes"


@pytest.mark.parametrize("encoding", ["identity", "gzip"])
async def test_a_stream_of_the_limit_passes_and_one_byte_more_fails(make_pool: PoolFactory, encoding: str) -> None:
    pool = make_pool(max_stream_bytes=1000)
    with serving(sized(1000, encoding)) as upstream:
        assert await read_stream(pool, upstream.url) == 1000
    with serving(sized(1001, encoding)) as upstream, pytest.raises(http1.ResponseTooLarge) as failed:
        await read_stream(pool, upstream.url)
    assert str(failed.value) == "the stream exceeds 1000 bytes"


async def test_a_stream_that_never_ends_is_cut_off_at_the_stream_limit(make_pool: PoolFactory) -> None:
    pool = make_pool(max_stream_bytes=MiB)
    with serving(endless(EVENT * 100, "Content-Type: text/event-stream")) as upstream:
        with pytest.raises(http1.ResponseTooLarge, match=f"the stream exceeds {MiB} bytes"):
            await read_stream(pool, upstream.url)
        assert await upstream.until_hung_up(), "the connection is dropped"


async def test_a_stream_piece_that_inflates_past_the_answer_limit_fails(make_pool: PoolFactory) -> None:
    """A stream may send more than a whole answer in all, but never hold that much unread at once."""
    pool = make_pool(max_body_bytes=MiB, max_stream_bytes=1024 * MiB)
    bomb = whole(gzip_bomb(16 * MiB), "Content-Encoding: gzip", "Content-Type: text/event-stream")
    expected = f"the stream inflates to over {MiB} unread bytes at once"
    with serving(bomb) as upstream, pytest.raises(http1.ResponseTooLarge, match=expected):
        await read_stream(pool, upstream.url)


async def test_a_bomb_is_refused_by_its_inflate_ratio_long_before_the_size_limit(make_pool: PoolFactory) -> None:
    """Inflating costs the event loop ~5 ms a MiB: a 1000:1 body stops a few MiB in, not at 32 MiB."""
    pool = make_pool()
    bomb = whole(gzip_bomb(64 * MiB), "Content-Encoding: gzip")
    with serving(bomb) as upstream, pytest.raises(http1.ResponseTooLarge, match="a compression bomb") as failed:
        await fetch(pool, upstream.url)
    assert failed.value.limit == "inflate_ratio"
    assert await upstream.until_hung_up(), "the connection is dropped"


async def test_compressible_answers_past_the_ratio_floor_pass(make_pool: PoolFactory) -> None:
    """JSON text (~10:1) of 8 MiB passes; so does a phrase repeated to 3 MiB (~400:1, under the floor)."""
    pool = make_pool()
    words = b" ".join(b"token%d" % (i * 7919 % 100_003) for i in range(1_200_000))[: 8 * MiB]
    repeated = b"The quick brown fox jumps. " * (3 * MiB // 27)
    for body in (words, repeated):
        with serving(whole(gzipped(body), "Content-Encoding: gzip")) as upstream:
            assert await fetch(pool, upstream.url) == (200, body)


async def test_endless_empty_deflate_blocks_are_cut_off_before_decoding(make_pool: PoolFactory) -> None:
    """A gzip body can send bytes forever that decode to nothing: its encoded size is bounded too."""
    pool = make_pool(max_body_bytes=64 * 1024)
    blocks = endless(EMPTY_BLOCK * 1000, "Content-Encoding: gzip", first=GZIP_HEADER)
    expected = "the answer exceeds 65536 bytes before gzip decoding"
    with serving(blocks) as upstream, pytest.raises(http1.ResponseTooLarge, match=expected):
        await fetch(pool, upstream.url)


async def test_a_streamed_error_body_is_read_only_up_to_the_answer_limit(make_pool: PoolFactory) -> None:
    pool = make_pool(max_body_bytes=1000)
    with serving(whole(b"e" * 5000, status=500)) as upstream:
        response = await pool.stream(post(upstream.url), b"{}", read_timeout=5.0, connect_timeout=2.0)
        with pytest.raises(http1.ResponseTooLarge, match="the answer exceeds 1000 bytes"):
            await response.read()
        assert await upstream.until_hung_up(), "the connection is dropped"


def test_the_limits_are_at_least_one_byte() -> None:
    with pytest.raises(ValueError, match="at least one byte"):
        http1.Pool(max_body_bytes=0)
