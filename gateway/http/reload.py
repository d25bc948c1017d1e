"""Reload the policy: on a file change (polling), on SIGHUP, on ``POST /admin/policies/reload``.

Whatever asks, a reload reads the whole directory, validates it whole (``load_policy_dir``) and, only
if it is good, swaps it in with one assignment of ``gw.routing``: a request reads ``gw.routing`` once
when it starts, so requests in flight finish on the revision they started with. A broken set is
refused and remembered (``rejected``); the last good one keeps serving.

Every decision is stamped with the revision it was made under, so a reload is visible in response
headers, ``GET /admin/policies``, metrics (``gateway_policy_info``, ``gateway_policy_reloads_total``)
and the audit.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Protocol

from gateway.observe.metrics import Metrics
from gateway.policyfiles.loader import ROUTER_ARTIFACT, PolicyError, load_policy_dir, policy_files
from gateway.routing.pipeline import Routing
from gateway.upstream.providers.registry import Providers

Trigger = Literal["startup", "file_watch", "sighup", "admin"]
log = logging.getLogger("gateway.reload")


class Running(Protocol):
    """What a reload changes in a running app (``gateway.http.app.Gateway``): its routing, and its metrics."""

    routing: Routing
    metrics: Metrics


def fingerprint(directory: Path) -> tuple[tuple[str, int, int], ...]:
    """Names, sizes and modification times of the policy files: cheap to take every few seconds."""
    try:
        files = policy_files(directory)
        if (artifact := directory / ROUTER_ARTIFACT).is_file():
            files.append(artifact)
        return tuple((p.name, p.stat().st_size, p.stat().st_mtime_ns) for p in files)
    except OSError:
        return ()


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


@dataclass(frozen=True, slots=True)
class Loaded:
    """The revision in force: when, from where and on whose request it was loaded."""

    revision: str
    source: str
    loaded_at: str
    trigger: Trigger


@dataclass(frozen=True, slots=True)
class Rejected:
    """The last attempt that was refused, with every problem found."""

    at: str
    trigger: Trigger
    source: str
    problems: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Outcome:
    """What one reload did: ``changed`` (a new revision is in force), or ``problems`` (refused)."""

    revision: str
    changed: bool
    problems: tuple[str, ...] = ()


class PolicyReloader:
    def __init__(self, directory: Path, env: Mapping[str, str], providers: Providers, revision: str) -> None:
        self.directory = directory
        self.env = env
        self.providers = providers
        self.seen = fingerprint(directory)
        self.active = Loaded(revision, str(directory), _now(), "startup")
        self.rejected: Rejected | None = None

    async def watch(self, gw: Running, interval: float) -> None:
        """The file watch: look every ``interval`` seconds, reload when the files changed."""
        while True:
            await asyncio.sleep(interval)
            self.check(gw)

    def check(self, gw: Running) -> bool:
        """Reload if the files changed; True when a new policy is in force."""
        if fingerprint(self.directory) == self.seen:
            return False
        return self.reload(gw, "file_watch").changed

    def reload(self, gw: Running, trigger: Trigger) -> Outcome:
        """Load the directory now; swap it in if it is valid and new, else keep the revision in force."""
        self.seen = fingerprint(self.directory)  # taken first: a change made while loading is seen next time
        old = gw.routing.policy
        try:
            policy = load_policy_dir(self.directory, self.env)
        except PolicyError as exc:
            gw.metrics.reloads.labels("failure").inc()
            self.rejected = Rejected(_now(), trigger, str(self.directory), tuple(exc.problems))
            problems = "; ".join(exc.problems)
            log.error("policy reload (%s) failed; keeping revision %s: %s", trigger, old.revision, problems)
            return Outcome(old.revision, changed=False, problems=tuple(exc.problems))
        if policy.revision == old.revision:
            return Outcome(old.revision, changed=False)
        self.providers.ensure(policy)
        gw.routing = dataclasses.replace(gw.routing, policy=policy)  # the swap: one assignment (its classifier too)
        self.active = Loaded(policy.revision, policy.source, _now(), trigger)
        gw.metrics.reloads.labels("success").inc()
        gw.metrics.policy_loaded(policy.revision, old.revision)
        log.info("policy reloaded (%s): revision %s -> %s", trigger, old.revision, policy.revision)
        return Outcome(policy.revision, changed=True)

    def report(self) -> dict[str, object]:
        """``GET /admin/policies``: the revision in force and the last refused attempt."""
        rejected = self.rejected
        return {
            "revision": self.active.revision,
            "source": self.active.source,
            "loaded_at": self.active.loaded_at,
            "trigger": self.active.trigger,
            "last_rejected": None if rejected is None else dataclasses.asdict(rejected),
        }
