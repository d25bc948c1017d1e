"""Shared state: pick a backend from the process settings (see ``base.py`` for the protocols)."""

from __future__ import annotations

from gateway.state.base import Store
from gateway.state.memory import MemoryStore


async def open_store(redis_url: str | None, *, prefix: str = "switchyard:", timeout_seconds: float = 0.05) -> Store:
    """In-process state when ``redis_url`` is None (one replica); otherwise Redis, shared by all replicas.

    Redis need not be up: its calls raise ``StateUnavailable`` until it is.
    """
    if redis_url is None:
        return MemoryStore()
    from gateway.state.redis_store import RedisStore  # the redis package is imported only when used

    return await RedisStore.connect(redis_url, prefix=prefix, timeout_seconds=timeout_seconds)


__all__ = ["MemoryStore", "open_store"]
