"""A ``CONNECT`` tunnel through an HTTP proxy, for https upstreams (RFC 9110 §9.3.6).

The socket is connected to the proxy, asked to ``CONNECT host:port`` (with ``Proxy-Authorization``
when the proxy URL had credentials), and handed back once the proxy answered 2xx; the caller then
runs TLS with the upstream over it, so the proxy sees only the host name and encrypted bytes.
"""

from __future__ import annotations

import asyncio
import socket
from typing import Final

from gateway.upstream.providers.http1_conn import HttpError
from gateway.upstream.providers.network import Proxy

MAX_HEAD_BYTES: Final = 16 * 1024  # the proxy's answer to CONNECT


class ProxyError(HttpError):
    """The proxy refused or broke the tunnel (e.g. 407: credentials missing or wrong, 403, 502)."""


async def tunnel(address: str, proxy: Proxy, host: str, port: int) -> socket.socket:
    """A non-blocking socket connected through ``proxy`` at ``address`` to ``host:port``."""
    loop = asyncio.get_running_loop()
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    try:
        sock.setblocking(False)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        await loop.sock_connect(sock, (address, proxy.port))
        await loop.sock_sendall(sock, connect_request(proxy, host, port))
        await _established(loop, sock, proxy, host, port)
    except BaseException:
        sock.close()
        raise
    return sock


def connect_request(proxy: Proxy, host: str, port: int) -> bytes:
    authority = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    lines = [f"CONNECT {authority} HTTP/1.1", f"Host: {authority}"]
    if proxy.authorization:
        lines.append(f"Proxy-Authorization: {proxy.authorization}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


async def _established(
    loop: asyncio.AbstractEventLoop, sock: socket.socket, proxy: Proxy, host: str, port: int
) -> None:
    """Read the proxy's answer head; anything but 2xx is a :class:`ProxyError` naming the status."""
    head = b""
    while b"\r\n\r\n" not in head:
        piece = await loop.sock_recv(sock, 4096)
        if not piece:
            raise ProxyError(f"the proxy {proxy} closed the connection before answering CONNECT {host}:{port}")
        head += piece
        if len(head) > MAX_HEAD_BYTES:
            raise ProxyError(f"the proxy {proxy} answered CONNECT with a head over {MAX_HEAD_BYTES} bytes")
    status_line = head.partition(b"\r\n")[0]
    parts = status_line.decode("latin-1").split(" ", 2)
    if len(parts) < 2 or not parts[0].startswith("HTTP/1.") or not parts[1].isdigit():
        raise ProxyError(f"the proxy {proxy} did not answer CONNECT in HTTP/1.1: {status_line[:80]!r}")
    status = int(parts[1])
    if not 200 <= status < 300:
        reason = parts[2] if len(parts) > 2 else ""
        raise ProxyError(f"the proxy {proxy} refused CONNECT {host}:{port}: {status} {reason}".rstrip())
    if head.index(b"\r\n\r\n") + 4 != len(head):  # the upstream speaks only after the TLS client hello
        raise ProxyError(f"the proxy {proxy} sent bytes after its answer to CONNECT")
