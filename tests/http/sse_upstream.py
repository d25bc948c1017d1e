"""An OpenAI-wire upstream at the socket level that streams as long as it is asked to and counts what it sent.

For the backpressure and disconnect tests: it knows, as the stand-ins do not, how many bytes the
kernel accepted from it (``sent_bytes``: each ``sendall`` that returned), how many connections the
gateway holds open to it now (``live_connections``), and how many the gateway closed while a stream
was still going (``closed_mid_stream``). One thread per connection; HTTP/1.1 with Content-Length
request bodies; every chat request gets a chunked SSE stream of ``events`` chunks, ``gap`` seconds
apart, each carrying ``piece`` characters of content.

    with SseUpstream(events=1000, gap=0.05) as upstream:
        ... upstream.url ... upstream.sent_bytes ... upstream.closed_mid_stream ...
"""

from __future__ import annotations

import contextlib
import json
import socket
import threading
import time
from types import TracebackType
from typing import Self


class SseUpstream:
    def __init__(self, *, events: int = 1000, gap: float = 0.0, piece: int = 16) -> None:
        self.events, self.gap, self.piece = events, gap, piece
        self.sent_bytes = 0
        self.closed_mid_stream = 0
        self._live = 0
        self._lock = threading.Lock()
        self._closing = threading.Event()
        self._listener = socket.create_server(("127.0.0.1", 0), backlog=128)
        self._thread = threading.Thread(target=self._accept, name="sse-upstream", daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._listener.getsockname()[1]}/v1"

    def live_connections(self) -> int:
        with self._lock:
            return self._live

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(self, *exc: tuple[type[BaseException] | None, BaseException | None, TracebackType | None]) -> None:
        self._closing.set()
        with contextlib.suppress(OSError):
            self._listener.shutdown(socket.SHUT_RDWR)
        self._listener.close()
        self._thread.join(timeout=5)

    def _accept(self) -> None:
        while not self._closing.is_set():
            try:
                conn, _ = self._listener.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        with self._lock:
            self._live += 1
        try:
            buffer = b""
            while not self._closing.is_set():
                request, buffer = _read_request(conn, buffer)
                if request is None:
                    return
                if not self._answer(conn, request):
                    return
        except OSError:
            return
        finally:
            with self._lock:
                self._live -= 1
            conn.close()

    def _answer(self, conn: socket.socket, request: bytes) -> bool:
        """Whether the connection may carry another request."""
        if not request.startswith(b"POST") or b"/chat/completions" not in request.split(b"\r\n", 1)[0]:
            conn.sendall(b"HTTP/1.1 404 Not Found\r\ncontent-type: application/json\r\ncontent-length: 2\r\n\r\n{}")
            return True
        conn.sendall(b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n")
        try:
            for index in range(self.events):
                self._send(conn, _event(index, "x" * self.piece))
                if self.gap:
                    time.sleep(self.gap)
            self._send(conn, _event(self.events, "", finish=True) + b"data: [DONE]\n\n")
            conn.sendall(b"0\r\n\r\n")
        except OSError:
            with self._lock:
                self.closed_mid_stream += 1
            return False
        return True

    def _send(self, conn: socket.socket, data: bytes) -> None:
        conn.sendall(b"%x\r\n%s\r\n" % (len(data), data))
        with self._lock:
            self.sent_bytes += len(data)


def _event(index: int, content: str, finish: bool = False) -> bytes:
    choice = {"index": 0, "delta": {"content": content}, "finish_reason": "stop" if finish else None}
    chunk = {"id": "chatcmpl-sse", "object": "chat.completion.chunk", "created": 0, "model": "m", "choices": [choice]}
    if finish:
        chunk["usage"] = {"prompt_tokens": 5, "completion_tokens": index, "total_tokens": 5 + index}
    return b"data: " + json.dumps(chunk).encode() + b"\n\n"


def _read_request(conn: socket.socket, buffer: bytes) -> tuple[bytes | None, bytes]:
    """One request (head and Content-Length body) off ``conn``, and what was read past it."""
    while b"\r\n\r\n" not in buffer:
        data = conn.recv(65536)
        if not data:
            return None, buffer
        buffer += data
    head, rest = buffer.split(b"\r\n\r\n", 1)
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value.strip())
    while len(rest) < length:
        data = conn.recv(65536)
        if not data:
            return None, rest
        rest += data
    return head + b"\r\n\r\n" + rest[:length], rest[length:]
