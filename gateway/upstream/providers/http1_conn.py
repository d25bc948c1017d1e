"""One HTTP/1.1 client connection: an asyncio protocol fed to the httptools response parser.

It runs one exchange at a time for :mod:`gateway.upstream.providers.http1`'s pool: ``send`` writes a request,
then ``complete`` waits for the whole answer (under a deadline) or ``head`` and ``read_some`` follow
a stream (each wait for bytes under a read timeout). Bodies are decoded as they arrive, never past a
size limit (``max_body`` for a whole answer, ``max_stream`` for a stream): an upstream that sends more,
or a small gzip body that inflates to more, fails with :class:`ResponseTooLarge` before it can fill
the gateway's memory.
"""

from __future__ import annotations

import asyncio
import ssl
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final, cast

import httptools

from gateway.upstream.providers.network import Proxy

MAX_HEAD_BYTES: Final = 64 * 1024  # an answer's status line and headers (aiohttp: 8 KiB a line; h11: 16 KiB)
_HIGH_WATER: Final = 1 << 20  # unread stream bytes at which reading pauses
_DECODERS: Final = {b"gzip": 31, b"x-gzip": 31, b"deflate": 15}  # Content-Encoding -> zlib wbits
_NO_BODY: Final = (204, 304)
# An encoded body may inflate this many times its wire size, once past the floor: JSON answers compress 3-20:1
# (a model stuck repeating one phrase, ~400:1), a gzip bomb ~1000:1. Inflating costs CPU on the event loop
# (~5 ms a MiB), so a bomb is refused after a few MiB rather than at the size limit.
MAX_INFLATE_RATIO: Final = 100
INFLATE_RATIO_FLOOR: Final = 4 * 1024 * 1024


class HttpError(Exception):
    """The exchange failed for a reason on the upstream's side of the wire."""


class ConnectionClosed(HttpError):
    """The upstream closed the connection before the response was complete."""


class ProtocolError(HttpError):
    """The upstream's bytes are not an HTTP/1.1 response."""


class ContentError(HttpError):
    """The body cannot be decoded: an unsupported or corrupt ``Content-Encoding``."""


class ResponseTooLarge(ContentError):
    """The body (decoded, or still encoded on the wire) is over the connection's size limit.

    ``limit`` names which, for metrics: ``answer_bytes``, ``stream_bytes``, ``encoded_bytes`` (before
    decoding), ``unread_bytes`` (a small piece that inflates past what may wait unread), ``inflate_ratio`` (a
    compression bomb) or ``head_bytes``."""

    def __init__(self, message: str, limit: str = "answer_bytes") -> None:
        super().__init__(message)
        self.limit = limit


class InvalidRequest(HttpError):
    """The URL or a header cannot be sent (not http(s), no host, a line break in a header)."""


class PoolClosed(HttpError):
    """The pool was closed (the gateway is shutting down)."""


@dataclass(frozen=True, slots=True)
class Origin:
    """Where connections go, and how: connections are pooled (and reused) per distinct origin."""

    scheme: str
    host: str
    port: int
    proxy: Proxy | None = None  # connect through this HTTP proxy (CONNECT for https)
    tls: ssl.SSLContext | None = None  # https: this context instead of the pool's default


class Connection(asyncio.Protocol):
    """One keep-alive connection: one exchange at a time, parsed as bytes arrive."""

    def __init__(
        self, origin: Origin, on_idle_lost: Callable[[Connection], None], *, max_body: int, max_stream: int
    ) -> None:
        self.origin = origin
        self._max_body = max_body
        self._max_stream = max_stream
        self.lost = False
        self.busy = True  # an idle connection is not busy: bytes arriving then are an error
        self.used = False  # has completed an exchange: a failure may be a stale keep-alive connection
        self.idle_since = 0.0
        self._on_idle_lost = on_idle_lost
        self._loop = asyncio.get_running_loop()
        self._parser = httptools.HttpResponseParser(self)
        self._transport: asyncio.Transport | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._waiter: asyncio.Future[None] | None = None
        self._read_timeout = 0.0
        self._wait_start = 0.0
        self._begin(streaming=False)

    def _begin(self, *, streaming: bool) -> None:
        self.status = 0
        self._head_bytes = 0
        self.head_done = self.done = self.got_bytes = self.keep_alive = self._paused = False
        self.error: BaseException | None = None
        self._streaming = streaming
        self._body: list[bytes] = []
        self._buffered = 0
        self._limit = self._max_stream if streaming else self._max_body
        self._on_head_state()

    def _on_head_state(self) -> None:
        self._encoding = b""
        self.retry_after: bytes | None = None  # the answer's Retry-After header, as sent
        self._framed = False  # Content-Length or chunked: the body does not end at EOF
        self._decoder: zlib._Decompress | None = None
        self._extra = False  # bytes after the end of the response
        self._size = 0  # decoded body bytes so far; never more than self._limit + 1
        self._wire = 0  # encoded body bytes so far (an encoded body only)

    # -- exchanges ---------------------------------------------------------------------------
    def send(self, request: bytes, *, streaming: bool) -> None:
        self._begin(streaming=streaming)
        self.busy = True
        if self.closing():  # closed since the pool handed it out
            self._fail(ConnectionClosed("the connection closed before the request was sent"))
            return
        try:
            cast(asyncio.Transport, self._transport).write(request)
        except RuntimeError:  # uvloop: the handle closed before connection_lost was called
            self._fail(ConnectionClosed("the connection closed before the request was sent"))

    async def complete(self, deadline: float) -> tuple[int, bytes]:
        self._timer = self._loop.call_at(deadline, self._expire)
        while not self.done and self.error is None:
            await self._wait()
        if self.error is not None:
            raise self.error
        body, self._body = self._body, []
        return self.status, body[0] if len(body) == 1 else b"".join(body)

    async def head(self, read_timeout: float) -> None:
        self._read_timeout = read_timeout
        while not self.head_done:
            await self._wait_read()

    async def read_some(self) -> bytes:
        """The next decoded body bytes; ``b""`` once the response is complete."""
        while not self._body:
            if self.done:
                return b""
            await self._wait_read()
        body, self._body = self._body, []
        if self._paused:
            self._paused = False
            self._buffered = 0
            cast(asyncio.Transport, self._transport).resume_reading()
        self._buffered = 0
        return body[0] if len(body) == 1 else b"".join(body)

    def shorten_reads(self, seconds: float) -> None:
        if seconds < self._read_timeout:
            self._read_timeout = seconds
            self._cancel_timer()

    async def _wait_read(self) -> None:
        if self.error is not None:
            raise self.error
        self._wait_start = self._loop.time()
        if self._timer is None:
            self._timer = self._loop.call_at(self._wait_start + self._read_timeout, self._idle_check)
        await self._wait()
        if self.error is not None:
            raise self.error

    async def _wait(self) -> None:
        self._waiter = waiter = self._loop.create_future()
        try:
            await waiter
        finally:
            self._waiter = None

    def _expire(self) -> None:
        self._timer = None
        self._fail(TimeoutError())

    def _idle_check(self) -> None:
        """A stream read waited ``read_timeout`` with no byte: time out (one timer serves many reads)."""
        self._timer = None
        if self._waiter is None or self.done or self.error is not None:
            return  # not waiting now: the next wait arms a timer again
        due = self._wait_start + self._read_timeout
        if self._loop.time() + 0.001 < due:
            self._timer = self._loop.call_at(due, self._idle_check)
        else:
            self._fail(TimeoutError())

    def closing(self) -> bool:
        return self.lost or self._transport is None or self._transport.is_closing()

    def ended_cleanly(self) -> bool:
        """The answer is complete and nothing came after it (the connection may still have been closed)."""
        return self.done and self.error is None and not self._extra

    def reusable(self) -> bool:
        return self.done and self.keep_alive and self.error is None and not self._extra and not self.closing()

    def park(self, now: float) -> None:
        """Idle in the pool: a byte or an EOF from now on ends the connection."""
        self.busy = False
        self.used = True
        self.idle_since = now
        self._body = []
        if self._paused:
            self._paused = False
            cast(asyncio.Transport, self._transport).resume_reading()

    def abort(self) -> None:
        self._cancel_timer()
        if self._transport is not None:
            self._transport.abort()

    # -- failure ---------------------------------------------------------------------------
    def _fail(self, error: BaseException) -> None:
        if self.error is None and not self.done:
            self.error = error
        self.abort()
        self._wake()

    def _cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def _finish(self) -> None:
        if self._decoder is not None:
            try:
                tail = self._decoder.flush()
            except zlib.error:
                self._fail(ContentError(f"the {self._encoding.decode()} body is corrupt"))
                return
            self._size += len(tail)
            if self._size > self._limit:
                self._too_large()
                return
            if tail:
                self._body.append(tail)
        self.done = True
        self._cancel_timer()
        self._wake()

    # -- asyncio protocol ------------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        if not self.busy:
            self.abort()  # an idle connection has nothing to say; the pool drops it in connection_lost
            return
        self.got_bytes = True
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            self._fail(ProtocolError("the upstream switched protocols"))
        except httptools.HttpParserError as exc:
            self._fail(ProtocolError(f"malformed HTTP response: {exc}"))
        if not self.head_done:
            self._head_bytes += len(data)
            if self._head_bytes > MAX_HEAD_BYTES and self.error is None:
                self._fail(ResponseTooLarge(f"the answer's head exceeds {MAX_HEAD_BYTES} bytes", "head_bytes"))

    def eof_received(self) -> bool:
        self._eof()
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = True
        self._cancel_timer()
        if not self.busy:
            self._on_idle_lost(self)
            return
        if exc is None:
            self._eof()
        if not self.done:
            self._fail(exc or ConnectionClosed("the upstream closed the connection before the response was complete"))

    def _eof(self) -> None:
        if self.busy and self.head_done and not self.done and not self._framed and self.error is None:
            self._finish()  # a body delimited by the end of the connection

    # -- httptools callbacks ---------------------------------------------------------------
    def on_message_begin(self) -> None:
        if self.done:
            self._extra = True

    def on_header(self, name: bytes, value: bytes) -> None:
        name = name.lower()
        if name == b"content-encoding":
            self._encoding = value.strip().lower()
        elif name == b"content-length" or (name == b"transfer-encoding" and b"chunked" in value.lower()):
            self._framed = True
        elif name == b"retry-after":
            self.retry_after = value

    def on_headers_complete(self) -> None:
        if self._extra:
            return
        self.status = status = self._parser.get_status_code()
        if 100 <= status < 200:
            return  # an interim answer: the real one follows
        self._framed = self._framed or status in _NO_BODY
        self.keep_alive = self._framed and self._parser.should_keep_alive()
        if self._encoding and self._encoding != b"identity":
            wbits = _DECODERS.get(self._encoding)
            if wbits is None:
                self._fail(ContentError(f"unsupported Content-Encoding {self._encoding.decode('latin-1')!r}"))
                return
            self._decoder = zlib.decompressobj(wbits)
        self.head_done = True
        if self._streaming:
            self._wake()

    def on_body(self, body: bytes) -> None:
        if self._extra or self.error is not None:
            return
        if self._decoder is not None:
            body = self._inflate(self._decoder, body)
            if not body:
                return  # b"" would read as the end of the body (or the body failed)
        self._size += len(body)
        if self._size > self._limit:
            self._too_large()
            return
        self._body.append(body)
        if self._streaming:
            self._buffered += len(body)
            if self._buffered > _HIGH_WATER and not self._paused:
                self._paused = True
                cast(asyncio.Transport, self._transport).pause_reading()
            waiter = self._waiter  # _wake() inlined: this runs once per stream event
            if waiter is not None and not waiter.done():
                waiter.set_result(None)

    def _inflate(self, decoder: zlib._Decompress, data: bytes) -> bytes:
        """Decode ``data`` at most one byte past what may be held: a gzip bomb never inflates further in memory.

        A whole answer may hold its limit; a stream its limit in all, and unread at once no more than
        a whole answer (a small gzip piece can inflate a thousandfold, past any pause in reading).
        Input left undecoded (``unconsumed_tail``) goes with the dropped connection.
        """
        self._wire += len(data)
        if self._wire > self._limit:  # e.g. endless empty deflate blocks, which decode to nothing
            self._too_large(f"exceeds {self._limit} bytes before {self._encoding.decode()} decoding", "encoded_bytes")
            return b""
        room = self._limit - self._size
        if self._streaming and self._max_body - self._buffered < room:
            room = max(self._max_body - self._buffered, 0)
        ratio_room = max(INFLATE_RATIO_FLOOR, MAX_INFLATE_RATIO * self._wire) - self._size
        by_ratio = ratio_room < room
        if by_ratio:
            room = max(ratio_room, 0)
        try:
            body = decoder.decompress(data, room + 1)  # max_length 0 would mean no limit
        except zlib.error:
            self._fail(ContentError(f"the {self._encoding.decode()} body is corrupt"))
            return b""
        if len(body) > room:
            if by_ratio:
                self._too_large(
                    f"inflates more than {MAX_INFLATE_RATIO} times its {self._wire} bytes of "
                    f"{self._encoding.decode()} (past {INFLATE_RATIO_FLOOR} bytes): a compression bomb",
                    "inflate_ratio",
                )
            elif self._size + len(body) > self._limit:
                self._too_large()
            else:
                self._too_large(f"inflates to over {self._max_body} unread bytes at once", "unread_bytes")
            return b""
        return body

    def _too_large(self, why: str = "", limit: str = "") -> None:
        if not self._streaming:
            self._body = []  # nobody will read it: free it now, not when the connection is collected
        what = "stream" if self._streaming else "answer"
        limit = limit or f"{what}_bytes"
        self._fail(ResponseTooLarge(f"the {what} {why or f'exceeds {self._limit} bytes'}", limit))

    def on_message_complete(self) -> None:
        if self._extra or self.error is not None:
            return
        if 100 <= self.status < 200:
            self._on_head_state()
            return
        self._finish()
