"""Server-sent events for a client: OpenAI's ``data:`` lines or Anthropic's named events.

An encoder turns each upstream chunk into the bytes the client gets (``b""``: nothing), and gives the
stream's last events and the error event that ends a stream failing after its first byte. It is
driven by :func:`gateway.observe.observed`, in the same generator that records the request: one
generator per stream instead of two, since every event passes through it.
"""

from __future__ import annotations

import orjson

from gateway.errors import UpstreamError
from gateway.translate.anthropic_messages import encode_event, error_event
from gateway.translate.anthropic_stream import StreamTranslator
from gateway.upstream import shape
from gateway.upstream.providers.base import Json

DONE = b"data: [DONE]\n\n"


class OpenAIEvents:
    """OpenAI's ``data:`` lines: each chunk fixed for the client (``shape.chunk``), then ``[DONE]``.

    The gateway asks every upstream for usage; a client that did not ask must still get what the upstream
    would have sent it. The usage-only chunk is dropped for that client, but fields of the upstream's own on
    it (llama.cpp's ``timings``) move to the client's last chunk: a chunk that ends a choice is held back
    until the next chunk arrives (the usage chunk, right after it) or the stream ends. Only finishing chunks
    wait, so no content is delayed.
    """

    __slots__ = ("held", "include_usage", "model")

    def __init__(self, model: str, include_usage: bool) -> None:
        self.model = model
        self.include_usage = include_usage
        self.held: Json | None = None  # a finishing chunk not sent yet (clients that did not ask for usage)

    def feed(self, chunk: Json) -> bytes:
        shaped = shape.chunk(chunk, self.model, self.include_usage)
        if self.include_usage:
            return b"" if shaped is None else _event(shaped)
        held, self.held = self.held, None
        if shaped is None:  # the usage chunk the gateway asked for (an upstream's extras with no chunk before: lost)
            if held is not None:
                held.update(shape.extras(chunk))
            return b"" if held is None else _event(held)
        if shape.finished(shaped):
            self.held = shaped
            return b"" if held is None else _event(held)
        return _event(shaped) if held is None else _event(held) + _event(shaped)

    def finish(self) -> bytes:
        return self._release() + DONE

    def error(self, exc: UpstreamError) -> bytes:
        return self._release() + b"data: " + orjson.dumps(exc.body()) + b"\n\n"

    def _release(self) -> bytes:
        held, self.held = self.held, None
        return b"" if held is None else _event(held)


def _event(chunk: Json) -> bytes:
    return b"data: " + orjson.dumps(chunk) + b"\n\n"


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


class AnthropicPassedEvents:
    """An Anthropic deployment's own events (gateway.upstream.providers.anthropic_passthrough envelopes), as
    they came but for ``message_start``'s model, which becomes the catalog name."""

    __slots__ = ("model",)

    def __init__(self, model: str) -> None:
        self.model = model

    def feed(self, envelope: Json) -> bytes:
        data = envelope["data"]
        if envelope["event"] == "message_start" and isinstance(data.get("message"), dict):
            data["message"]["model"] = self.model
        return encode_event(envelope["event"], data)

    def finish(self) -> bytes:
        return b""

    def error(self, exc: UpstreamError) -> bytes:
        return encode_event(*error_event(exc))
