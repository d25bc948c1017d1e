"""Passive health per deployment, in process: consecutive failures put a deployment in a cool-down.

A cooling deployment is still allowed by policy; ranking only moves it behind healthy ones.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass
class HealthBoard:
    failure_threshold: int = 3
    cooldown_seconds: float = 30.0
    clock: Callable[[], float] = time.monotonic
    _failures: dict[str, int] = field(default_factory=dict)
    _cool_until: dict[str, float] = field(default_factory=dict)

    def success(self, deployment: str) -> None:
        self._failures.pop(deployment, None)
        self._cool_until.pop(deployment, None)

    def failure(self, deployment: str) -> None:
        count = self._failures.get(deployment, 0) + 1
        self._failures[deployment] = count
        if count >= self.failure_threshold:
            self._cool_until[deployment] = self.clock() + self.cooldown_seconds

    def unhealthy(self) -> frozenset[str]:
        if not self._cool_until:
            return frozenset()
        now = self.clock()
        for deployment in [d for d, until in self._cool_until.items() if until <= now]:
            del self._cool_until[deployment]
        return frozenset(self._cool_until)
