"""uvicorn's HTTP/1.1 protocol (httptools), writing a response's head and body in one syscall.

uvicorn writes the status line and headers as soon as the app sends ``http.response.start``, and
the body with the next message: two writes, so two trips through the loopback TCP stack, for every
answer (strace of one proxied request: read, write upstream, read upstream, write head, write body).
Here the head waits for the first body write, which in the gateway comes in the same step (a plain
answer's body, or the first events of a stream), and both go out together. If no body write comes in
that step, the head goes out alone at the next turn of the event loop, so nothing is held longer.
Only timing changes: bytes are written in the same order, whatever they are.
"""

from __future__ import annotations

import asyncio
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

_HEAD_END = b"\r\n\r\n"
_STATUS_LINE = b"HTTP/1.1 "
_CONTINUE = b"HTTP/1.1 100"  # "100 Continue" must go out at once: the client waits for it to send the body


class HttpProtocol(HttpToolsProtocol):
    """``uvicorn.Config(http=HttpProtocol)``: the connection's transport, as uvicorn's request cycles see it,
    joins a response head with the write after it."""

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self.transport = JoinedHead(transport, self.loop)  # type: ignore[assignment]


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
