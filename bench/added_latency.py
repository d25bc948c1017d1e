"""Added latency of the gateway over a direct call to the same stand-in upstream.

    .venv/bin/python bench/added_latency.py [--n 2000]

Starts a stand-in OpenAI-compatible upstream and `gateway serve` (example policies, `auto` route,
tenant demo-key) as separate processes on loopback, then sends the same small chat request
sequentially (one client, keep-alive) directly and through the gateway, interleaved, and prints
the latency percentiles and the difference. A quick figure; bench/ grows a full harness later.
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parent.parent
STANDIN = (
    "import uvicorn; from gateway.standin.openai_wire import create_openai_app; "
    "uvicorn.run(create_openai_app(), host='127.0.0.1', port={port}, loop='uvloop', http='httptools', "
    "log_level='warning', access_log=False)"
)
BODY = {"model": "auto", "messages": [{"role": "user", "content": "What is the capital of France?"}]}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_ready(url: str) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            if httpx.get(url, timeout=1).status_code < 500:
                return
        except httpx.HTTPError:
            time.sleep(0.05)
    raise SystemExit(f"{url} did not come up")


def percentiles(samples: list[float]) -> tuple[float, float, float]:
    q = statistics.quantiles(samples, n=100)
    return q[49], q[89], q[98]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=2000)
    args = parser.parse_args()
    up_port, gw_port = free_port(), free_port()
    up_url = f"http://127.0.0.1:{up_port}/v1"
    env = {**os.environ, "QWEN_BASE_URL": up_url, "GPT_OSS_BASE_URL": up_url, "OPENAI_BASE_URL": up_url}
    procs = [
        subprocess.Popen([sys.executable, "-c", STANDIN.format(port=up_port)], cwd=REPO),
        subprocess.Popen(
            [sys.executable, "-m", "gateway", "serve", "--port", str(gw_port), "--log-level", "warning"],
            cwd=REPO,
            env=env,
            stdout=subprocess.DEVNULL,
        ),
    ]
    try:
        wait_ready(f"http://127.0.0.1:{up_port}/v1/models")
        wait_ready(f"http://127.0.0.1:{gw_port}/readyz")
        direct, via = run(up_url, f"http://127.0.0.1:{gw_port}/v1", args.n)
    finally:
        for proc in procs:
            proc.terminate()
            proc.wait(10)
    d, g = percentiles(direct), percentiles(via)
    print(f"sequential non-streaming chat, one client, {args.n} requests each (ms)")
    print(f"  direct to stand-in : p50 {d[0]:6.3f}  p90 {d[1]:6.3f}  p99 {d[2]:6.3f}")
    print(f"  through gateway    : p50 {g[0]:6.3f}  p90 {g[1]:6.3f}  p99 {g[2]:6.3f}")
    print(f"  added              : p50 {g[0] - d[0]:6.3f}  p90 {g[1] - d[1]:6.3f}  p99 {g[2] - d[2]:6.3f}")


def run(direct_url: str, gateway_url: str, n: int) -> tuple[list[float], list[float]]:
    direct, via = [], []
    with httpx.Client(headers={"authorization": "Bearer demo-key"}) as client:
        for _ in range(50):  # warm up both paths
            client.post(direct_url + "/chat/completions", json=BODY)
            client.post(gateway_url + "/chat/completions", json=BODY)
        for _ in range(n):
            for url, out in ((direct_url, direct), (gateway_url, via)):
                started = time.perf_counter()
                response = client.post(url + "/chat/completions", json=BODY)
                out.append((time.perf_counter() - started) * 1000)
                response.raise_for_status()
    return direct, via


if __name__ == "__main__":
    main()
