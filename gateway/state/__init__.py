"""Shared state: pick a backend from the process settings (see ``base.py`` for the protocols,
``redis_target.py`` for the Redis settings)."""

from __future__ import annotations

from gateway.state.base import Store
from gateway.state.memory import MemoryStore
from gateway.state.redis_target import ENV_NAMES, RedisSettingError, RedisTarget, target_from_env


async def open_store(
    redis: str | RedisTarget | None, *, prefix: str = "switchyard:", timeout_seconds: float | None = None
) -> Store:
    """In-process state when ``redis`` is None (one replica); otherwise Redis, shared by all replicas:
    a standalone URL, or a target of any mode (``target_from_env``).

    Redis need not be up: its calls raise ``StateUnavailable`` until it is.
    """
    if redis is None:
        return MemoryStore()
    from gateway.state.redis_store import RedisStore  # the redis package is imported only when used

    return await RedisStore.connect(redis, prefix=prefix, timeout_seconds=timeout_seconds)


__all__ = ["ENV_NAMES", "MemoryStore", "RedisSettingError", "RedisTarget", "open_store", "target_from_env"]
