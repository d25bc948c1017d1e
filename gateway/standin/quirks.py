"""Switches that make the OpenAI stand-in answer like one self-hosted server or another.

- ``reasoning``: the field a reasoning model's thinking comes in, beside ``content``: ``reasoning_content``
  (vLLM up to 0.10, SGLang, llama.cpp with ``--reasoning-format deepseek``, DeepSeek's API) or ``reasoning``
  (vLLM 0.11 and later, Ollama's ``/v1``). In a stream the thinking comes first, a word per chunk.
- ``stream_usage=False``: a stream never ends with a usage chunk, whatever ``stream_options`` asks (TGI,
  older Ollama and llama.cpp builds), so the gateway has to estimate.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Literal

from gateway.standin.canned import words
from gateway.standin.delivery import sse_data
from gateway.standin.gate import Json

ReasoningField = Literal["reasoning_content", "reasoning"]
THINKING = "The user asked for a short answer, so I will keep it short."


@dataclass(frozen=True, slots=True)
class Quirks:
    reasoning: ReasoningField | None = None
    stream_usage: bool = True

    def response(self, body: Json) -> Json:
        """A whole chat answer with the thinking beside each choice's content."""
        if self.reasoning is not None:
            for choice in body["choices"]:
                choice["message"][self.reasoning] = THINKING
        return body

    def events(self, events: Iterable[str]) -> Iterator[str]:
        """A chat stream's events with the thinking after the role chunk, and without usage if so switched."""
        for index, event in enumerate(events):
            chunk = _chunk(event)
            if chunk is not None and not self.stream_usage:
                if not chunk["choices"] and chunk.get("usage"):
                    continue
                chunk.pop("usage", None)
            yield event if chunk is None or self.stream_usage else sse_data(chunk)
            if index == 0 and chunk is not None and self.reasoning is not None:
                yield from self._thinking(chunk)

    def _thinking(self, first: Json) -> Iterator[str]:
        for piece in words(THINKING):
            choices = [{"index": c["index"], "delta": {self.reasoning: piece}, "logprobs": None, "finish_reason": None}
                       for c in first["choices"]]  # fmt: skip
            yield sse_data(first | {"choices": choices})


def _chunk(event: str) -> Json | None:
    payload = event.removeprefix("data: ").strip()
    if payload == "[DONE]":
        return None
    chunk = json.loads(payload)
    return chunk if isinstance(chunk, dict) else None
