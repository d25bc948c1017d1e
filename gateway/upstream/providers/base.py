"""The provider protocol: one adapter per wire format.

An adapter turns an OpenAI-format request body into a call to one deployment and
returns OpenAI-format answers: a response dict for ``complete`` and chunk dicts for
``stream``. Adapters raise only :mod:`gateway.errors` ``UpstreamError`` subclasses;
third-party exceptions never leave them.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any, Literal, Protocol

Endpoint = Literal["chat", "completions", "embeddings"]
Json = dict[str, Any]


@dataclass(frozen=True, slots=True)
class Target:
    """Everything an adapter needs to call one deployment."""

    deployment: str
    provider: str
    upstream_model: str
    base_url: str | None
    api_key: str | None
    timeout_seconds: float
    traceparent: str | None = None  # the client's W3C trace context, sent on as a header


class Provider(Protocol):
    async def complete(self, endpoint: Endpoint, target: Target, body: Json) -> Json:
        """Return the OpenAI-format response body (with ``usage``)."""

    def stream(self, endpoint: Endpoint, target: Target, body: Json) -> AsyncIterator[Json]:
        """Yield OpenAI-format chunk dicts; the last one carries ``usage`` when the upstream reports it."""

    async def aclose(self) -> None:
        """Release pooled connections."""
