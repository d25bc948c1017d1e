"""uvicorn's HTTP/1.1 protocol (httptools), with limits at the edge and a response's head and body in one write.

Limits (issue #18: without them, one client without a valid key could hold gigabytes of memory
and thousands of sockets). Per connection, cheap enough for the hot path (a few counters and one
timer per request):

- a request's head (request target and header lines) is at most ``max_header_bytes`` and
  ``max_headers`` lines, else ``431`` and the connection is closed. httptools buffers one header's
  value until the next header starts, so the bytes of a head still unfinished after a read are
  counted as they arrive, not only once parsed;
- a connection that sends no request within ``idle_timeout_seconds`` of opening or of its last
  answer is closed (uvicorn's keep-alive timeout, also for a fresh connection, and not put off by
  bytes that begin no request, such as bare CRLFs);
- a request's head must be complete within ``header_timeout_seconds`` of its first byte, else
  ``408`` and close: a deadline, so dripping a header line a second does not extend it;
- a request's body must not pause for ``body_timeout_seconds``, nor fall behind
  ``min_body_bytes_per_second`` on average after its first ``body_timeout_seconds`` (a pause
  timeout alone lets a client drip a byte a second for ever; the allowance is Apache
  mod_reqtimeout's ``body=…,MinRate=…``), else the connection is closed and the app sees a
  disconnect. Time the server spends not reading (the app behind, pipelining) does not count;
- beyond ``max_connections`` open connections in this process, a new one gets ``503`` and is
  closed (the next ``TURN_AWAY_SLACK`` gently, so that they read the 503; any more at once, so the
  process never holds more than the two together). uvicorn's ``limit_concurrency`` is not enough:
  it answers 503 only to a *request*, so connections that never send one would still hold a file
  descriptor each.

Draining (:mod:`gateway.http.drain`): once the process has begun to drain, every answer, on a new
connection or a kept-alive one, carries ``Connection: close`` and closes its connection once it is out.

Joined writes: uvicorn writes the status line and headers as soon as the app sends
``http.response.start``, and the body with the next message: two writes, so two trips through the
loopback TCP stack, for every answer (strace of one proxied request: read, write upstream, read
upstream, write head, write body).
Here the head waits for the first body write, which in the gateway comes in the same step (a plain
answer's body, or the first events of a stream), and both go out together. If no body write comes in
that step, the head goes out alone at the next turn of the event loop, so nothing is held longer.
Only timing changes: bytes are written in the same order, whatever they are.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, fields
from typing import Any

import httptools
import orjson
from uvicorn.config import Config
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
from uvicorn.server import ServerState

from gateway.http.drain import drain_of

_HEAD_END = b"\r\n\r\n"
_STATUS_LINE = b"HTTP/1.1 "
_CONTINUE = b"HTTP/1.1 100"  # "100 Continue" must go out at once: the client waits for it to send the body


@dataclass(frozen=True, slots=True)
class EdgeLimits:
    """What one connection may take of the process; the defaults are ``gateway serve``'s (README)."""

    max_header_bytes: int = 64 * 1024  # nginx allows 4 x 8 KiB lines, Node 16 KiB in all
    max_headers: int = 100
    idle_timeout_seconds: float = 5.0  # uvicorn's keep-alive default
    header_timeout_seconds: float = 10.0  # nginx client_header_timeout and Node headersTimeout: 60 s
    body_timeout_seconds: float = 30.0  # longest pause between body bytes, and the rate's head start
    min_body_bytes_per_second: int = 1024  # slowest average body, after that head start
    max_connections: int = 4096

    def __post_init__(self) -> None:
        for field in fields(self):
            value = getattr(self, field.name)
            if value <= 0:
                raise ValueError(f"edge limit {field.name} must be greater than 0, not {value!r}")


LINGER_SECONDS = 1.0
TURN_AWAY_SLACK = 64  # connections over the limit that still get their 503 read
_IDLE, _HEAD, _BODY = "idle", "head", "body"  # where a connection is in its current request


class MissingHost(Exception):
    """An HTTP/1.1 request without a Host header: refused with 400, as RFC 9112 says."""


class HeadTooLarge(Exception):
    """Raised from a parser callback to stop parsing a head over the limits."""


class HttpProtocol(HttpToolsProtocol):
    """``uvicorn.Config(http=functools.partial(HttpProtocol, limits=...))``: uvicorn's httptools protocol
    within :class:`EdgeLimits`, whose transport (as uvicorn's request cycles see it) joins a response
    head with the write after it."""

    def __init__(
        self,
        config: Config,
        server_state: ServerState,
        app_state: dict[str, Any],
        _loop: asyncio.AbstractEventLoop | None = None,
        limits: EdgeLimits = EdgeLimits(),
    ) -> None:
        super().__init__(config, server_state, app_state, _loop)
        self.limits = limits
        self.timeout_keep_alive = limits.idle_timeout_seconds  # type: ignore[assignment]
        self._every = min(limits.header_timeout_seconds, limits.body_timeout_seconds)
        self._max_header_bytes, self._max_headers = limits.max_header_bytes, limits.max_headers
        self._timer: asyncio.TimerHandle | None = None  # the next look at the clocks (`_check`)
        self._phase = _IDLE
        self._fresh_head = False  # the head began in the data being parsed now
        self._head_began = 0.0  # loop time of the head's first byte (or of the answer before it)
        self._head_bytes = 0  # request target and header lines parsed so far
        self._unparsed = 0  # bytes of later reads that ended inside the head
        self._body_began = 0.0  # loop time the body's clock started (end of the head)
        self._body_seen = 0.0  # loop time of the last body bytes (or of the head)
        self._body_bytes = 0  # body bytes since the body's clock started
        self._lingering = False  # answered with an error; dropping what still comes, then closing
        self._drain = drain_of(app_state)  # once it has begun, every answer closes its connection

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        if len(self.connections) >= self.limits.max_connections:
            self._turn_away(transport, gently=len(self.connections) < self.limits.max_connections + TURN_AWAY_SLACK)
            return
        super().connection_made(transport)
        self.transport = JoinedHead(transport, self.loop)  # type: ignore[assignment]
        self.timeout_keep_alive_task = self.loop.call_later(self.timeout_keep_alive, self.timeout_keep_alive_handler)

    def connection_lost(self, exc: Exception | None) -> None:
        if self._timer is not None:
            self._timer.cancel()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        """uvicorn's, except that only the start of a request stops the idle timer (bare CRLFs
        do not), and a head is measured as it arrives."""
        if self._lingering:
            return
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserCallbackError as exc:
            if isinstance(exc.__context__, HeadTooLarge):
                self._refuse_head()
            elif isinstance(exc.__context__, MissingHost):
                self._bad_request("An HTTP/1.1 request needs a Host header (RFC 9112, section 3.2).")
            else:
                self._bad_request()
        except httptools.HttpParserUpgrade:
            if self._should_upgrade():
                self.handle_websocket_upgrade()
            else:
                self._unsupported_upgrade_warning()
        except httptools.HttpParserError as exc:
            self._bad_request(f"Invalid HTTP request: {exc}.")
        else:
            if self._phase is _HEAD:
                self._count_unparsed(len(data))

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._unset_keepalive_if_required()
        self._phase = _HEAD
        self._fresh_head = True
        self._head_bytes = self._unparsed = 0
        self._head_began = now = self.loop.time()
        self._look_by(now + self._every)

    def on_url(self, url: bytes) -> None:
        self.url += url
        self._head_bytes += len(url)
        if self._head_bytes > self._max_header_bytes:
            raise HeadTooLarge

    def on_header(self, name: bytes, value: bytes) -> None:
        """uvicorn's (the name lower-cased, the value without trailing whitespace, ``Expect``
        noted), and counted; inlined, as this runs for every header of every request."""
        name = name.lower()
        value = value.rstrip(b" \t")
        if name == b"expect" and value.lower() == b"100-continue":
            self.expect_100_continue = True
        headers = self.headers
        headers.append((name, value))
        self._head_bytes += len(name) + len(value) + 4  # ": " and CRLF
        if self._head_bytes > self._max_header_bytes or len(headers) > self._max_headers:
            raise HeadTooLarge

    def on_headers_complete(self) -> None:
        if not any(name == b"host" for name, _ in self.headers) and self.parser.get_http_version() == "1.1":
            raise MissingHost
        self._phase = _BODY
        self._fresh_head = False
        self._body_began = self._body_seen = self.loop.time()
        self._body_bytes = 0
        super().on_headers_complete()
        if self._drain is not None and self._drain.started is not None:
            self.cycle.keep_alive = False  # draining: this answer says Connection: close

    def on_body(self, body: bytes) -> None:
        self._body_seen = self.loop.time()
        self._body_bytes += len(body)
        super().on_body(body)

    def on_message_complete(self) -> None:
        self._phase = _IDLE
        super().on_message_complete()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if self._phase is not _IDLE:  # the next head or this body is still coming: their clocks, not idle
            self._unset_keepalive_if_required()
            self._head_began = self.loop.time()  # a pipelined head's clock starts once the answer before it is out

    @property
    def receiving(self) -> bool:
        """A request's head has begun and not ended: the app has not seen that request yet."""
        return self._phase is _HEAD

    def drain(self) -> None:
        """The process began to drain: the answer being made closes this connection once it is out.
        An idle connection stays open, for one more request, answered with ``Connection: close``."""
        if self.cycle is not None and not self.cycle.response_complete:
            self.cycle.keep_alive = False

    def _count_unparsed(self, size: int) -> None:
        """httptools holds a header's value until the next header begins, so a head unfinished after
        a read is also measured by the reads that ended inside it (all of them head bytes, except
        perhaps some of the read it began in, which is left out)."""
        if self._fresh_head:
            self._fresh_head = False
            return
        self._unparsed += size
        if self._unparsed > self.limits.max_header_bytes:
            self._refuse_head()

    def _answering(self) -> bool:
        return self.cycle is not None and not self.cycle.response_complete

    def _look_by(self, when: float) -> None:
        """Have ``_check`` run no later than ``when``. One timer per connection, not per request: a
        pending one that runs sooner is left as it is (it looks, and sleeps again if it is early)."""
        timer = self._timer
        if timer is not None:
            if timer.when() <= when:
                return
            timer.cancel()
        self._timer = self.loop.call_at(when, self._check)

    def _check(self) -> None:
        """Is the head late, or the body paused or too slow? Answer or close. Requests only note
        times and counts; this looks at them, and sleeps again until the next deadline."""
        self._timer = None
        if self.transport.is_closing() or self._phase is _IDLE:
            return  # idle between requests is uvicorn's keep-alive timer's
        now = self.loop.time()
        due = self._head_due(now) if self._phase is _HEAD else self._body_due(now)
        if due > now:
            self._look_by(due)
        elif self._phase is _HEAD:
            self._head_timed_out()
        else:
            self.logger.debug("Request body paused or too slow; closing the connection.")
            self.transport.close()

    def _head_due(self, now: float) -> float:
        if self._answering():  # pipelined: not the client's delay
            self._head_began = now
        return self._head_began + self.limits.header_timeout_seconds

    def _body_due(self, now: float) -> float:
        """The sooner of: the pause deadline, and the rate deadline (``body_timeout_seconds`` plus a
        second per ``min_body_bytes_per_second`` received)."""
        limits = self.limits
        if self.flow.read_paused:  # the server is not reading (the app is behind): the client's clocks restart
            self._body_began = self._body_seen = now
            self._body_bytes = 0
        paused = self._body_seen + limits.body_timeout_seconds
        slow = self._body_began + limits.body_timeout_seconds + self._body_bytes / limits.min_body_bytes_per_second
        return min(paused, slow)

    def _head_timed_out(self) -> None:
        seconds = self.limits.header_timeout_seconds
        self.logger.debug("Request headers incomplete after %s s; closing the connection.", seconds)
        message = f"The request headers did not arrive within {seconds:g} s."
        self._close_with(408, "invalid_request_error", "request_timeout", message)

    def _refuse_head(self) -> None:
        limits = self.limits
        self.logger.debug(
            "Request head over %d bytes or %d lines; answering 431.", limits.max_header_bytes, limits.max_headers
        )
        message = (
            f"The request's headers exceed the limit of {limits.max_header_bytes} bytes "
            f"or {limits.max_headers} header lines."
        )
        self._close_with(431, "invalid_request_error", "request_header_fields_too_large", message)

    def _bad_request(self, message: str = "Invalid HTTP request received.") -> None:
        """A head the parser refuses (two Content-Lengths, Content-Length with Transfer-Encoding, an
        obfuscated Transfer-Encoding, a CR or LF inside a value...): 400 in OpenAI's shape, then close,
        so nothing after the bad bytes is read as another request."""
        self.logger.warning(message)
        self._close_with(400, "invalid_request_error", "invalid_http_request", message)

    def _close_with(self, status: int, kind: str, code: str, message: str) -> None:
        """Answer with an OpenAI-shaped error and close, unless an answer is already going out on
        this connection (pipelining), which this would garble: then only close."""
        self._phase = _IDLE
        if self._answering():
            self.transport.close()
            return
        self.transport.write(_error_response(status, kind, code, message))
        self._linger()

    def _linger(self) -> None:
        """Close gently: send the answer and a FIN, then read and drop what the client is still
        sending for up to ``LINGER_SECONDS``. Closing with its bytes unread would send a reset, and
        the client, still writing its oversized head, would see that instead of the answer."""
        self._lingering = True
        if self.transport.can_write_eof():
            self.transport.write_eof()
        if self._timer is not None:
            self._timer.cancel()
        self._timer = self.loop.call_later(LINGER_SECONDS, self.transport.close)

    def _turn_away(self, transport: asyncio.Transport, gently: bool) -> None:
        """Refuse a connection over the limit: with a 503 and a linger (counted among the open
        connections meanwhile, so at most ``TURN_AWAY_SLACK`` linger), or, beyond those, at once."""
        self.transport = transport
        self._lingering = True  # bytes that come before the close start nothing
        self.logger.debug("Over %d open connections; refusing one.", self.limits.max_connections)
        if not gently:
            transport.close()
            return
        self.connections.add(self)
        message = f"The gateway has {self.limits.max_connections} connections open; retry later."
        transport.write(_error_response(503, "server_error", "too_many_connections", message))
        self._linger()


_REASONS = {
    400: b"Bad Request",
    408: b"Request Timeout",
    431: b"Request Header Fields Too Large",
    503: b"Service Unavailable",
}


def _error_response(status: int, kind: str, code: str, message: str) -> bytes:
    error = {"error": {"message": message, "type": kind, "param": None, "code": code}}
    body = orjson.dumps(error)
    head = b"HTTP/1.1 %d %s\r\ncontent-type: application/json\r\ncontent-length: %d\r\nconnection: close\r\n\r\n"
    return head % (status, _REASONS[status], len(body)) + body


class JoinedHead:
    """A transport that holds a response head until the next write, or the next turn of the loop."""

    __slots__ = ("_flush", "_head", "_loop", "_transport")

    def __init__(self, transport: asyncio.Transport, loop: asyncio.AbstractEventLoop) -> None:
        self._transport = transport
        self._loop = loop
        self._head: bytes | None = None
        self._flush: asyncio.Handle | None = None

    def write(self, data: bytes) -> None:
        head = self._head
        if head is not None:
            self._release()
            self._transport.write(head + data)
        elif data.endswith(_HEAD_END) and data.startswith(_STATUS_LINE) and not data.startswith(_CONTINUE):
            self._head = data
            self._flush = self._loop.call_soon(self.write_head)
        else:
            self._transport.write(data)

    def write_head(self) -> None:
        """Write a held head now (the step that sent it wrote nothing more)."""
        head = self._head
        if head is not None:
            self._release()
            self._transport.write(head)

    def close(self) -> None:
        self.write_head()
        self._transport.close()

    def _release(self) -> None:
        self._head = None
        if self._flush is not None:
            self._flush.cancel()
            self._flush = None

    def __getattr__(self, name: str) -> Any:  # everything else is the real transport's
        return getattr(self._transport, name)
