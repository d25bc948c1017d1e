"""Server-sent events for a client: OpenAI's ``data:`` lines or Anthropic's named events.

Both read the same upstream chunks; a failure after the first byte ends the stream with an error event.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import aclosing

import orjson

from gateway import shape
from gateway.errors import UpstreamError
from gateway.providers.base import Json
from gateway.translate.anthropic_messages import encode_event, error_event
from gateway.translate.anthropic_stream import StreamTranslator

DONE = b"data: [DONE]\n\n"


async def openai_events(chunks: AsyncIterator[Json], model: str, include_usage: bool) -> AsyncIterator[bytes]:
    async with aclosing(chunks):  # type: ignore[type-var]
        try:
            async for chunk in chunks:
                shaped = shape.chunk(chunk, model, include_usage)
                if shaped is not None:
                    yield b"data: " + orjson.dumps(shaped) + b"\n\n"
            yield DONE
        except UpstreamError as exc:
            yield b"data: " + orjson.dumps(exc.body()) + b"\n\n"


async def anthropic_events(chunks: AsyncIterator[Json], model: str) -> AsyncIterator[bytes]:
    translator = StreamTranslator(model)
    async with aclosing(chunks):  # type: ignore[type-var]
        try:
            async for chunk in chunks:
                for name, data in translator.feed(chunk):
                    yield encode_event(name, data)
            for name, data in translator.finish():
                yield encode_event(name, data)
        except UpstreamError as exc:
            yield encode_event(*error_event(exc))
