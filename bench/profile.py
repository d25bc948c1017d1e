"""Profiles of the gateway under load with py-spy (sampling; the gateway is not restarted or slowed much).

    .venv/bin/python -m bench --profile [--profile-seconds 20] [--concurrency 16] [--modes plain,stream]
                                        [--profile-target gateway|floor|floor-httpx]

For each mode, at the first ``--delays`` value and the first ``--concurrency`` value, py-spy records the gateway
process while the load generator drives it through the ``auto`` route. Writes a flame graph and the
collapsed stacks to bench/.logs/, and prints where the samples fall: by function (self and
inclusive) and by package (self), as a share of all samples taken while the gateway was on CPU.
py-spy is installed into bench/.venv-tools on first use.
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
from collections import Counter
from collections.abc import Callable
from pathlib import Path

from bench import targets
from bench.cells import Scenario, configure_upstream, run_cell
from bench.procs import Server

_FRAME = re.compile(r"^(?P<func>.*) \((?P<file>[^()]*?)(?::(?P<line>\d+))?\)$")


def py_spy() -> Path:
    return targets.tool("py-spy", "py-spy")


def run(args: argparse.Namespace) -> None:
    binary = py_spy()
    upstream = targets.start_upstream()
    try:
        server = _start(args, upstream)
    except BaseException:
        upstream.stop()
        raise
    try:
        for mode in args.modes:
            scenario = Scenario(args.delays[0], mode == "stream", args.concurrency[0], args.chunks, args.chunk_gap_ms)
            configure_upstream(upstream, scenario)
            stacks = record(binary, server, upstream, scenario, args.profile_seconds)
            print(f"\n## {server.name}, {scenario.label} ({args.profile_seconds:g} s)\n")
            print(summarise(stacks))
    finally:
        server.stop()
        upstream.stop()


def _start(args: argparse.Namespace, upstream: Server) -> Server:
    if args.profile_target == "gateway":
        return targets.start_gateway(upstream, args.policies, targets.gateway_spec(args))
    return targets.start_floor(upstream, "httpx" if args.profile_target == "floor-httpx" else "aiohttp")


def record(binary: Path, server: Server, upstream: Server, scenario: Scenario, seconds: float) -> Path:
    name = f"profile-{server.name}-{'stream' if scenario.stream else 'plain'}-c{scenario.concurrency}"
    raw = targets.BENCH / ".logs" / f"{name}.txt"
    svg = targets.BENCH / ".logs" / f"{name}.svg"
    common = ["--pid", str(server.pid), "--rate", "250", "--nonblocking", "--duration", str(int(seconds))]
    spies = [
        subprocess.Popen(
            [str(binary), "record", *common, "--format", "raw", "-o", str(raw)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        ),
        subprocess.Popen(
            [str(binary), "record", *common, "--format", "flamegraph", "-o", str(svg)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        ),
    ]
    target = targets.target_for(server, upstream)
    cell = run_cell(target, scenario, seconds + 1, 1.0, upstream, [s.pid for s in spies])
    for spy in spies:
        spy.wait(60)
    print(
        f"\nload while profiling: {cell.stats['rps']:.0f} rps, p50 {cell.stats['p50_ms']:.2f} ms, "
        f"{server.name} CPU {cell.cpu_ms_per_req or 0:.2f} ms/req (py-spy adds some); flame graph: {svg}"
    )
    return raw


def _parse(raw: Path) -> list[tuple[list[tuple[str, str]], int]]:
    """Collapsed stacks -> [([(function, file), ...] root first, count)]."""
    out = []
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        frames = []
        for frame in stack.split(";"):
            match = _FRAME.match(frame)
            frames.append((match["func"], match["file"]) if match else (frame, ""))
        out.append((frames, int(count)))
    return out


def package(file: str) -> str:
    """The package a source file belongs to: site-packages/<pkg>/..., gateway/..., or the stdlib module."""
    for marker in ("site-packages/", "dist-packages/"):
        if marker in file:
            return file.split(marker, 1)[1].split("/", 1)[0].removesuffix(".py")
    if "/gateway/" in file or file.startswith("gateway/"):
        tail = file.split("gateway/", 1)[1]
        return "gateway." + tail.removesuffix(".py").replace("/", ".")
    if "/lib/python3" in file:
        return "stdlib:" + file.rsplit("/lib/python3", 1)[1].split("/", 2)[-1].split("/", 1)[0].removesuffix(".py")
    return file or "?"


GROUPS = {
    "HTTP client to the upstream (httpx, httpcore, h11, anyio)": ("httpx", "httpcore", "h11", "anyio", "sniffio"),
    "HTTP server (uvicorn, httptools)": ("uvicorn", "httptools"),
    "web framework (starlette, fastapi)": ("starlette", "fastapi"),
    "metrics (prometheus_client)": ("prometheus_client",),
    "retries (tenacity)": ("tenacity",),
    "pydantic": ("pydantic", "pydantic_core"),
}


def group(pkg: str) -> str:
    top = pkg.split("/", 1)[0]
    for name, members in GROUPS.items():
        if top in members:
            return name
    if pkg.startswith("gateway."):
        return "gateway code"
    return "stdlib, event loop and the rest"


def summarise(raw: Path, top: int = 25) -> str:
    stacks = _parse(raw)
    total = sum(count for _, count in stacks) or 1
    self_fn: Counter[str] = Counter()
    incl_fn: Counter[str] = Counter()
    incl_gw: Counter[str] = Counter()
    self_grp: Counter[str] = Counter()
    for frames, count in stacks:
        func, file = frames[-1]
        self_fn[f"{func} ({_short(file)})"] += count
        self_grp[group(package(file))] += count
        for name in {f"{f} ({_short(p)})" for f, p in frames}:
            incl_fn[name] += count
        for name in {f"{f} ({_short(p)})" for f, p in frames if package(p).startswith("gateway.")}:
            incl_gw[name] += count
    pct = _percent(total)
    lines = [f"{total} samples on CPU", "", "| where the CPU goes (self) | % |", "|---|---|"]
    lines += [pct(name, n) for name, n in self_grp.most_common()]
    lines += ["", "| function (self) | % |", "|---|---|", *(pct(k, n) for k, n in self_fn.most_common(top))]
    lines += ["", "| function (inclusive) | % |", "|---|---|", *(pct(k, n) for k, n in incl_fn.most_common(top + 15))]
    lines += ["", "| gateway function (inclusive) | % |", "|---|---|"]
    lines += [pct(k, n) for k, n in incl_gw.most_common(top)]
    return "\n".join(lines)


def _percent(total: int) -> Callable[[str, int], str]:
    return lambda name, n: f"| {name} | {100 * n / total:.1f} |"


def _short(file: str) -> str:
    for marker in ("site-packages/", "/lib/python3.11/"):
        if marker in file:
            return file.split(marker, 1)[1]
    return file.split("/work/main/", 1)[-1]


if __name__ == "__main__":
    print(summarise(Path(sys.argv[1])))
