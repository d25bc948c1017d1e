"""An OpenAI-wire upstream at the socket level that streams as long as it is asked to and counts what it sent.

For the backpressure and disconnect tests: it knows, as the stand-ins do not, how many bytes the
kernel accepted from it (``sent_bytes``: each ``sendall`` that returned), how many connections the
gateway holds open to it now (``live_connections``), and how many the gateway closed while a stream
was still going (``closed_mid_stream``). The HTTP/1.1 side is that of
:class:`tests.faults.upstream.SocketUpstream`; every chat request gets a chunked SSE stream of ``events``
chunks, ``gap`` seconds apart, each carrying ``piece`` characters of content.

    with SseUpstream(events=1000, gap=0.05) as upstream:
        ... upstream.url ... upstream.sent_bytes ... upstream.closed_mid_stream ...
"""

from __future__ import annotations

import json
import socket
import time

from tests.faults.upstream import SocketUpstream


class SseUpstream(SocketUpstream):
    def __init__(self, *, events: int = 1000, gap: float = 0.0, piece: int = 16) -> None:
        super().__init__()
        self.events, self.gap, self.piece = events, gap, piece
        self.sent_bytes = 0
        self.closed_mid_stream = 0

    def answer(self, conn: socket.socket, head: bytes, body: bytes) -> bool:
        if not head.startswith(b"POST") or b"/chat/completions" not in head.split(b"\r\n", 1)[0]:
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
