"""Run the app under uvicorn (uvloop + httptools), one process or several workers."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import gc
import logging.config
import os
import socket
import sys
import tempfile
from dataclasses import asdict, fields, replace
from pathlib import Path
from types import FrameType
from typing import Any

import orjson
import uvicorn
from fastapi import FastAPI

from gateway.http.app import create_app
from gateway.http.protocol import EdgeLimits, HttpProtocol
from gateway.observe.logs import log_config
from gateway.policy.policy_set import PolicySet
from gateway.policyfiles.loader import PolicyError, load_policy_dir
from gateway.settings import Settings

SETTINGS_ENV = "SWITCHYARD_SETTINGS"
GC_YOUNG_THRESHOLD = 10_000
# uvloop + httptools (bench/servers.py: granian used more CPU per request on the same app), with each
# response's head and body in one write and limits on what a connection may hold
# (gateway/http/protocol.py, `server_options`); no access
# log (the audit trail has every request); no X-Forwarded-* rewriting (nothing here reads the client
# address or scheme) and no "server: uvicorn" header.
SERVER_OPTIONS: dict[str, Any] = {
    "loop": "uvloop", "http": HttpProtocol, "ws": "none", "lifespan": "on", "access_log": False,
    "proxy_headers": False, "server_header": False,
}  # fmt: skip


def server_options(settings: Settings) -> dict[str, Any]:
    """SERVER_OPTIONS with the protocol bound to the settings' edge limits. A partial of a module-level
    class pickles, so ``--workers`` (uvicorn spawns its workers) passes the same limits on."""
    return {**SERVER_OPTIONS, "http": functools.partial(HttpProtocol, limits=edge_limits(settings))}


def edge_limits(settings: Settings) -> EdgeLimits:
    """The settings' edge limits (same field names)."""
    return EdgeLimits(**{field.name: getattr(settings, field.name) for field in fields(EdgeLimits)})


def banner(settings: Settings, policy: PolicySet) -> str:
    base = f"http://{settings.host}:{settings.port}"
    lines = [f"Switchyard gateway listening on {base}  (policy revision {policy.revision} from {policy.source})"]
    if settings.workers > 1:
        shared = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
        lines.append(f"{settings.workers} worker processes; metrics aggregated in {shared}")
    if settings.demo:
        from gateway.standin.demo import DEMO_KEYS

        lines += [
            "Demo mode: stand-in upstreams on loopback play a self-hosted Qwen, a self-hosted gpt-oss and OpenAI.",
            "Demo API keys: " + "; ".join(f"{k} ({v})" for k, v in DEMO_KEYS.items()),
            "Try:",
            f"  curl -s {base}/v1/chat/completions -H 'Authorization: Bearer demo-key' "
            "-H 'Content-Type: application/json' "
            '-d \'{"model": "auto", "messages": [{"role": "user", "content": "What is the capital of France?"}]}\'',
            "  (add -i to see the x-gateway-* headers; -H 'x-gateway-explain: 1' for the whole decision)",
        ]
    return "\n".join(lines)


def run(settings: Settings) -> int:
    logging.config.dictConfig(log_config(settings.log_level))
    try:  # fail fast, before any socket: the lifespan loads the policy again with the live environment
        policy = load_policy_dir(settings.policies, {} if settings.demo else os.environ)
    except PolicyError as exc:
        print("\n".join(exc.problems), file=sys.stderr)
        print(f"error: {len(exc.problems)} problem(s) in {settings.policies}; not starting", file=sys.stderr)
        return 1
    if settings.workers > 1:
        return _run_workers(settings, policy)
    try:
        sock = socket.create_server((settings.host, settings.port), reuse_port=False)
    except OSError as exc:
        print(f"error: cannot listen on {settings.host}:{settings.port}: {exc}", file=sys.stderr)
        return 1
    settings = replace(settings, port=sock.getsockname()[1])
    app = create_app(settings, on_ready=lambda gw: _ready(banner(settings, gw.routing.policy)))
    server = Server(_config(app, settings))
    server.run(sockets=[sock])
    return 0 if server.started else 1


class Server(uvicorn.Server):
    """uvicorn's server, waking once a second when idle instead of ten times.

    uvicorn's main loop sleeps 100 ms at a time to refresh the Date header (which has a resolution
    of one second) and to notice a shutdown. Measured with the bench policy, an idle gateway spent
    about 2 ms of CPU per second on those wakeups; with one client against a 50 ms upstream (about
    20 requests a second) that was 0.1 ms of every request. Here the loop waits up to a second, and
    the signal handler wakes it at once, so shutdown is as prompt as before. (Worker processes under
    ``--workers`` are uvicorn's own and keep the 100 ms tick.)
    """

    TICK_SECONDS = 1.0

    def __init__(self, config: uvicorn.Config) -> None:
        super().__init__(config)
        self._wake: asyncio.Event | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    async def main_loop(self) -> None:
        self._loop, self._wake = asyncio.get_running_loop(), asyncio.Event()
        ticks_per_wait = round(self.TICK_SECONDS / 0.1)  # on_tick counts uvicorn's 100 ms ticks
        counter = 0
        should_exit = await self.on_tick(counter)
        while not should_exit:
            counter = (counter + ticks_per_wait) % 864000
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.TICK_SECONDS)
            should_exit = await self.on_tick(counter)

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        super().handle_exit(sig, frame)
        if self._loop is not None and self._wake is not None:
            self._loop.call_soon_threadsafe(self._wake.set)


def _config(app: FastAPI, settings: Settings) -> uvicorn.Config:
    return uvicorn.Config(
        app, host=settings.host, port=settings.port, log_config=log_config(settings.log_level),
        **server_options(settings),
    )  # fmt: skip


def _run_workers(settings: Settings, policy: PolicySet) -> int:
    """Several processes on one port; Prometheus metrics are shared through PROMETHEUS_MULTIPROC_DIR."""
    if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="switchyard-metrics-")
    for stale in Path(os.environ["PROMETHEUS_MULTIPROC_DIR"]).glob("*.db"):
        stale.unlink()
    os.environ[SETTINGS_ENV] = orjson.dumps(asdict(settings), default=str).decode()
    print(banner(settings, policy), flush=True)
    uvicorn.run(
        "gateway.http.serve:app_from_env", factory=True, workers=settings.workers, host=settings.host,
        port=settings.port, log_config=log_config(settings.log_level), **server_options(settings),
    )  # fmt: skip
    return 0


def app_from_env() -> FastAPI:
    """The app of one worker process, built from the settings its parent put in the environment."""
    raw = orjson.loads(os.environ[SETTINGS_ENV])
    settings = Settings(**{**raw, "policies": Path(raw["policies"])})
    return create_app(settings, on_ready=lambda gw: _ready(None))


def _ready(banner: str | None) -> None:
    if banner is not None:
        print(banner, flush=True)
    tune_gc()


def tune_gc() -> None:
    """Once the gateway has loaded: keep what lives for the whole process out of the cyclic collector.

    Measured under load (bench, c=64): with the defaults the collector took about 11% of the
    gateway's CPU, most of it full collections walking the ~60,000 objects of the loaded libraries,
    policy and router (about 40 ms each). Freezing them (``gc.freeze``) and collecting the young
    generation after 10,000 net allocations instead of 700 (requests in flight hold a few hundred
    objects each, so the default threshold fires constantly) brings that under 1%. Cyclic garbage is
    still collected, only less often.
    """
    gc.collect()
    gc.freeze()
    gc.set_threshold(GC_YOUNG_THRESHOLD, 10, 10)
