"""A lean HTTP/1.1 client for JSON POSTs: a keep-alive pool of asyncio connections parsed by httptools.

Built for the OpenAI-compatible adapter's hot path, where aiohttp's client cost ~76 µs of CPU per
request. The surface is small: :meth:`Post.to` precomputes a request head once per URL and header
set; :meth:`Pool.fetch` sends a body and returns ``(status, body)``; :meth:`Pool.stream` returns a
:class:`Response` read piece by piece, then released (reused if read to the end) or closed.

Connections are pooled per origin (scheme, host, port, proxy, TLS context) and bounded in total.
Through an HTTP proxy an http upstream is asked in absolute form and an https one is tunnelled with
``CONNECT`` (:mod:`.http1_tunnel`), TLS running end to end with the upstream. One is reused only
after a complete keep-alive response; after an error, a timeout, ``Connection: close``, an unread or
abandoned body it is closed. Answers are bounded: the head at most ``MAX_HEAD_BYTES``, a whole answer
(decoded) at most ``max_body_bytes``, a stream at most ``max_stream_bytes`` in all; over that the
connection is dropped and the exchange fails with :class:`ResponseTooLarge`. A request that fails on a
reused connection before any response byte arrives (the upstream closed it while idle) is retried once
on a fresh connection. Failures surface as ``TimeoutError``, ``OSError`` (refused, reset, TLS) or an
:class:`HttpError` (:class:`ProxyError` when a proxy refused the tunnel); nothing else leaves this
module except ``CancelledError``.
"""

from __future__ import annotations

import asyncio
import socket
import ssl
import time
from collections import deque
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from ipaddress import ip_address
from typing import Final, NamedTuple
from urllib.parse import quote, urlsplit

from gateway.upstream.providers.http1_conn import (
    MAX_HEAD_BYTES,
    Connection,
    ConnectionClosed,
    ContentError,
    HttpError,
    InvalidRequest,
    Origin,
    PoolClosed,
    ProtocolError,
    ResponseTooLarge,
)
from gateway.upstream.providers.http1_tunnel import ProxyError, tunnel
from gateway.upstream.providers.network import Proxy

__all__ = [
    "MAX_HEAD_BYTES",
    "Answer",
    "ConnectionClosed",
    "ContentError",
    "HttpError",
    "InvalidRequest",
    "Origin",
    "Pool",
    "PoolClosed",
    "Post",
    "ProtocolError",
    "ProxyError",
    "Response",
    "ResponseTooLarge",
]

MAX_BODY_BYTES: Final = 32 * 1024 * 1024  # a whole answer, decoded: far above any chat completion
MAX_STREAM_BYTES: Final = 256 * 1024 * 1024  # a stream in all, decoded: ~ a million tokens of events
_IDLE_SECONDS: Final = 15.0  # an idle connection older than this is closed rather than reused
_DNS_SECONDS: Final = 300.0
_CLOSED_AFTER_ANSWER_SECONDS: Final = 0.5  # an idle connection lost this soon after its answer: closed after each
_WARM_CONNECT_SECONDS: Final = 5.0
_LENGTH: Final = b"\r\nContent-Length: "
_Waiter = tuple[Origin, "asyncio.Future[Connection | None]"]  # None: a free slot to connect with


@dataclass(frozen=True, slots=True)
class Post:
    """A POST to one URL with fixed headers, precomputed up to the ``Content-Length`` value."""

    origin: Origin
    head: bytes

    @classmethod
    def to(
        cls,
        url: str,
        headers: Mapping[str, str],
        *,
        proxy: Proxy | None = None,
        tls: ssl.SSLContext | None = None,
        method: str = "POST",
    ) -> Post:
        """``proxy``: connect through it (an http URL is asked for in absolute form, an https one tunnelled);
        ``tls``: the context for an https URL instead of the pool's default."""
        parts = urlsplit(url)
        try:
            port = parts.port
        except ValueError:
            raise InvalidRequest(f"bad port in {url!r}") from None
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise InvalidRequest(f"not an http(s) URL: {url!r}")
        host = parts.hostname
        authority = (f"[{host}]" if ":" in host else host) + (f":{port}" if port else "")
        path = quote(parts.path or "/", safe="/%:@!$&'()*+,;=-._~") + (f"?{parts.query}" if parts.query else "")
        if any("\r" in text or "\n" in text for text in (path, *headers.keys(), *headers.values())):
            raise InvalidRequest("the path or a header holds a line break")
        lines = [f"{method} {path} HTTP/1.1", f"Host: {authority}"]
        if proxy is not None and parts.scheme == "http":  # RFC 9112 §3.2.2: absolute form, to a proxy
            lines[0] = f"{method} http://{authority}{path} HTTP/1.1"
            if proxy.authorization:
                lines.append(f"Proxy-Authorization: {proxy.authorization}")
        text = "\r\n".join([*lines, *(f"{k}: {v}" for k, v in headers.items())])
        try:
            head = (text + "\r\nContent-Length: ").encode("latin-1")
        except UnicodeEncodeError:
            raise InvalidRequest("a header is not latin-1 text") from None
        default_port = 443 if parts.scheme == "https" else 80
        origin = Origin(parts.scheme, host, port or default_port, proxy, tls if parts.scheme == "https" else None)
        return cls(origin, head)

    def encode(self, body: bytes) -> bytes:
        return b"%b%d\r\n\r\n%b" % (self.head, len(body), body)

    def with_header(self, name: str, value: str) -> Post:
        """The same POST with one more header (a value already checked: latin-1, no line break)."""
        head = self.head[: -len(_LENGTH)] + f"\r\n{name}: {value}".encode("latin-1") + _LENGTH
        return Post(self.origin, head)


class Answer(NamedTuple):
    status: int
    body: bytes
    retry_after: float | None  # seconds, from a Retry-After header (delay-seconds or an HTTP date)


def retry_after_seconds(value: bytes | None) -> float | None:
    """A Retry-After header's wait in seconds (RFC 9110: delay-seconds or an HTTP date), or None."""
    if not value:
        return None
    text = value.decode("latin-1").strip()
    if text.isdigit():
        return float(text)
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError):
        return None
    return max(when.timestamp() - time.time(), 0.0)


class Response:
    """A streamed answer: ``read_some()`` until ``b""``, then ``release()``; ``close()`` abandons it."""

    __slots__ = ("_conn", "_max_read", "_pool", "read_some", "retry_after", "status")

    def __init__(self, pool: Pool, conn: Connection, max_read: int) -> None:
        self.status = conn.status
        self.retry_after = retry_after_seconds(conn.retry_after)
        self._max_read = max_read
        self.read_some: Callable[[], Awaitable[bytes]] = conn.read_some
        self._pool = pool
        self._conn: Connection | None = conn

    async def read(self) -> bytes:
        """The rest of the body, held in memory, so no longer than a whole answer may be."""
        pieces, size = [], 0
        while piece := await self.read_some():
            size += len(piece)
            if size > self._max_read:
                self.close()
                raise ResponseTooLarge(f"the answer exceeds {self._max_read} bytes")
            pieces.append(piece)
        return b"".join(pieces)

    async def drain(self, timeout: float) -> None:
        """Read to the end (waiting at most ``timeout`` per read) so that the connection can be reused."""
        if self._conn is None:
            return
        self._conn.shorten_reads(timeout)
        try:
            while await self.read_some():
                pass
        except (HttpError, OSError):
            pass  # release() closes an incomplete connection

    def release(self) -> None:
        """Back to the pool if the response was read to the end, else closed."""
        if self._conn is not None:
            self._pool.release(self._conn)
            self._conn = None

    def close(self) -> None:
        """Closed whatever its state: the caller abandoned the stream."""
        if self._conn is not None:
            self._pool.drop(self._conn)
            self._conn = None


class Pool:
    """Keep-alive connections per origin, at most ``max_connections`` open (connecting, busy or idle).

    ``max_body_bytes`` bounds a whole answer (:meth:`fetch`, :meth:`Response.read`) and
    ``max_stream_bytes`` everything one stream sends, both counted after decoding.
    """

    def __init__(
        self,
        *,
        max_connections: int = 512,
        ssl_context: ssl.SSLContext | None = None,
        max_body_bytes: int = MAX_BODY_BYTES,
        max_stream_bytes: int = MAX_STREAM_BYTES,
    ) -> None:
        if max_body_bytes < 1 or max_stream_bytes < 1:
            raise ValueError("the body size limits must be at least one byte")
        self._max = max_connections
        self._max_body = max_body_bytes
        self._max_stream = max_stream_bytes
        self._ssl = ssl_context
        self._open = 0
        self._all: set[Connection] = set()
        self._idle: dict[Origin, list[Connection]] = {}
        self._waiters: deque[_Waiter] = deque()
        self._dns: dict[tuple[str, int], tuple[float, list[str]]] = {}
        self._closed = False
        self._warming: set[Origin] = set()  # origins a connection is being opened for ahead of a request
        self._unproven: set[Connection] = set()  # opened ahead, not yet used: its loss opens no other
        self._tasks: set[asyncio.Task[None]] = set()

    async def fetch(self, post: Post, body: bytes, *, timeout: float, connect_timeout: float) -> Answer:
        """Send ``body``; the status and the whole (decoded) answer within ``timeout`` seconds."""
        deadline = asyncio.get_running_loop().time() + timeout
        conn, answer = await self._exchange(post, body, min(connect_timeout, timeout), deadline, 0.0)
        retry_after = retry_after_seconds(conn.retry_after)
        self.release(conn)
        assert answer is not None
        return Answer(answer[0], answer[1], retry_after)

    async def stream(self, post: Post, body: bytes, *, read_timeout: float, connect_timeout: float) -> Response:
        """Send ``body``; a :class:`Response` once the answer's head arrived (each read waits ≤ ``read_timeout``)."""
        conn, _ = await self._exchange(post, body, connect_timeout, None, read_timeout)
        return Response(self, conn, self._max_body)

    async def aclose(self) -> None:
        self._closed = True
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        for conn in list(self._all):
            conn.abort()
        self._all.clear()
        self._idle.clear()
        while self._waiters:
            _, waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)  # it finds the pool closed when it connects
        await asyncio.sleep(0)  # let the transports finish closing

    async def _exchange(
        self, post: Post, body: bytes, connect_timeout: float, deadline: float | None, read_timeout: float
    ) -> tuple[Connection, tuple[int, bytes] | None]:
        """Send the request and wait for the whole answer (by ``deadline``) or, for a stream, its head.

        A failure on a reused connection before any response byte is retried once on a fresh one.
        """
        request = post.encode(body)
        loop = asyncio.get_running_loop()
        conn = await self._acquire(post.origin, loop.time() + connect_timeout)
        for retry in (False, True):
            try:
                conn.send(request, streaming=deadline is None)
                if deadline is None:
                    await conn.head(read_timeout)
                    return conn, None
                return conn, await conn.complete(deadline)
            except (ConnectionClosed, OSError) as exc:
                if retry or not conn.used or conn.got_bytes or isinstance(exc, TimeoutError):
                    self.drop(conn)
                    raise
            except BaseException:
                self.drop(conn)
                raise
            connect_by = loop.time() + connect_timeout
            conn = await self._replace(conn, connect_by if deadline is None else min(connect_by, deadline))
        raise AssertionError("unreachable: the second try returns or raises")

    # -- the pool ---------------------------------------------------------------------------
    def release(self, conn: Connection) -> None:
        if not conn.reusable():
            closed_after_answer = conn.ended_cleanly()  # "Connection: close", or EOF right after the answer
            self.drop(conn)
            if closed_after_answer:
                self._open_ahead(conn.origin)
            return
        self._park(conn)

    def _park(self, conn: Connection) -> None:
        """Idle in the pool, or straight to a request waiting for a connection to its origin."""
        conn.park(asyncio.get_running_loop().time())
        while self._waiters:
            origin, waiter = self._waiters[0]
            if waiter.done():
                self._waiters.popleft()
            elif origin == conn.origin:
                self._waiters.popleft()
                conn.busy = True
                waiter.set_result(conn)
                return
            else:
                self.drop(conn)  # its slot serves a waiter for another origin
                return
        self._idle.setdefault(conn.origin, []).append(conn)

    def drop(self, conn: Connection) -> None:
        conn.abort()
        if conn in self._all:
            self._all.discard(conn)
            self._free_slot()

    def _lost_idle(self, conn: Connection) -> None:
        idle = self._idle.get(conn.origin)
        if idle and conn in idle:
            idle.remove(conn)
        self.drop(conn)
        if conn in self._unproven:
            self._unproven.discard(conn)
        elif asyncio.get_running_loop().time() - conn.idle_since < _CLOSED_AFTER_ANSWER_SECONDS:
            self._open_ahead(conn.origin)

    def _open_ahead(self, origin: Origin) -> None:
        """Open a connection for the next request to an upstream that closed one right after its answer.

        llama.cpp's server closes the connection after every streamed answer, so each stream would wait for
        a connect (bench/real_upstream.py: ~0.1-0.3 ms of time to first token). One connection per origin is
        opened ahead, only when none is idle and the pool has room; one that the upstream closes before it
        was used opens no other, so an upstream that refuses idle connections costs one connect per answer."""
        if self._closed or origin in self._warming or self._idle.get(origin) or self._open >= self._max:
            return
        self._open += 1
        self._warming.add(origin)
        task = asyncio.get_running_loop().create_task(self._warm(origin))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _warm(self, origin: Origin) -> None:
        try:
            conn = await self._connect(origin, asyncio.get_running_loop().time() + _WARM_CONNECT_SECONDS)
        except (OSError, HttpError):
            self._free_slot()  # the next request connects (and fails) on its own
            return
        except asyncio.CancelledError:
            self._free_slot()
            raise
        finally:
            self._warming.discard(origin)
        self._unproven.add(conn)
        self._park(conn)

    def _free_slot(self) -> None:
        while self._waiters:
            _, waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)  # the slot passes to the waiter
                return
        self._open -= 1

    async def _acquire(self, origin: Origin, connect_by: float) -> Connection:
        if self._closed:
            raise PoolClosed("the connection pool is closed")
        conn = self._take_idle(origin)
        if conn is not None:
            return conn
        while self._waiters and self._waiters[0][1].done():
            self._waiters.popleft()
        if self._open >= self._max and not self._waiters:
            self._evict_idle()
        if self._open < self._max and not self._waiters:
            self._open += 1
        else:
            conn = await self._wait_slot(origin, connect_by)
            if conn is not None:
                return conn
        try:
            return await self._connect(origin, connect_by)
        except BaseException:
            self._free_slot()
            raise

    async def _replace(self, stale: Connection, connect_by: float) -> Connection:
        """A fresh connection in the slot of a stale one."""
        stale.abort()
        self._all.discard(stale)
        try:
            return await self._connect(stale.origin, connect_by)
        except BaseException:
            self._free_slot()
            raise

    def _take_idle(self, origin: Origin) -> Connection | None:
        idle = self._idle.get(origin)
        if not idle:
            return None
        now = asyncio.get_running_loop().time()
        while idle:
            conn = idle.pop()
            if conn.closing() or now - conn.idle_since > _IDLE_SECONDS:
                self._unproven.discard(conn)
                self.drop(conn)
                continue
            conn.busy = True
            self._unproven.discard(conn)
            return conn
        return None

    def _evict_idle(self) -> None:
        """Close the longest-idle connection of any origin to make room."""
        oldest = min((idle[0] for idle in self._idle.values() if idle), key=lambda c: c.idle_since, default=None)
        if oldest is not None:
            self._idle[oldest.origin].remove(oldest)
            self.drop(oldest)

    async def _wait_slot(self, origin: Origin, connect_by: float) -> Connection | None:
        waiter: asyncio.Future[Connection | None] = asyncio.get_running_loop().create_future()
        self._waiters.append((origin, waiter))
        try:
            async with asyncio.timeout_at(connect_by):
                return await waiter
        except BaseException:
            if waiter.done() and not waiter.cancelled():  # handed over just as this wait ended: give it back
                got = waiter.result()
                if got is None:
                    self._free_slot()
                else:
                    self.release(got)
            waiter.cancel()
            raise

    async def _connect(self, origin: Origin, connect_by: float) -> Connection:
        if self._closed:
            raise PoolClosed("the connection pool is closed")
        loop = asyncio.get_running_loop()
        tls = (origin.tls or self._tls()) if origin.scheme == "https" else None
        proxy = origin.proxy
        host, port = (proxy.host, proxy.port) if proxy else (origin.host, origin.port)
        error: Exception = ConnectionClosed(f"no address for {host}")
        async with asyncio.timeout_at(connect_by):
            for address in await self._addresses(host, port):
                try:
                    if proxy is not None and tls is not None:
                        sock = await tunnel(address, proxy, origin.host, origin.port)
                        _, conn = await loop.create_connection(
                            self._new_connection(origin), sock=sock, ssl=tls, server_hostname=origin.host
                        )
                    else:
                        _, conn = await loop.create_connection(
                            self._new_connection(origin),
                            address,
                            port,
                            ssl=tls,
                            server_hostname=origin.host if tls else None,
                        )
                except OSError as exc:
                    error = exc
                    continue
                self._all.add(conn)
                return conn
        raise error

    def _new_connection(self, origin: Origin) -> Callable[[], Connection]:
        return lambda: Connection(origin, self._lost_idle, max_body=self._max_body, max_stream=self._max_stream)

    async def _addresses(self, host: str, port: int) -> list[str]:
        """A host's addresses, resolved at most every five minutes."""
        try:
            ip_address(host)
        except ValueError:
            pass
        else:
            return [host]
        loop = asyncio.get_running_loop()
        key = (host, port)
        cached = self._dns.get(key)
        if cached is not None and cached[0] > loop.time():
            return cached[1]
        infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        addresses = list(dict.fromkeys(str(info[4][0]) for info in infos))
        self._dns[key] = (loop.time() + _DNS_SECONDS, addresses)
        return addresses

    def _tls(self) -> ssl.SSLContext:
        if self._ssl is None:
            self._ssl = ssl.create_default_context()
            self._ssl.set_alpn_protocols(["http/1.1"])
        return self._ssl
