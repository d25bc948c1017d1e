"""The OpenAI-compatible adapter as a fixture, shared by the adapter's and its HTTP client's tests."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from gateway.upstream.providers.openai_compat import OpenAICompatibleProvider


@pytest.fixture
async def provider() -> AsyncIterator[OpenAICompatibleProvider]:
    provider = OpenAICompatibleProvider()
    yield provider
    await provider.aclose()
