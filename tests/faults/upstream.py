"""An upstream that breaks in one chosen way, at the socket level, for the fault matrix.

The stand-ins (gateway/standin) answer in each provider's wire format and can fail with a status
or drop a stream; this server fails in the ways a crashing GPU box or a broken proxy does: a reset
before the head, a body cut mid-chunk, bytes that are not JSON or not server-sent events, a body
of 100 MB, a gzip bomb, a head that never comes. It speaks just enough HTTP/1.1 (keep-alive,
Content-Length request bodies) to be called by the gateway's own client, one thread per connection.

    with FaultyUpstream() as upstream:
        upstream.fault = "reset_mid_body"
        ... upstream.url, upstream.live_connections() ...

``connect_refused`` and ``connect_timeout`` need no server: :func:`refused_url` is a port nothing
listens on, :class:`Unreachable` a listener whose backlog is full, so a connect there is never
answered.
"""

from __future__ import annotations

import contextlib
import gzip
import json
import select
import socket
import struct
import threading
import time
from functools import cache
from types import TracebackType
from typing import Literal, Self

Fault = Literal[
    "http_500",
    "http_503_retry_after",
    "http_429",
    "connect_refused",
    "connect_timeout",
    "read_timeout",
    "reset_before_head",
    "reset_mid_body",
    "slow_first_byte",
    "truncated_stream",
    "invalid_json",
    "invalid_sse",
    "huge_body",
    "gzip_bomb",
]
FAULTS: tuple[Fault, ...] = Fault.__args__  # type: ignore[attr-defined]

HUGE_BYTES = 100 * 1024 * 1024
BOMB_DECODED_BYTES = 64 * 1024 * 1024  # 2x the gateway's cap on a decoded answer, ~64 KB on the wire
STALL_SECONDS = 30.0  # longer than any deadline of the matrix: a head that never comes
SLOW_FIRST_BYTE_SECONDS = 3.0  # past the matrix's request deadline, but it does come
PIECE = 64 * 1024


def refused_url() -> str:
    """A loopback URL whose port was free a moment ago: connecting is refused at once."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"http://127.0.0.1:{port}/v1"


class Unreachable:
    """A listener with a backlog of one that never accepts, filled first: the next SYN goes unanswered."""

    def __init__(self) -> None:
        self._listener = socket.socket()
        self._listener.bind(("127.0.0.1", 0))
        self._listener.listen(0)
        self._fillers: list[socket.socket] = []
        for _ in range(4):  # Linux queues backlog + 1; a few more to be sure, without blocking
            filler = socket.socket()
            filler.setblocking(False)
            with contextlib.suppress(BlockingIOError):
                filler.connect(self._listener.getsockname())
            self._fillers.append(filler)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._listener.getsockname()[1]}/v1"

    def close(self) -> None:
        for filler in self._fillers:
            filler.close()
        self._listener.close()


class SocketUpstream:
    """A loopback HTTP/1.1 server at the socket level: keep-alive, Content-Length request bodies, one thread
    per connection. A subclass answers each request (:meth:`answer`); this counts requests and the
    connections the gateway holds open."""

    def __init__(self) -> None:
        self.requests = 0
        self._live = 0
        self._lock = threading.Lock()
        self._listener = socket.socket()
        self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._listener.bind(("127.0.0.1", 0))
        self._listener.listen(512)
        self._closing = threading.Event()
        self._thread = threading.Thread(target=self._accept, name=type(self).__name__, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._listener.getsockname()[1]}/v1"

    def live_connections(self) -> int:
        """Connections the gateway holds open to this server now."""
        with self._lock:
            return self._live

    def answer(self, conn: socket.socket, head: bytes, body: bytes) -> bool:
        """Answer one request; True when the connection may carry another."""
        raise NotImplementedError

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(self, *exc: tuple[type[BaseException] | None, BaseException | None, TracebackType | None]) -> None:
        self._closing.set()
        with contextlib.suppress(OSError):
            self._listener.shutdown(socket.SHUT_RDWR)  # wakes the blocked accept(); close() alone does not
        self._listener.close()
        self._thread.join(timeout=5)

    def _accept(self) -> None:
        while not self._closing.is_set():
            try:
                conn, _ = self._listener.accept()
            except OSError:
                return
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        with self._lock:
            self._live += 1
        try:
            reader = _Reader(conn)
            while not self._closing.is_set():
                request = reader.request()
                if request is None:
                    return
                with self._lock:
                    self.requests += 1
                if not self.answer(conn, *request):
                    return
        except OSError:
            return
        finally:
            with self._lock:
                self._live -= 1
            conn.close()


class FaultyUpstream(SocketUpstream):
    """A loopback HTTP/1.1 server whose every answer fails the way ``fault`` says (None: a good answer)."""

    def __init__(self) -> None:
        super().__init__()
        self._fault: Fault | None = None

    @property
    def fault(self) -> Fault | None:
        return self._fault

    @fault.setter
    def fault(self, fault: Fault | None) -> None:
        if fault == "gzip_bomb":
            _bomb()  # made before the first request: a second of compression would look like a slow upstream
        self._fault = fault

    def answer(self, conn: socket.socket, head: bytes, body: bytes) -> bool:
        return _answer(conn, self._fault, _wants_stream(body), self._closing)


class _Reader:
    """Requests off one connection: the head up to the blank line, then Content-Length bytes."""

    def __init__(self, conn: socket.socket) -> None:
        self._conn = conn
        self._buffer = b""

    def request(self) -> tuple[bytes, bytes] | None:
        """(head, body) of the next request, or None when the peer closed."""
        while b"\r\n\r\n" not in self._buffer:
            if not self._fill():
                return None
        head, self._buffer = self._buffer.split(b"\r\n\r\n", 1)
        length = 0
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value.strip())
        while len(self._buffer) < length:
            if not self._fill():
                return None
        body, self._buffer = self._buffer[:length], self._buffer[length:]
        return head, body

    def _fill(self) -> bool:
        data = self._conn.recv(PIECE)
        self._buffer += data
        return bool(data)


def _wants_stream(body: bytes) -> bool:
    try:
        return bool(json.loads(body).get("stream"))
    except (ValueError, AttributeError):
        return False


def _answer(conn: socket.socket, fault: Fault | None, stream: bool, closing: threading.Event) -> bool:
    """Answer one request; True when the connection may carry another."""
    if fault is None:
        conn.sendall(_good_stream() if stream else _good_plain())
        return True
    if fault in _STATUS:
        status, extra = _STATUS[fault]
        conn.sendall(_plain(status, _error_body(status), extra))
        return True
    if fault == "read_timeout":
        _wait(conn, STALL_SECONDS, closing)
        return False
    if fault == "slow_first_byte":
        if not _wait(conn, SLOW_FIRST_BYTE_SECONDS, closing):
            return False
        conn.sendall(_good_stream() if stream else _good_plain())
        return True
    if fault == "reset_before_head":
        _reset(conn)
        return False
    _BROKEN[fault](conn, stream)
    return False


def _wait(conn: socket.socket, seconds: float, closing: threading.Event) -> bool:
    """Sit on a request for ``seconds``; False as soon as the caller hangs up (or the server closes)."""
    until = time.monotonic() + seconds
    while time.monotonic() < until and not closing.is_set():
        readable, _, _ = select.select([conn], [], [], 0.05)
        if readable and not conn.recv(1, socket.MSG_PEEK):
            return False
    return not closing.is_set()


def _reset(conn: socket.socket) -> None:
    """Close with a TCP RST rather than a FIN."""
    conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    conn.close()


def _reset_mid_body(conn: socket.socket, stream: bool) -> None:
    if stream:
        conn.sendall(_stream_head() + _chunk(_event(_delta("Hello"))) + _chunk(_event(_delta(" wor"))))
    else:
        whole = _completion_json("Hello world")
        conn.sendall(_head(200, "application/json", {"content-length": str(len(whole))}) + whole[: len(whole) // 2])
    time.sleep(0.05)
    _reset(conn)


def _truncated(conn: socket.socket, stream: bool) -> None:
    """The body stops in the middle of a chunk (stream) or short of its Content-Length, then a FIN."""
    if stream:
        event = _event(_delta(" world"))
        cut = f"{len(event):x}\r\n".encode() + event[:9]
        conn.sendall(_stream_head() + _chunk(_event(_delta("Hello"))) + cut)
    else:
        whole = _completion_json("Hello world")
        conn.sendall(_head(200, "application/json", {"content-length": str(len(whole))}) + whole[:40])
    conn.shutdown(socket.SHUT_WR)


def _invalid_json(conn: socket.socket, stream: bool) -> None:
    if stream:
        conn.sendall(_stream_head() + _chunk(b'data: {"id": "chatcmpl-1", "choices": [\n\n') + b"0\r\n\r\n")
    else:
        body = b'{"id": "chatcmpl-1", "object": "chat.completion", "choices": [{'
        conn.sendall(_head(200, "application/json", {"content-length": str(len(body))}) + body)


def _invalid_sse(conn: socket.socket, stream: bool) -> None:
    """A stream that is not server-sent events; for a plain request, a proxy's HTML page with 200."""
    if stream:
        junk = b"<html><body>Gateway Timeout</body></html>\r\nnot: an event\r\n\r\n\x00\xff\xfe garbage\n\n"
        conn.sendall(_stream_head() + _chunk(junk) + b"0\r\n\r\n")
    else:
        body = b"<html><body><h1>502 Bad Gateway</h1></body></html>"
        conn.sendall(_head(200, "text/html", {"content-length": str(len(body))}) + body)


def _huge(conn: socket.socket, stream: bool) -> None:
    """100 MB: one endless event for a stream, one JSON string for a plain answer; sent until the reader leaves."""
    piece = b"x" * PIECE
    if stream:
        conn.sendall(_stream_head())
        conn.sendall(_chunk(b'data: {"id": "chatcmpl-1", "choices": [{"delta": {"content": "'))
        frame = _chunk(piece)
    else:
        conn.sendall(_head(200, "application/json", {"content-length": str(HUGE_BYTES)}) + b'{"id": "')
        frame = piece
    sent = 0
    while sent < HUGE_BYTES:
        conn.sendall(frame)
        sent += len(piece)


def _gzip_bomb(conn: socket.socket, stream: bool) -> None:
    bomb = _bomb()
    if stream:
        conn.sendall(_stream_head({"content-encoding": "gzip"}) + _chunk(bomb) + b"0\r\n\r\n")
    else:
        headers = {"content-length": str(len(bomb)), "content-encoding": "gzip"}
        conn.sendall(_head(200, "application/json", headers) + bomb)


_BROKEN = {
    "reset_mid_body": _reset_mid_body,
    "truncated_stream": _truncated,
    "invalid_json": _invalid_json,
    "invalid_sse": _invalid_sse,
    "huge_body": _huge,
    "gzip_bomb": _gzip_bomb,
}
_STATUS: dict[str, tuple[int, dict[str, str]]] = {
    "http_500": (500, {}),
    "http_503_retry_after": (503, {"retry-after": "1"}),
    "http_429": (429, {}),
}


@cache
def _bomb() -> bytes:
    zeros = bytes(1024 * 1024)
    packer = gzip.GzipFile(fileobj=(sink := _Sink()), mode="wb", compresslevel=6)
    for _ in range(BOMB_DECODED_BYTES // len(zeros)):
        packer.write(zeros)
    packer.close()
    return sink.data()


class _Sink:
    def __init__(self) -> None:
        self._parts: list[bytes] = []

    def write(self, data: bytes) -> int:
        self._parts.append(bytes(data))
        return len(data)

    def flush(self) -> None:
        return None

    def data(self) -> bytes:
        return b"".join(self._parts)


# -- the wire --------------------------------------------------------------------------------


def _head(status: int, content_type: str, headers: dict[str, str]) -> bytes:
    lines = [f"HTTP/1.1 {status} {_REASONS.get(status, 'Status')}", f"content-type: {content_type}"]
    lines += [f"{name}: {value}" for name, value in headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def _stream_head(extra: dict[str, str] | None = None) -> bytes:
    return _head(200, "text/event-stream", {"transfer-encoding": "chunked", **(extra or {})})


def _chunk(data: bytes) -> bytes:
    return f"{len(data):x}\r\n".encode() + data + b"\r\n"


def _plain(status: int, body: bytes, extra: dict[str, str]) -> bytes:
    return _head(status, "application/json", {"content-length": str(len(body)), **extra}) + body


def _error_body(status: int) -> bytes:
    return json.dumps({"error": {"message": f"upstream says {status}", "type": "server_error", "code": None}}).encode()


def _completion_json(text: str) -> bytes:
    return json.dumps(
        {
            "id": "chatcmpl-faulty",
            "object": "chat.completion",
            "created": 1,
            "model": "faulty",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5},
        }
    ).encode()


def _delta(text: str, finish: str | None = None) -> dict[str, object]:
    return {
        "id": "chatcmpl-faulty",
        "object": "chat.completion.chunk",
        "created": 1,
        "model": "faulty",
        "choices": [{"index": 0, "delta": {"content": text}, "finish_reason": finish}],
    }


def _event(payload: dict[str, object] | str) -> bytes:
    data = payload if isinstance(payload, str) else json.dumps(payload)
    return f"data: {data}\n\n".encode()


def _good_plain() -> bytes:
    return _plain(200, _completion_json("Hello world"), {})


def _good_stream() -> bytes:
    usage = {**_delta("", "stop"), "usage": {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5}}
    events = [_event(_delta("Hello")), _event(_delta(" world")), _event(usage), _event("[DONE]")]
    return _stream_head() + b"".join(_chunk(e) for e in events) + b"0\r\n\r\n"


_REASONS = {200: "OK", 429: "Too Many Requests", 500: "Internal Server Error", 503: "Service Unavailable"}
