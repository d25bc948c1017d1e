"""Active health checks of self-hosted deployments, and the model check at start.

Each deployment with ``health:`` is probed with ``GET <path>`` on its server (the origin of its
``base_url``, reached the way calls are: its proxy, its TLS) every ``interval_seconds``. A probe that
fails (unreachable, timed out, not 2xx) marks the deployment down in the gate, so no request waits
on it, and opens its shared breaker at once (or re-opens it, restarting the cool-down), which other
replicas see through the store. The first good probe after that marks it up and closes the breaker;
a good probe never closes a breaker that request failures opened.

At start, :func:`check_models` asks each OpenAI-compatible deployment's ``/models`` whether its
``upstream_model`` is served there and logs a warning when not; it never stops the gateway.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import replace
from urllib.parse import urlsplit

import orjson

from gateway.errors import UpstreamError
from gateway.policy.policy_set import Deployment, PolicySet
from gateway.upstream.gate import DeploymentGate, breaker_policy
from gateway.upstream.providers.base import Target
from gateway.upstream.providers.openai_compat import OpenAICompatibleProvider

log = logging.getLogger("gateway.health")
OnProbe = Callable[[str, str], None]  # (deployment, result: "ok" or an error code)
TICK_SECONDS = 0.5
MODELS_TIMEOUT_SECONDS = 5.0
NOT_FOUND = 404


def probe_url(dep: Deployment, path: str) -> str:
    parts = urlsplit(dep.spec.base_url or "")
    return f"{parts.scheme}://{parts.netloc}{path}"


def _target(dep: Deployment, api_key: str | None, timeout: float) -> Target:
    spec = dep.spec
    return Target(dep.id, spec.provider, spec.upstream_model or dep.model_id, spec.base_url, api_key, timeout)


class HealthChecker:
    """Probes the deployments of the policy ``current()`` returns; run :meth:`run` as a task."""

    def __init__(
        self,
        current: Callable[[], PolicySet],
        gate: DeploymentGate,
        provider: OpenAICompatibleProvider,
        api_key: Callable[[Deployment], str | None],
        on_probe: OnProbe | None = None,
    ) -> None:
        self._current = current
        self._gate = gate
        self._provider = provider
        self._api_key = api_key
        self._on_probe = on_probe
        self._due: dict[str, float] = {}
        self._running: dict[str, asyncio.Task[str]] = {}

    async def run(self) -> None:
        try:
            while True:
                self._start_due(time.monotonic())
                await asyncio.sleep(TICK_SECONDS)
        finally:
            for task in self._running.values():
                task.cancel()
            await asyncio.gather(*self._running.values(), return_exceptions=True)

    def _start_due(self, now: float) -> None:
        policy = self._current()
        checked = {d.id: d for d in policy.deployments.values() if d.spec.health is not None and d.unavailable is None}
        for gone in set(self._gate.down) - set(checked):
            self._gate.down.pop(gone, None)  # no longer checked: requests decide again
        for dep_id, dep in checked.items():
            if self._due.get(dep_id, 0.0) > now or dep_id in self._running:
                continue
            assert dep.spec.health is not None
            self._due[dep_id] = now + dep.spec.health.interval_seconds
            task = asyncio.create_task(self.probe(policy, dep), name=f"health-{dep_id}")
            self._running[dep_id] = task
            task.add_done_callback(self._finished)

    def _finished(self, task: asyncio.Task[str]) -> None:
        for dep_id, running in list(self._running.items()):
            if running is task:
                del self._running[dep_id]

    async def probe(self, policy: PolicySet, dep: Deployment) -> str:
        """One probe: its result ("ok" or the failure's code), fed to the gate and the breaker."""
        health = dep.spec.health
        assert health is not None
        target = _target(dep, self._api_key(dep), health.timeout_seconds)
        try:
            status, _ = await self._provider.get(target, probe_url(dep, health.path))
            result, why = ("ok", "") if 200 <= status < 300 else (f"status_{status}", f"answered {status}")
        except UpstreamError as exc:
            result, why = exc.code or "error", exc.message
        if self._on_probe is not None:
            self._on_probe(dep.id, result)
        await self._feed(policy, dep, result, why)
        return result

    async def _feed(self, policy: PolicySet, dep: Deployment, result: str, why: str) -> None:
        breakers, now = breaker_policy(policy), time.time()
        store = self._gate.store.breakers
        if result != "ok":
            if dep.id not in self._gate.down:
                log.warning("health check of deployment %s failed (%s): skipped until a probe passes", dep.id, why)
            self._gate.down[dep.id] = f"health check failed: {why}"
            # one failure trips it; a breaker already open but past its cool-down is re-opened
            await self._gate.safe(store.record(dep.id, False, replace(breakers, failures=1, failure_rate=None), now))
        elif dep.id in self._gate.down:
            del self._gate.down[dep.id]
            log.info("health check of deployment %s passed: back in rotation", dep.id)
            # no cool-down: the breaker health opened closes now
            await self._gate.safe(store.record(dep.id, True, replace(breakers, cooldown_seconds=0.0), now))


async def check_models(
    policy: PolicySet, provider: OpenAICompatibleProvider, api_key: Callable[[Deployment], str | None]
) -> list[str]:
    """Warn of each OpenAI-compatible deployment whose ``upstream_model`` its server does not list, and of each
    whose ``base_url`` has no ``/v1`` where the server answers 404 (Ollama, vLLM, SGLang and TGI serve the
    OpenAI API under ``/v1`` only).

    Returns the warnings (also logged). A server that cannot be asked is logged at info level only:
    the health checks and the breakers deal with a dead server."""
    deps = [d for d in policy.deployments.values() if d.spec.provider == "openai_compatible" and d.unavailable is None]
    found = await asyncio.gather(*(_listed(d, provider, api_key(d)) for d in deps))
    warnings = []
    for dep, listed in zip(deps, found, strict=True):
        wanted = dep.spec.upstream_model or dep.model_id
        where = f"{dep.spec.base_url}/models"
        if listed == NOT_FOUND and _without_v1(dep.spec.base_url or ""):
            warnings.append(
                f"deployment {dep.id}: {where} answered 404; OpenAI-compatible servers serve under /v1: "
                f"base_url should probably be {(dep.spec.base_url or '').rstrip('/')}/v1"
            )
        elif isinstance(listed, set) and wanted not in listed:
            shown = ", ".join(sorted(listed)[:10]) or "none"
            warnings.append(f"deployment {dep.id}: upstream_model {wanted!r} is not in {where} (it lists {shown})")
    for warning in warnings:
        log.warning("%s", warning)
    return warnings


def _without_v1(base_url: str) -> bool:
    return not urlsplit(base_url).path.rstrip("/").endswith("/v1")


async def _listed(dep: Deployment, provider: OpenAICompatibleProvider, api_key: str | None) -> set[str] | int | None:
    """The models the server lists; :data:`NOT_FOUND` when it answers 404; None when it cannot be asked."""
    url = (dep.spec.base_url or "").rstrip("/") + "/models"
    try:
        status, body = await provider.get(_target(dep, api_key, MODELS_TIMEOUT_SECONDS), url)
        data = orjson.loads(body).get("data") if status == 200 else None
    except (UpstreamError, orjson.JSONDecodeError, AttributeError) as exc:
        log.info("could not list the models of deployment %s: %s", dep.id, exc)
        return None
    if not isinstance(data, list):
        if status == NOT_FOUND:
            return NOT_FOUND
        log.info("could not list the models of deployment %s: %s answered %s", dep.id, url, status)
        return None
    return {str(item.get("id")) for item in data if isinstance(item, dict)}
