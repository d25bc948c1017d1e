"""How a stand-in answer reaches the client: whole, as paced server-sent events, or cut off.

A cut-off answer ends the ASGI call without the final body message; uvicorn then
closes the connection, which the client sees as a dropped stream (uvicorn logs
"ASGI callable returned without completing response").
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.types import Receive, Scope, Send


def sse_data(payload: Mapping[str, Any] | str) -> str:
    """One OpenAI-style event: ``data: <json>``."""
    text = payload if isinstance(payload, str) else json.dumps(payload, separators=(",", ":"))
    return f"data: {text}\n\n"


def sse_event(name: str, payload: Mapping[str, Any]) -> str:
    """One named event, Anthropic style: ``event:`` then ``data:``."""
    return f"event: {name}\ndata: {json.dumps(payload, separators=(',', ':'))}\n\n"


async def pause(request: Request, seconds: float) -> bool:
    """Wait ``seconds``; return True early if the client hung up meanwhile."""
    if seconds <= 0:
        return False
    try:
        await asyncio.wait_for(_hang_up(request), seconds)
    except TimeoutError:
        return False
    return True


async def _hang_up(request: Request) -> None:
    while (await request.receive())["type"] != "http.disconnect":
        pass


class EventStream(StreamingResponse):
    """Server-sent events with a gap between events, optionally dropped after ``drop_after`` events."""

    def __init__(self, events: Iterable[str], *, gap: float = 0.0, drop_after: int | None = None) -> None:
        super().__init__(_paced(events, gap), media_type="text/event-stream", headers={"cache-control": "no-cache"})
        self.drop_after = drop_after

    async def stream_response(self, send: Send) -> None:
        await send({"type": "http.response.start", "status": self.status_code, "headers": self.raw_headers})
        sent = 0
        async for chunk in self.body_iterator:
            if sent == self.drop_after:
                return
            body = chunk.encode() if isinstance(chunk, str) else bytes(chunk)
            await send({"type": "http.response.body", "body": body, "more_body": True})
            sent += 1
        await send({"type": "http.response.body", "body": b"", "more_body": False})


async def _paced(events: Iterable[str], gap: float) -> AsyncIterator[str]:
    for index, event in enumerate(events):
        if index and gap > 0:
            await asyncio.sleep(gap)
        yield event


class CutResponse(JSONResponse):
    """A JSON answer whose connection drops after the headers and half the body."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": self.status_code, "headers": self.raw_headers})
        await send({"type": "http.response.body", "body": self.body[: len(self.body) // 2], "more_body": True})


@dataclass(frozen=True, slots=True)
class Delivery:
    """How to send this answer: the gap between events, and whether to drop it."""

    gap: float = 0.0
    drop_after: int | None = None

    def json(self, payload: Mapping[str, Any]) -> Response:
        if self.drop_after is not None:
            return CutResponse(payload)
        return JSONResponse(payload)

    def events(self, events: Iterable[str]) -> Response:
        return EventStream(events, gap=self.gap, drop_after=self.drop_after)
