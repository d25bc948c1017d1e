"""Server-sent events for a client: OpenAI's ``data:`` lines or Anthropic's named events.

An encoder turns each upstream chunk into the bytes the client gets (``b""``: nothing), and gives the
stream's last events and the error event that ends a stream failing after its first byte. It is
driven by :func:`gateway.observe.observed`, in the same generator that records the request: one
generator per stream instead of two, since every event passes through it.
"""

from __future__ import annotations

import orjson

from gateway import shape
from gateway.errors import UpstreamError
from gateway.providers.base import Json
from gateway.translate.anthropic_messages import encode_event, error_event
from gateway.translate.anthropic_stream import StreamTranslator

DONE = b"data: [DONE]\n\n"


class OpenAIEvents:
    """OpenAI's ``data:`` lines: each chunk fixed for the client (``shape.chunk``), then ``[DONE]``."""

    __slots__ = ("include_usage", "model")

    def __init__(self, model: str, include_usage: bool) -> None:
        self.model = model
        self.include_usage = include_usage

    def feed(self, chunk: Json) -> bytes:
        shaped = shape.chunk(chunk, self.model, self.include_usage)
        return b"" if shaped is None else b"data: " + orjson.dumps(shaped) + b"\n\n"

    def finish(self) -> bytes:
        return DONE

    def error(self, exc: UpstreamError) -> bytes:
        return b"data: " + orjson.dumps(exc.body()) + b"\n\n"


class AnthropicEvents:
    """Anthropic's named events, translated from the same chunks."""

    __slots__ = ("translator",)

    def __init__(self, model: str) -> None:
        self.translator = StreamTranslator(model)

    def feed(self, chunk: Json) -> bytes:
        return b"".join(encode_event(name, data) for name, data in self.translator.feed(chunk))

    def finish(self) -> bytes:
        return b"".join(encode_event(name, data) for name, data in self.translator.finish())

    def error(self, exc: UpstreamError) -> bytes:
        return encode_event(*error_event(exc))
