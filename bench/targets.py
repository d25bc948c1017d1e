"""What the benchmark starts and sends load to: the fake upstream, the gateway, the floor, LiteLLM's proxy.

Each target is reached over loopback only; each server is a separate process (group) started here.
"""

from __future__ import annotations

import argparse
import os
import shlex
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from bench import loadgen
from bench.procs import Server, answers, free_port, spawn, wait_until

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
PYTHON = sys.executable
# ``python -P -m gateway``, not the ``gateway`` script: the script names the module its install had
# (gateway.cli.main), a --gateway-ref snapshot may have another layout; -P keeps the working tree's
# directory off sys.path so that the snapshot on PYTHONPATH is what runs.
GATEWAY_COMMAND = (PYTHON, "-P", "-m", "gateway")
LITELLM_VERSION = "1.108.7"
LITELLM_VENV = BENCH / ".venv-litellm"
TOOLS = BENCH / ".venv-tools"  # profilers and other servers, kept out of the gateway's environment
LITELLM_KEY = "sk-bench-master-key"
GATEWAY_KEY = "bench-key"
UPSTREAM_MODEL = "bench-model"


@dataclass(frozen=True)
class GatewaySpec:
    """Which gateway code runs and how: ``ref`` is a git ref to snapshot (None: the working tree)."""

    ref: str | None = None
    args: tuple[str, ...] = ()

    def env(self, upstream: Server) -> dict[str, str]:
        env = {**os.environ, "BENCH_UPSTREAM_URL": upstream.base_url}
        if self.ref:
            env["PYTHONPATH"] = str(snapshot(self.ref))
        return env

    def example_policies(self) -> Path:
        """The example policies that go with this gateway code (their schema moves with it)."""
        return snapshot(self.ref) / "policies" if self.ref else REPO / "policies"

    def describe(self) -> str:
        where = f"snapshot of {self.ref} ({_rev(self.ref)})" if self.ref else "working tree"
        return f"{where}; serve args: {' '.join(self.args) or '(defaults)'}"


def _rev(ref: str) -> str:
    out = subprocess.run(["git", "rev-parse", "--short", ref], capture_output=True, text=True, cwd=REPO, check=True)
    return out.stdout.strip()


def snapshot(ref: str) -> Path:
    """``gateway/`` (and the example ``policies/``) as of ``ref``, exported once to bench/.logs/gateway-<sha>/."""
    path = _logs() / f"gateway-{_rev(ref)}"
    if not (path / "policies").is_dir():
        path.mkdir(parents=True, exist_ok=True)
        argv = ["git", "archive", ref, "gateway", "policies"]
        archive = subprocess.run(argv, capture_output=True, cwd=REPO, check=True)
        subprocess.run(["tar", "-x", "-C", str(path)], input=archive.stdout, check=True)
    return path


@dataclass(frozen=True)
class Target:
    """Where one column of the table sends its requests."""

    name: str
    url: str  # the chat completions URL
    model: str  # what the client puts in "model"
    key: str | None
    server: Server | None  # the process whose CPU and memory are reported (None: direct)

    def requests(self, stream: bool) -> list[bytes]:
        return [loadgen.http_request(self.url, loadgen.chat_body(self.model, stream, p), self.key) for p in PROMPTS]


PROMPTS = loadgen.PROMPTS[:1]  # one realistic request; the soak mixes all of them


def _logs() -> Path:
    path = BENCH / ".logs"
    path.mkdir(exist_ok=True)
    return path


def start_upstream() -> Server:
    port = free_port()
    proc = spawn([PYTHON, "-m", "bench.upstream", "--port", str(port)], log=_logs() / "upstream.log", cwd=REPO)
    base = f"http://127.0.0.1:{port}/v1"
    server = Server("upstream", base, proc)
    probe = answers(base + "/chat/completions", loadgen.chat_body(UPSTREAM_MODEL, False), None)
    server.started_in = wait_until(probe, proc, 30, "the fake upstream")
    return server


def start_gateway(upstream: Server, policies: Path, spec: GatewaySpec, name: str = "gateway") -> Server:
    """``gateway serve --policies bench/policies``; ready when an ``auto`` request through it returns 200."""
    port = free_port()
    argv = [*GATEWAY_COMMAND, "serve", "--policies", str(policies), "--port", str(port), "--log-level", "warning"]
    proc = spawn([*argv, *spec.args], env=spec.env(upstream), log=_logs() / f"{name}.log", cwd=REPO)
    base = f"http://127.0.0.1:{port}/v1"
    server = Server(name, base, proc, log=_logs() / f"{name}.log")
    probe = answers(base + "/chat/completions", loadgen.chat_body("auto", False), GATEWAY_KEY)
    server.started_in = wait_until(probe, proc, 60, "the gateway")
    return server


def start_floor(upstream: Server, client: str = "aiohttp") -> Server:
    """The pass-through floor; ``client`` is its upstream HTTP client (aiohttp, or httpx as in the gateway)."""
    port = free_port()
    origin = upstream.base_url.removesuffix("/v1")
    argv = [PYTHON, "-m", "bench.passthrough", "--upstream", origin, "--port", str(port), "--client", client]
    name = "floor" if client == "aiohttp" else f"floor-{client}"
    proc = spawn(argv, log=_logs() / f"{name}.log", cwd=REPO)
    base = f"http://127.0.0.1:{port}/v1"
    server = Server(name, base, proc)
    probe = answers(base + "/chat/completions", loadgen.chat_body(UPSTREAM_MODEL, False), None)
    server.started_in = wait_until(probe, proc, 30, "the pass-through floor")
    return server


def tool(name: str, *packages: str) -> Path:
    """The executable ``name`` from ``bench/.venv-tools``, installing ``packages`` there on first use."""
    binary = TOOLS / "bin" / name
    if not binary.exists():
        print(f"installing {', '.join(packages)} into {TOOLS} ...", flush=True)
        subprocess.run([sys.executable, "-m", "venv", str(TOOLS)], check=True)
        subprocess.run([str(TOOLS / "bin" / "pip"), "install", "--quiet", *packages], check=True)
    return binary


def ensure_litellm() -> Path:
    """``bench/.venv-litellm`` with ``litellm[proxy]`` pinned; created on first use (a few minutes)."""
    binary = LITELLM_VENV / "bin" / "litellm"
    marker = LITELLM_VENV / f".installed-{LITELLM_VERSION}"
    if binary.exists() and marker.exists():
        return binary
    print(f"installing litellm[proxy]=={LITELLM_VERSION} into {LITELLM_VENV} (first run only) ...", flush=True)
    subprocess.run([PYTHON, "-m", "venv", str(LITELLM_VENV)], check=True)
    pip = [str(LITELLM_VENV / "bin" / "pip"), "install", "--quiet", f"litellm[proxy]=={LITELLM_VERSION}"]
    subprocess.run(pip, check=True)
    marker.touch()
    return binary


def litellm_config(upstream: Server) -> Path:
    """One model pointing at the same fake upstream; master key, no database."""
    path = _logs() / "litellm-config.yaml"
    path.write_text(
        "model_list:\n"
        f"  - model_name: {UPSTREAM_MODEL}\n"
        "    litellm_params:\n"
        f"      model: openai/{UPSTREAM_MODEL}\n"
        f"      api_base: {upstream.base_url}\n"
        "      api_key: sk-fake-upstream-key\n"
        "general_settings:\n"
        f"  master_key: {LITELLM_KEY}\n"
        "litellm_settings:\n"
        "  drop_params: true\n"
    )
    return path


def litellm_env() -> dict[str, str]:
    """Offline: the local price map, no telemetry; nothing in the environment points anywhere but loopback."""
    keep = {k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "LANG", "LC_ALL", "TMPDIR")}
    return {
        **keep,
        "LITELLM_LOCAL_MODEL_COST_MAP": "True",
        "LITELLM_TELEMETRY": "False",
        "LITELLM_LOG": "ERROR",
        "DISABLE_ADMIN_UI": "True",
        "NO_PROXY": "*",
    }


def start_litellm(upstream: Server) -> Server:
    binary = ensure_litellm()
    port = free_port()
    argv = [
        str(binary),
        "--config",
        str(litellm_config(upstream)),
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--num_workers",
        "1",
    ]
    log = _logs() / "litellm.log"
    proc = spawn(argv, env=litellm_env(), log=log, cwd=_logs())
    base = f"http://127.0.0.1:{port}/v1"
    server = Server("litellm", base, proc, log=log)
    probe = answers(base + "/chat/completions", loadgen.chat_body(UPSTREAM_MODEL, False), LITELLM_KEY)
    server.started_in = wait_until(probe, proc, 180, "LiteLLM's proxy")
    return server


def target_for(server: Server, upstream: Server) -> Target:
    chat = server.base_url + "/chat/completions"
    if server.name.startswith("gateway"):
        return Target(server.name, chat, "auto", GATEWAY_KEY, server)
    if server.name == "litellm":
        return Target("litellm", chat, UPSTREAM_MODEL, LITELLM_KEY, server)
    return Target(server.name, chat, UPSTREAM_MODEL, None, server)


def direct(upstream: Server) -> Target:
    return Target("direct", upstream.base_url + "/chat/completions", UPSTREAM_MODEL, None, None)


def named_model(gateway: Server) -> Target:
    """The gateway with a named catalog model instead of a route: no classification, still the policy."""
    chat = gateway.base_url + "/chat/completions"
    return Target("gateway-model", chat, "llama-3.1-8b-instruct", GATEWAY_KEY, gateway)


def gateway_spec(args: argparse.Namespace) -> GatewaySpec:
    """The gateway code and extra serve arguments a run's command line asks for (--gateway-ref, --gateway-args)."""
    return GatewaySpec(args.gateway_ref, tuple(shlex.split(args.gateway_args)))
