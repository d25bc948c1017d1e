"""Start-up time to the first successful request, and a check that start-up reaches for no network.

The network check runs ``gateway serve`` under ``strace -f -e trace=connect`` (when strace is
installed) and lists every connect() to an address outside loopback. It runs twice: with the
benchmark policy (litellm is not needed, so not imported) and with the example policies plus fake
provider keys, so that litellm *is* imported, and must still stay offline (its local price map).
"""

from __future__ import annotations

import os
import re
import shutil
import statistics
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

from bench import targets
from bench.procs import Server, free_port, spawn, stop, wait_until

_ADDRESS = re.compile(r'sin6?_addr=inet_(?:pton\(AF_INET6?, )?(?:addr\()?"([^"]+)"|sun_path="([^"]+)"')
LOOPBACK = ("127.", "::1", "::ffff:127.")


@dataclass
class StartupResult:
    gateway_runs: list[float]

    @property
    def median(self) -> float:
        return statistics.median(self.gateway_runs)


def measure(upstream: Server, policies: Path, spec: targets.GatewaySpec, runs: int) -> StartupResult:
    times = []
    for _ in range(runs):
        server = targets.start_gateway(upstream, policies, spec, name="gateway-startup")
        times.append(server.started_in)
        server.stop()
    return StartupResult(times)


@dataclass
class NetworkCheck:
    label: str
    litellm_imported: bool
    connects: list[str]  # every connect() destination seen
    outside: list[str]  # the ones not on loopback (nor a unix socket)

    def line(self) -> str:
        where = ", ".join(sorted(set(self.outside))) or "none"
        return (
            f"{self.label}: litellm imported: {'yes' if self.litellm_imported else 'no'}; "
            f"connect() calls: {len(self.connects)}; outside loopback: {where}"
        )


def network_checks(upstream: Server, policies: Path, spec: targets.GatewaySpec) -> list[NetworkCheck]:
    if shutil.which("strace") is None:
        print("strace not installed (apt-get install strace): network check skipped")
        return []
    fake_keys = {
        "OPENAI_API_KEY": "sk-fake",
        "ANTHROPIC_API_KEY": "sk-ant-fake",
        "GEMINI_API_KEY": "fake",
        "DEEPSEEK_API_KEY": "sk-fake",
    }
    return [
        _traced("bench policy", policies, spec.env(upstream), request=True),
        _traced(
            "example policies with provider keys set",
            spec.example_policies(),
            {**spec.env(upstream), **fake_keys},
            request=False,
        ),
    ]


def _traced(label: str, policies: Path, env: dict[str, str], request: bool) -> NetworkCheck:
    port = free_port()
    trace = targets.BENCH / ".logs" / f"strace-{port}.txt"
    log = targets.BENCH / ".logs" / f"gateway-strace-{port}.log"
    argv = [
        "strace",
        "-f",
        "-e",
        "trace=connect",
        "-o",
        str(trace),
        *targets.GATEWAY_COMMAND,
        "serve",
        "--policies",
        str(policies),
        "--port",
        str(port),
        "--log-level",
        "info",
    ]
    proc = spawn(argv, env=env, log=log, cwd=targets.REPO)
    base = f"http://127.0.0.1:{port}"
    try:
        wait_until(lambda: _ok(base + "/healthz"), proc, 60, "the traced gateway")
        if request:
            body = b'{"model": "auto", "messages": [{"role": "user", "content": "hi"}]}'
            httpx.post(base + "/v1/chat/completions", content=body, headers={"authorization": "Bearer bench-key"})
        time.sleep(2.0)  # anything fetched in the background right after start-up shows up here
    finally:
        stop(proc)
    connects = [m.group(1) or m.group(2) for m in _ADDRESS.finditer(trace.read_text())]
    outside = [a for a in connects if not a.startswith(LOOPBACK) and not a.startswith("/")]
    imported = "loading litellm" in log.read_text(errors="replace")
    os.unlink(trace)
    return NetworkCheck(label, imported, connects, outside)


def _ok(url: str) -> bool:
    try:
        return httpx.get(url, timeout=1).status_code == 200
    except httpx.HTTPError:
        return False
