"""Which ASGI server: uvicorn (uvloop + httptools) or granian, on the same minimal app, same load.

    .venv/bin/python -m bench.servers [--concurrency 64] [--duration 6]

The app (bench/minimal_app.py) answers every POST with a fixed chat-completion body and the seven headers the gateway
sends, so what is measured is the server: parsing the request, the ASGI calls, writing the answer.
granian is installed into bench/.venv-tools on first use. Prints requests/s and the server's CPU
per request (utime + stime of its process tree over the measured window).
"""

from __future__ import annotations

import argparse
import asyncio
import sys

from bench import loadgen
from bench.procs import Server, answers, cpu_seconds, free_port, spawn, stop, wait_until
from bench.targets import BENCH, tool

APP = "minimal_app:app"  # bench/minimal_app.py, run from bench/ so either server imports it


def commands(port: int) -> dict[str, list[str]]:
    uvicorn = [sys.executable, "-m", "uvicorn", APP, "--port", str(port), "--loop", "uvloop", "--http", "httptools",
               "--no-access-log", "--log-level", "warning"]  # fmt: skip
    granian = tool("granian", "granian", "uvloop")
    gran = [str(granian), "--interface", "asgi", "--port", str(port), "--loop", "uvloop", "--workers", "1",
            "--no-ws", "--log-level", "warning", APP]  # fmt: skip
    return {"uvicorn (uvloop, httptools)": uvicorn, "granian (asgi, uvloop)": gran}


def measure(name: str, argv: list[str], port: int, concurrency: int, duration: float) -> str:
    base = f"http://127.0.0.1:{port}"
    proc = spawn(argv, cwd=BENCH, env=None)
    try:
        server = Server(name, base, proc)
        url = base + "/v1/chat/completions"
        server.started_in = wait_until(answers(url, b"{}", None), proc, 30, name)
        marks: dict[str, float] = {}

        def mark(at: str) -> None:
            marks[at] = cpu_seconds(proc.pid)

        request = loadgen.http_request(url, b"{}", None)
        result, end = asyncio.run(loadgen.run(url, [request], concurrency, duration, 1.0, mark))
        summary = result.summary(end)
        cpu_us = 1e6 * (marks["end"] - marks["start"]) / max(summary["requests"], 1)
        return f"| {name} | {summary['rps']:.0f} | {summary['p50_ms']:.2f} | {cpu_us:.0f} | {summary['errors']:.0f} |"
    finally:
        stop(proc)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--duration", type=float, default=6.0)
    args = parser.parse_args()
    print(f"minimal ASGI app, POST, c={args.concurrency}, {args.duration:.0f} s measured per server")
    print("| server | RPS | p50 ms | server CPU us/req | errors |\n|---|---|---|---|---|")
    for name, argv in commands(free_port()).items():
        port = int(argv[argv.index("--port") + 1])
        print(measure(name, argv, port, args.concurrency, args.duration), flush=True)


if __name__ == "__main__":
    main()
