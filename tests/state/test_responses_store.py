"""Stored Responses API answers on both backends: per tenant, expiring, deletable, shared by replicas."""

from __future__ import annotations

import asyncio

import pytest

from gateway.state.responses_store import ResponseStore
from tests.state.conftest import StoreFactory

pytestmark = pytest.mark.anyio

ANSWER = {"id": "resp_1", "object": "response", "output": [{"type": "message", "role": "assistant", "content": []}]}
ASKED = [{"type": "message", "role": "user", "content": "hi"}]


async def test_a_response_is_found_by_its_tenant_only(make_store: StoreFactory) -> None:
    one, two = await make_store(), await make_store()  # two replicas
    await ResponseStore(one.cache).put("acme", ANSWER, ASKED, 60.0)
    stored = await ResponseStore(two.cache).get("acme", "resp_1")
    assert stored is not None and stored.response == ANSWER
    assert stored.history == [*ASKED, *ANSWER["output"]]  # type: ignore[list-item]
    assert await ResponseStore(two.cache).get("acme2", "resp_1") is None
    assert await ResponseStore(two.cache).get("acm", "e:resp_1") is None, "tenant and id cannot be re-cut"


async def test_a_deleted_response_is_gone(make_store: StoreFactory) -> None:
    store = ResponseStore((await make_store()).cache)
    await store.put("acme", ANSWER, ASKED, 60.0)
    assert await store.delete("other", "resp_1") is False
    assert await store.delete("acme", "resp_1") is True
    assert await store.get("acme", "resp_1") is None
    assert await store.delete("acme", "resp_1") is False


async def test_a_response_expires_after_its_ttl(make_store: StoreFactory, backend: str) -> None:
    store = ResponseStore((await make_store()).cache)
    await store.put("acme", ANSWER, ASKED, 0.2)
    assert await store.get("acme", "resp_1") is not None
    await asyncio.sleep(0.3)
    assert await store.get("acme", "resp_1") is None
