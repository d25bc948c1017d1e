"""Stored responses of the Responses API (``store: true``), per tenant, for ``previous_response_id`` and
``GET``/``DELETE /v1/responses/{id}``.

One entry per response in the store's cache (memory or Redis, whichever the gateway runs on), under a key that
carries the tenant: another tenant's key finds nothing, as if the id did not exist. An entry is the response
and the whole input it answered (the input items of its ``previous_response_id`` chain, then its own), so a
follow-up resolves its chain with one read. Entries live ``limits.responses_ttl_seconds`` (policy); a deleted
one is overwritten by an empty tombstone that expires the same way (the cache protocol has no delete).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson

from gateway.state.base import Cache

Json = dict[str, Any]
_DELETED = b""
_TOMBSTONE_SECONDS = 60.0


@dataclass(frozen=True, slots=True)
class Stored:
    response: Json
    input: list[Json]  # every input item the response answered, its chain's first

    @property
    def history(self) -> list[Json]:
        """What a follow-up (``previous_response_id`` = this one) continues: the input, then the output."""
        return [*self.input, *(self.response.get("output") or [])]


class ResponseStore:
    def __init__(self, cache: Cache) -> None:
        self._cache = cache

    async def put(self, tenant: str, response: Json, items: list[Json], ttl_seconds: float) -> None:
        entry = orjson.dumps({"response": response, "input": items})
        await self._cache.put(_key(tenant, response["id"]), entry, ttl_seconds)

    async def get(self, tenant: str, response_id: str) -> Stored | None:
        raw = await self._cache.get(_key(tenant, response_id))
        if not raw:
            return None
        entry = orjson.loads(raw)
        return Stored(entry["response"], entry["input"])

    async def delete(self, tenant: str, response_id: str) -> bool:
        """Whether there was a response to delete."""
        if await self.get(tenant, response_id) is None:
            return False
        await self._cache.put(_key(tenant, response_id), _DELETED, _TOMBSTONE_SECONDS)
        return True


def _key(tenant: str, response_id: str) -> str:
    return f"responses:{len(tenant)}:{tenant}:{response_id}"
