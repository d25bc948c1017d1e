"""Time to first token through the gateway over a real llama.cpp ``llama-server`` (tiny random model).

    .venv/bin/python -m bench.real_upstream [--n 200] [--max-tokens 8]

Builds (once, cached in ~/.cache/switchyard) and starts ``llama-server`` with a two-layer random-weight
GGUF (tests/llamacpp.py), starts ``gateway serve`` with a one-deployment policy in front of it, then
sends the same streamed chat request one at a time, alternating direct and through the gateway (so both
see the same machine noise), with the raw HTTP client the gateway's users would use (httpx, keep-alive).
TTFT is request sent -> first SSE ``data:`` event with content, at the client. Printed: median, p90 and
the gateway's added median, for a client that asks for usage and one that does not (the gateway always
asks its upstream for usage; the second case also measures holding back the finishing chunk).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import yaml

from gateway.routing.auth import hash_key
from tests.llamacpp import LlamaServer
from tests.processes import free_port

REPO = Path(__file__).resolve().parent.parent


def policy_dir(base_url: str) -> Path:
    directory = Path(tempfile.mkdtemp(prefix="switchyard-bench-llama-"))
    sections: dict[str, Any] = {
        "models": {
            "tiny": {
                "vendor": "Switchyard", "origin": "US", "open_weights": True, "license": "MIT",
                "quality_tier": "basic", "endpoints": ["chat", "completions", "embeddings"],
                "capabilities": {"tools": True, "json": True, "context_window": 512},
                "price": {"input": 0.0, "output": 0.0},
            }
        },
        "deployments": {
            "tiny-llama": {"model": "tiny", "base_url": base_url, "operator": "self", "jurisdiction": "US",
                           "self_hosted": True}
        },
        "tenants": {"bench": {"keys": [{"name": "bench", "sha256": hash_key("bench-key")}]}},
        "routes": {"auto": {"tiers": {"simple": ["tiny"], "standard": ["tiny"], "complex": ["tiny"]}}},
    }  # fmt: skip
    for name, content in sections.items():
        (directory / f"{name}.yaml").write_text(yaml.safe_dump({name: content}))
    return directory


def first_token_ms(client: httpx.Client, url: str, body: dict[str, Any]) -> float:
    started = time.perf_counter()
    first = None
    with client.stream("POST", url + "/chat/completions", json=body) as response:
        response.raise_for_status()
        for line in response.iter_lines():
            if first is None and line.startswith("data: ") and '"content"' in line:
                first = time.perf_counter()
    assert first is not None, "no content event"
    return (first - started) * 1000


def run(direct: str, gateway: str, n: int, max_tokens: int) -> None:
    for usage in (True, False):
        body: dict[str, Any] = {
            "model": "tiny", "messages": [{"role": "user", "content": "What is the capital of France?"}],
            "stream": True, "max_tokens": max_tokens, "temperature": 0, "seed": 1,
        }  # fmt: skip
        if usage:
            body["stream_options"] = {"include_usage": True}
        samples: dict[str, list[float]] = {"direct": [], "gateway": []}
        with httpx.Client(headers={"authorization": "Bearer bench-key"}, timeout=60) as client:
            for _ in range(10):  # warm both paths (connections, the server's prompt cache)
                first_token_ms(client, direct, body)
                first_token_ms(client, gateway, body)
            for _ in range(n):
                samples["direct"].append(first_token_ms(client, direct, body))
                samples["gateway"].append(first_token_ms(client, gateway, body))
        d, g = (statistics.median(samples[k]) for k in ("direct", "gateway"))
        d90, g90 = (statistics.quantiles(samples[k], n=10)[8] for k in ("direct", "gateway"))
        label = "client asks include_usage" if usage else "client does not ask for usage"
        print(f"{label}: {n} streams each, max_tokens {max_tokens} (ms)")
        print(f"  direct to llama-server : TTFT p50 {d:7.3f}  p90 {d90:7.3f}")
        print(f"  through the gateway    : TTFT p50 {g:7.3f}  p90 {g90:7.3f}")
        print(f"  added                  : TTFT p50 {g - d:7.3f}  p90 {g90 - d90:7.3f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=200)
    parser.add_argument("--max-tokens", type=int, default=8)
    args = parser.parse_args()
    server = LlamaServer.start(context=512, parallel=2)
    port = free_port()
    policies = policy_dir(server.url + "/v1")
    command = [sys.executable, "-m", "gateway", "serve", "--policies", str(policies), "--port", str(port)]
    gateway = subprocess.Popen(
        [*command, "--log-level", "warning", "--audit-log", "off"], cwd=REPO, env=dict(os.environ),
        stdout=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.1)
        run(server.url + "/v1", f"http://127.0.0.1:{port}/v1", args.n, args.max_tokens)
    finally:
        gateway.terminate()
        gateway.wait(10)
        server.stop()


if __name__ == "__main__":
    main()
