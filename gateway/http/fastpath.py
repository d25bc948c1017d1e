"""The hot endpoints as plain ASGI, ahead of FastAPI's middleware stack.

Chat completions, completions, embeddings and Anthropic messages are most of a gateway's traffic.
FastAPI's stack (error middleware, body-limit and telemetry middleware, an exit stack, the router,
dependency solving) cost about 15% of the gateway's CPU per request in the benchmark's profile, and
Starlette's ``StreamingResponse`` starts an AnyIO task group per stream to notice disconnects.
Here those requests go straight to their handler; everything else goes through FastAPI as before.
Errors keep the same OpenAI shape as the FastAPI exception handlers give them.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from typing import Any, Protocol

from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from gateway.errors import GatewayError
from gateway.http import coalesce, edge
from gateway.http.drain import drain_of

log = logging.getLogger("gateway")
Handler = Callable[[Request], Awaitable[Response]]


class InFlight(Protocol):
    def inc(self) -> None: ...
    def dec(self) -> None: ...


async def serve(
    handler: Handler, revision: str, in_flight: InFlight, scope: Scope, receive: Receive, send: Send
) -> None:
    """Run one hot request: its handler's response, or its error in OpenAI's shape. A client that
    leaves before its body is read (or is closed by the body timeout) ends the request: there is no
    one to answer, and it is no fault of the gateway's, so one line at debug level, no traceback."""
    in_flight.inc()
    try:
        request = Request(scope, receive)
        try:
            response = await handler(request)
        except ClientDisconnect:
            log.debug("client disconnected before its request to %s was read", scope["path"])
            return
        except GatewayError as exc:
            response = edge.error_response(exc, _rid(request), revision)
        except Exception:
            log.exception("unexpected error on %s", scope["path"])
            response = edge.error_response(GatewayError("The gateway failed unexpectedly."), _rid(request))
        await response(scope, receive, send)
    finally:
        in_flight.dec()


def _rid(request: Request) -> str:
    rid: str | None = getattr(request.state, "request_id", None)
    return rid or edge.request_id(request)


class EventStream(Response):
    """Server-sent events, closed as soon as the client goes away.

    Events that are ready together go out in one write (:mod:`gateway.http.coalesce`), and the last of
    them with the end of the response. Starlette's ``StreamingResponse`` watches for a disconnect
    with an AnyIO task group per stream; this watches with one plain task and cancels the stream
    from it, which costs a fraction of that.
    """

    media_type = "text/event-stream"

    def __init__(
        self,
        events: AsyncIterator[bytes],
        headers: Mapping[str, str] | None = None,
        cut: Callable[[], bytes] | None = None,
    ) -> None:
        self.events = events
        self.cut = cut  # the error event that ends a stream cut by the drain timeout (gateway/http/drain.py)
        self.status_code = 200
        self.background = None
        self.init_headers(headers)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        task = asyncio.current_task()
        assert task is not None
        watch = _Watch(task)
        watcher = asyncio.ensure_future(watch.run(receive))
        batches = coalesce.ready_batches(self.events)
        drain = drain_of(scope.get("state"))
        if drain is not None:
            drain.streams.add(watch.cut)
        try:
            await send({"type": "http.response.start", "status": self.status_code, "headers": self.raw_headers})
            last = False
            async for piece, last in batches:
                watch.streaming = not last
                await send({"type": "http.response.body", "body": piece, "more_body": not last})
            if not last:
                watch.streaming = False
                await send({"type": "http.response.body", "body": b"", "more_body": False})
        except asyncio.CancelledError:
            if not (watch.gone or watch.was_cut):
                raise
            task.uncancel()  # the client left, or the drain timeout came: the end of this stream, not an error
            if watch.was_cut:
                await send({"type": "http.response.body", "body": self.cut() if self.cut else b"", "more_body": False})
        finally:
            if drain is not None:
                drain.streams.discard(watch.cut)
            watch.streaming = False
            watcher.cancel()
            await asyncio.shield(batches.aclose())
            aclose: Any = getattr(self.events, "aclose", None)
            if aclose is not None:
                await asyncio.shield(aclose())


class _Watch:
    def __init__(self, task: asyncio.Task[Any]) -> None:
        self.task = task
        self.streaming = True
        self.gone = False
        self.was_cut = False

    def cut(self) -> None:
        """The drain timeout: end the stream (its last event is the response's ``cut``)."""
        if self.streaming and not self.gone:
            self.was_cut = True
            self.task.cancel()

    async def run(self, receive: Receive) -> None:
        while (await receive())["type"] != "http.disconnect":
            pass
        if self.streaming:
            self.gone = True
            self.task.cancel()
