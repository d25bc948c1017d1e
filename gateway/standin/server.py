"""Run an ASGI app on loopback with uvicorn: in the current event loop, or in a thread for tests.

The socket is bound before uvicorn starts, so ``port=0`` picks a free port and the URL
is known as soon as the server is ready. The servers never install signal handlers
(the host process owns them) and never write access-log lines, without touching the
host's own uvicorn logging settings. A server started with :func:`serve` (in the host's loop,
as ``--demo`` does) logs no lifecycle lines either ("Started server process", "Uvicorn running
on ..."): its task runs with a context flag that a filter on uvicorn's logger reads, so the
host's own lines, and a stand-in's warnings and errors, still pass.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import logging
import socket
import threading
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Self

import uvicorn
from starlette.types import ASGIApp
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

LOOPBACK = "127.0.0.1"
GRACE_SECONDS = 1
READY_SECONDS = 30.0  # a gateway that imports litellm can take 10-15 s on a loaded 2-core machine
POLL_SECONDS = 0.005
_IN_STANDIN: contextvars.ContextVar[bool] = contextvars.ContextVar("in_standin", default=False)


class _QuietLifecycle(logging.Filter):
    """Drops uvicorn's info lines logged from a stand-in's task; everything else passes."""

    def filter(self, record: logging.LogRecord) -> bool:
        return record.levelno > logging.INFO or not _IN_STANDIN.get()


_QUIET_LIFECYCLE = _QuietLifecycle()


class _QuietProtocol(HttpToolsProtocol):
    """uvicorn's HTTP protocol without access-log lines."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.access_log = False


class _Server(uvicorn.Server):
    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield  # signals belong to the host process


def _new_server(app: ASGIApp, tls: Mapping[str, Any] | None = None) -> _Server:
    """``tls``: uvicorn's ``ssl_*`` options (``ssl_certfile``, ``ssl_keyfile``, ``ssl_ca_certs``, ``ssl_cert_reqs``)."""
    config = uvicorn.Config(
        app,
        http=_QuietProtocol,
        ws="none",
        loop="asyncio",
        log_config=None,
        timeout_graceful_shutdown=GRACE_SECONDS,
        **(tls or {}),
    )
    return _Server(config)


def _bind(host: str, port: int) -> socket.socket:
    # IPPROTO_TCP, not 0: asyncio sets TCP_NODELAY on accepted connections only when the listening socket says
    # so, and without it every answer after the first on a kept-alive connection waited ~40 ms (delayed ACK)
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError:
        sock.close()
        raise
    return sock


def _url(host: str, port: int) -> str:
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


@dataclass(slots=True)
class RunningServer:
    """A uvicorn server running as a task of the current event loop."""

    host: str
    port: int
    _server: _Server
    _task: asyncio.Task[None]
    _sock: socket.socket

    @property
    def url(self) -> str:
        return _url(self.host, self.port)

    async def stop(self) -> None:
        self._server.should_exit = True
        try:
            await self._task
        finally:
            self._sock.close()


async def serve(app: ASGIApp, host: str = LOOPBACK, port: int = 0) -> RunningServer:
    """Start ``app`` in the running event loop; returns once it accepts connections."""
    sock = _bind(host, port)
    server = _new_server(app)
    uvicorn_logger = logging.getLogger("uvicorn.error")
    if _QUIET_LIFECYCLE not in uvicorn_logger.filters:
        uvicorn_logger.addFilter(_QUIET_LIFECYCLE)
    context = contextvars.copy_context()
    context.run(_IN_STANDIN.set, True)
    name = f"standin-{sock.getsockname()[1]}"
    task = asyncio.create_task(server.serve(sockets=[sock]), name=name, context=context)
    try:
        await _until_started(server, task)
    except BaseException:
        server.should_exit = True
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        sock.close()
        raise
    return RunningServer(host, sock.getsockname()[1], server, task, sock)


async def _until_started(server: _Server, task: asyncio.Task[None]) -> None:
    deadline = time.monotonic() + READY_SECONDS
    while not server.started:
        if task.done():
            raise RuntimeError("the server stopped before it started") from _failure(task)
        if time.monotonic() > deadline:
            raise TimeoutError(f"the server did not start within {READY_SECONDS} s")
        await asyncio.sleep(POLL_SECONDS)


def _failure(task: asyncio.Task[None]) -> BaseException | None:
    return None if task.cancelled() else task.exception()


class ThreadedServer:
    """Run ``app`` in a background thread with its own event loop; a context manager for tests.

    ``with ThreadedServer(app) as server: httpx.get(server.url + "/v1/models")``
    """

    def __init__(self, app: ASGIApp, host: str = LOOPBACK, port: int = 0, tls: Mapping[str, Any] | None = None) -> None:
        """``tls``: serve https with these uvicorn ``ssl_*`` options."""
        self.host = host
        self._port = port
        self._scheme = "https" if tls else "http"
        self._server = _new_server(app, tls)
        self._sock: socket.socket | None = None
        self._thread: threading.Thread | None = None
        self._error: BaseException | None = None

    @property
    def port(self) -> int:
        if self._sock is None:
            raise RuntimeError("the server is not started")
        return int(self._sock.getsockname()[1])

    @property
    def url(self) -> str:
        return _url(self.host, self.port).replace("http", self._scheme, 1)

    def start(self) -> Self:
        self._sock = _bind(self.host, self._port)
        self._thread = threading.Thread(target=self._run, name=f"standin-{self.port}", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + READY_SECONDS
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                url = self.url  # before stop() closes the socket it is read from
                self.stop()
                raise RuntimeError(f"the stand-in server on {url} did not start") from self._error
            time.sleep(POLL_SECONDS)
        return self

    def stop(self) -> None:
        self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(READY_SECONDS)
        if self._sock is not None:
            self._sock.close()

    def _run(self) -> None:
        try:
            self._server.run(sockets=[self._sock] if self._sock else None)
        except BaseException as exc:  # noqa: BLE001 - start() reports it
            self._error = exc

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
