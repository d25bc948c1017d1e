"""Watch the policy directory; load a changed policy, keep the last good one when it is broken.

Every decision is stamped with the revision it was made under, so a reload is visible in
response headers, metrics (``gateway_policy_info``, ``gateway_policy_reloads_total``) and the audit.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Protocol

from gateway.observe.metrics import Metrics
from gateway.policyfiles.loader import PolicyError, load_policy_dir, policy_files
from gateway.routing.pipeline import Routing
from gateway.upstream.providers.registry import Providers


class Running(Protocol):
    """What the watcher changes in a running app (``gateway.http.app.Gateway``): its routing, and its metrics."""

    routing: Routing
    metrics: Metrics


log = logging.getLogger("gateway.reload")


def fingerprint(directory: Path) -> tuple[tuple[str, int, int], ...]:
    """Names, sizes and modification times of the policy files: cheap to take every few seconds."""
    try:
        files = policy_files(directory)
        return tuple((p.name, p.stat().st_size, p.stat().st_mtime_ns) for p in files)
    except OSError:
        return ()


class PolicyWatcher:
    def __init__(self, directory: Path, env: Mapping[str, str], providers: Providers, interval: float) -> None:
        self.directory = directory
        self.env = env
        self.providers = providers
        self.interval = interval
        self.seen = fingerprint(directory)

    async def run(self, gw: Running) -> None:
        while True:
            await asyncio.sleep(self.interval)
            self.check(gw)

    def check(self, gw: Running) -> bool:
        """Reload if the files changed; True when a new policy is in force."""
        now = fingerprint(self.directory)
        if now == self.seen:
            return False
        self.seen = now
        old = gw.routing.policy
        try:
            policy = load_policy_dir(self.directory, self.env)
        except PolicyError as exc:
            gw.metrics.reloads.labels("failure").inc()
            log.error("policy reload failed; keeping revision %s: %s", old.revision, "; ".join(exc.problems))
            return False
        self.providers.ensure(policy)
        gw.routing = dataclasses.replace(gw.routing, policy=policy)
        gw.metrics.reloads.labels("success").inc()
        gw.metrics.policy_loaded(policy.revision, old.revision)
        log.info("policy reloaded: revision %s -> %s", old.revision, policy.revision)
        return True
