"""Run the app under uvicorn (uvloop + httptools), one process or several workers."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import gc
import logging.config
import math
import os
import signal
import socket
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import asdict, fields, replace
from pathlib import Path
from types import FrameType
from typing import Any, ClassVar

import orjson
import uvicorn
from fastapi import FastAPI
from uvicorn.config import STARTUP_FAILURE
from uvicorn.supervisors.multiprocess import Multiprocess, Process

from gateway.http.app import create_app
from gateway.http.drain import DRAIN, Drain
from gateway.http.protocol import EdgeLimits, HttpProtocol
from gateway.observe.logs import log_config
from gateway.policy.policy_set import PolicySet
from gateway.policyfiles.loader import PolicyError, load_policy_dir
from gateway.settings import EXAMPLE_POLICIES, Settings

SETTINGS_ENV = "SWITCHYARD_SETTINGS"
logger = logging.getLogger("gateway")
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


AUDIT_TARGETS: dict[str | None, str] = {None: "off", "-": "stdout", "/dev/stderr": "stderr"}


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
            f"Audit trail: {AUDIT_TARGETS.get(settings.audit_log, settings.audit_log)}; logs: stderr. Ctrl-C stops.",
        ]
    return "\n".join(lines)


def run(settings: Settings) -> int:
    logging.config.dictConfig(log_config(settings.log_level))
    signal.signal(signal.SIGHUP, signal.SIG_IGN)  # until the app listens for it (a reload), not the default exit
    if settings.policies == EXAMPLE_POLICIES:
        logger.info("no ./policies here: serving the example policies shipped in the package (%s)", settings.policies)
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
    server = Server(_config(app, settings), settings.drain_seconds)
    server.run(sockets=[sock])
    return 0 if server.started else 1


class Server(uvicorn.Server):
    """uvicorn's server, draining on SIGTERM, and waking once a second when idle instead of ten times.

    SIGTERM begins the drain (:mod:`gateway.http.drain`): the listener stays open, ``/readyz`` says 503,
    every answer closes its connection, and the server stops once no request is in flight, or after
    ``drain_seconds``, when the streams still running are cut with an error event. It then exits 0 (uvicorn
    would raise the caught SIGTERM again). A second SIGTERM, or SIGINT, stops at once as uvicorn does:
    the listener closes and requests in flight get ``drain_seconds`` to end. Signals are dispatched by
    ``SIGNALS`` (signal -> method name), the place for another signal's handler.

    uvicorn's main loop sleeps 100 ms at a time to refresh the Date header (which has a resolution
    of one second) and to notice a shutdown. Measured with the bench policy, an idle gateway spent
    about 2 ms of CPU per second on those wakeups; with one client against a 50 ms upstream (about
    20 requests a second) that was 0.1 ms of every request. Here the loop waits up to a second (a
    tenth of one while draining), and a signal wakes it at once, so shutdown is as prompt as before.
    """

    TICK_SECONDS = 1.0
    DRAIN_TICK_SECONDS = 0.1
    CUT_GRACE_SECONDS = 1  # after cutting the streams, what the requests still running get
    SIGNALS: ClassVar[dict[int, str]] = {signal.SIGTERM: "begin_drain"}

    def __init__(self, config: uvicorn.Config, drain_seconds: float = 30.0) -> None:
        super().__init__(config)
        self.config.timeout_graceful_shutdown = math.ceil(drain_seconds)
        self.drain = Drain(drain_seconds)
        self._wake: asyncio.Event | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        self.lifespan.state[DRAIN] = self.drain  # the app and the protocol read it from there
        await super().startup(sockets)

    async def main_loop(self) -> None:
        self._loop, self._wake = asyncio.get_running_loop(), asyncio.Event()
        counter = 0
        should_exit = await self.on_tick(counter)
        while not should_exit:
            tick = self.DRAIN_TICK_SECONDS if self.drain.draining else self.TICK_SECONDS
            counter = (counter + round(tick / 0.1)) % 864000  # on_tick counts uvicorn's 100 ms ticks
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), tick)
            should_exit = await self.on_tick(counter) or self._drained()

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        """uvicorn's, except that a SIGINT (Ctrl-C) that stopped the server is not raised again once it has
        stopped (that ends the process with a KeyboardInterrupt traceback): one line says so, and it exits 0."""
        with super().capture_signals():
            yield
            if signal.SIGINT in self._captured_signals:
                self._captured_signals = [s for s in self._captured_signals if s != signal.SIGINT]
                logger.info("SIGINT (Ctrl-C): stopped")

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        handler = self.SIGNALS.get(sig)
        if handler is not None and not self.should_exit and getattr(self, handler)():
            self._wake_up()
            return
        super().handle_exit(sig, frame)
        self._wake_up()

    def begin_drain(self) -> bool:
        """SIGTERM: begin the drain, or (a second one) stop at once. True if it was handled here."""
        if self.drain.draining:
            return False
        self.drain.begin()
        logger.info("SIGTERM: draining (up to %g s); /readyz answers 503", self.drain.seconds)
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._close_after_answers)
        return True

    def _close_after_answers(self) -> None:
        for connection in list(self.server_state.connections):
            if isinstance(connection, HttpProtocol):
                connection.drain()

    def _drained(self) -> bool:
        """While draining: True once nothing is in flight, or after the drain timeout (cutting the streams)."""
        if not self.drain.draining:
            return False
        busy = self.server_state.tasks or any(getattr(c, "receiving", False) for c in self.server_state.connections)
        if not busy:
            logger.info("drained: no request in flight; stopping")
            return True
        if not self.drain.overdue():
            return False
        cut = self.drain.cut_streams()
        logger.warning("drain timeout (%g s): cut %d stream(s); stopping", self.drain.seconds, cut)
        self.config.timeout_graceful_shutdown = self.CUT_GRACE_SECONDS
        return True

    def _wake_up(self) -> None:
        if self._loop is not None and self._wake is not None:
            self._loop.call_soon_threadsafe(self._wake.set)


class Worker(Process):
    """uvicorn's worker process (health pings, terminate), running :class:`Server` instead of uvicorn's."""

    def __init__(self, config: uvicorn.Config, sockets: list[socket.socket], drain_seconds: float) -> None:
        self.drain_seconds = drain_seconds
        super().__init__(config, sockets)

    @property
    def server(self) -> uvicorn.Server:
        if self._server is None:
            self._server = Server(self.config, self.drain_seconds)
        return self._server


class Workers(Multiprocess):
    """uvicorn's supervisor of ``--workers`` processes, with :class:`Worker` processes: on SIGTERM it sends
    each worker SIGTERM (each drains) and waits for them; on SIGHUP each worker reloads the policy. A worker
    that dies is replaced."""

    def __init__(self, config: uvicorn.Config, sockets: list[socket.socket], drain_seconds: float) -> None:
        super().__init__(config, sockets)
        self.drain_seconds = drain_seconds

    def spawn(self) -> Worker:
        worker = Worker(self.config, self.sockets, self.drain_seconds)
        worker.start()
        return worker

    def init_processes(self) -> None:
        self.processes = [self.spawn() for _ in range(self.processes_num)]

    def keep_subprocess_alive(self) -> None:
        for index, process in enumerate(self.processes):
            if self.should_exit.is_set():
                return
            if process.is_alive(timeout=self.config.timeout_worker_healthcheck):
                continue
            process.kill()
            process.join()
            if process.exitcode == STARTUP_FAILURE:
                logger.error("worker %s failed to start; stopping", process.pid)
                self.should_exit.set()
                return
            logger.info("worker %s died; starting another", process.pid)
            self.processes[index] = self.spawn()

    def handle_hup(self) -> None:
        """SIGHUP: every worker reloads the policy (gateway/http/policy_admin.py); none is restarted. A worker
        that reloaded on ``POST /admin/policies/reload`` sends SIGHUP here, so the others follow it."""
        logger.info("SIGHUP: passing it to %d worker(s) to reload the policy", len(self.processes))
        for process in self.processes:
            if process.process.pid is not None and process.process.exitcode is None:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(process.process.pid, signal.SIGHUP)


def _config(app: FastAPI | str, settings: Settings, **more: Any) -> uvicorn.Config:
    return uvicorn.Config(
        app, host=settings.host, port=settings.port, log_config=log_config(settings.log_level),
        **server_options(settings), **more,
    )  # fmt: skip


def _run_workers(settings: Settings, policy: PolicySet) -> int:
    """Several processes on one port; Prometheus metrics are shared through PROMETHEUS_MULTIPROC_DIR."""
    if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="switchyard-metrics-")
    for stale in Path(os.environ["PROMETHEUS_MULTIPROC_DIR"]).glob("*.db"):
        stale.unlink()
    os.environ[SETTINGS_ENV] = orjson.dumps(asdict(settings), default=str).decode()
    print(banner(settings, policy), flush=True)
    config = _config("gateway.http.serve:app_from_env", settings, factory=True, workers=settings.workers)
    try:
        sock = config.bind_socket()
    except SystemExit:  # uvicorn logged why
        return 1
    Workers(config, [sock], settings.drain_seconds).run()
    return 0


def app_from_env() -> FastAPI:
    """The app of one worker process, built from the settings its parent put in the environment."""
    signal.signal(signal.SIGHUP, signal.SIG_IGN)  # until the app's lifespan reloads on it
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
