"""A dict whose entries expire, optionally bounded by count (least recently used goes first).

Expiry is lazy (an expired entry is dropped when read) plus a sweep of the whole map at most every
``sweep_seconds``, so keys that are never read again do not pile up.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from typing import Generic, TypeVar

V = TypeVar("V")


class ExpiringMap(Generic[V]):
    def __init__(self, clock: Callable[[], float], *, max_entries: int | None = None, sweep_seconds: float = 5.0):
        self._clock = clock
        self._max = max_entries
        self._sweep_seconds = sweep_seconds
        self._next_sweep = clock() + sweep_seconds
        self._entries: OrderedDict[str, tuple[float, V]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, key: str) -> V | None:
        entry = self._entries.get(key)
        if entry is None:
            return None
        if entry[0] <= self._clock():
            del self._entries[key]
            return None
        if self._max is not None:
            self._entries.move_to_end(key)
        return entry[1]

    def put(self, key: str, value: V, ttl_seconds: float) -> None:
        """Store ``value`` for ``ttl_seconds`` from now (replacing any earlier lifetime)."""
        self._set(key, value, self._clock() + ttl_seconds)

    def extend(self, key: str, value: V, ttl_seconds: float) -> None:
        """Store ``value``; its lifetime becomes the later of the current one and ``ttl_seconds`` from now."""
        entry = self._entries.get(key)
        expires = self._clock() + ttl_seconds
        self._set(key, value, max(expires, entry[0]) if entry else expires)

    def replace(self, key: str, value: V) -> bool:
        """Change a live entry's value, keeping its lifetime; False (and no entry) when there is none."""
        entry = self._entries.get(key)
        if entry is None or entry[0] <= self._clock():
            return False
        self._entries[key] = (entry[0], value)
        return True

    def pop(self, key: str) -> None:
        self._entries.pop(key, None)

    def clear(self) -> None:
        self._entries.clear()

    def _set(self, key: str, value: V, expires: float) -> None:
        self._entries[key] = (expires, value)
        self._entries.move_to_end(key)
        if self._max is not None:
            while len(self._entries) > self._max:
                self._entries.popitem(last=False)
        self._maybe_sweep()

    def _maybe_sweep(self) -> None:
        now = self._clock()
        if now < self._next_sweep:
            return
        self._next_sweep = now + self._sweep_seconds
        for key in [k for k, (expires, _) in self._entries.items() if expires <= now]:
            del self._entries[key]
