"""The one command: fake upstream, gateway (and LiteLLM's proxy), load, and the table.

    .venv/bin/python -m bench                       # the full matrix, gateway vs direct
    .venv/bin/python -m bench --compare litellm     # ... and LiteLLM's proxy, interleaved per scenario
    .venv/bin/python -m bench --soak 600            # steady mixed load, RSS slope in MB/min
    .venv/bin/python -m bench --profile             # py-spy profiles of the gateway under load

See bench/README.md for every option. Figures only: nothing here fails for being slow.
"""

from __future__ import annotations

import argparse
import itertools
import json
import platform
import subprocess
import time
from collections.abc import Sequence
from importlib import metadata
from pathlib import Path

from bench import report, startup, targets
from bench.cells import Cell, Scenario, configure_upstream, run_cell, wait_for_quiet
from bench.procs import Server, hwm_mb
from bench.targets import Target

COMPARE = ("litellm", "floor", "floor-httpx")
EXTRA = ("gateway-model",)


def _csv(kind: type, allowed: Sequence[str] = ()) -> object:
    def parse(text: str) -> list[object]:
        values = [kind(v) for v in text.split(",") if v]
        bad = [v for v in values if allowed and v not in allowed]
        if bad:
            raise argparse.ArgumentTypeError(f"unknown {bad}; choose from {', '.join(allowed)}")
        return values

    return parse


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m bench", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--duration", type=float, default=10.0, help="measured seconds per cell (default 10)")
    p.add_argument("--warmup", type=float, default=2.0, help="warm-up seconds per cell, not measured (default 2)")
    p.add_argument("--delays", type=_csv(float), default=[0.0, 50.0], help="upstream delays in ms (default 0,50)")
    p.add_argument("--concurrency", type=_csv(int), default=[1, 16, 64], help="clients (default 1,16,64)")
    p.add_argument("--modes", type=_csv(str, ("plain", "stream")), default=["plain", "stream"])
    p.add_argument("--chunks", type=int, default=20, help="content chunks per streamed answer (default 20)")
    p.add_argument("--chunk-gap-ms", type=float, default=0.0, help="upstream time between chunks (default 0)")
    p.add_argument(
        "--compare", type=_csv(str, COMPARE), default=[], help="litellm, floor (pass-through, aiohttp), floor-httpx"
    )
    p.add_argument("--extra", type=_csv(str, EXTRA), default=[], help="gateway-model: a named model, no route")
    p.add_argument("--policies", type=Path, default=targets.BENCH / "policies")
    p.add_argument(
        "--gateway-ref",
        default=None,
        metavar="REF",
        help="benchmark gateway/ as of this git ref (e.g. HEAD) instead of the working tree",
    )
    p.add_argument("--gateway-args", default="", help='extra `gateway serve` arguments, e.g. "--workers 2"')
    p.add_argument("--startup-runs", type=int, default=3, help="gateway start-ups to time (0: skip)")
    p.add_argument("--no-network-check", action="store_true", help="skip the strace check of start-up")
    p.add_argument("--routing-runs", type=int, default=10000, help="routing micro-benchmark runs (0: skip)")
    p.add_argument("--soak", type=float, default=0.0, metavar="SECONDS", help="run only the soak, this long")
    p.add_argument("--soak-concurrency", type=int, default=16)
    p.add_argument("--profile", action="store_true", help="run only py-spy profiles of the gateway under load")
    p.add_argument("--profile-seconds", type=float, default=20.0)
    p.add_argument("--profile-target", choices=["gateway", "floor", "floor-httpx"], default="gateway")
    p.add_argument("--json", type=Path, default=None, help="also write every figure here")
    p.add_argument(
        "--quiet",
        type=float,
        default=0.0,
        metavar="PCT",
        help="before each cell, wait until other work uses less than PCT%% of all cores (0: don't)",
    )
    p.add_argument("--quiet-wait", type=float, default=30.0, help="longest wait for --quiet, seconds (default 30)")
    return p


def machine(args: argparse.Namespace) -> list[str]:
    cpu = next(
        (
            ln.split(":", 1)[1].strip()
            for ln in Path("/proc/cpuinfo").read_text().splitlines()
            if ln.startswith("model name")
        ),
        "unknown",
    )
    versions = ", ".join(
        f"{name} {_version(name)}"
        for name in ("uvicorn", "uvloop", "httptools", "httpx", "fastapi", "starlette", "orjson", "pydantic")
    )
    commit = _git("rev-parse", "--short", "HEAD")
    dirty = _git("status", "--short", "--", "gateway") and not args.gateway_ref
    load = Path("/proc/loadavg").read_text().split()[:3]
    return [
        f"machine: {platform.node()}, {len(_cpus())} cores ({cpu}), Linux {platform.release()}, "
        f"Python {platform.python_version()}",
        f"versions: {versions}",
        f"repository at commit {commit}{' + uncommitted changes in gateway/' if dirty else ''}; "
        f"gateway code: {targets.gateway_spec(args).describe()}",
        f"load average at start: {' '.join(load)}",
    ]


def _cpus() -> list[int]:
    import os

    return sorted(os.sched_getaffinity(0))


def _version(name: str) -> str:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return "-"


def _git(*args: str) -> str:
    out = subprocess.run(["git", *args], capture_output=True, text=True, cwd=targets.REPO, check=False)
    return out.stdout.strip()


def scenarios(args: argparse.Namespace) -> list[Scenario]:
    return [
        Scenario(delay, mode == "stream", conc, args.chunks, args.chunk_gap_ms)
        for delay, mode, conc in itertools.product(args.delays, args.modes, args.concurrency)
    ]


def start_servers(args: argparse.Namespace, upstream: Server, servers: list[Server]) -> None:
    """Start the gateway and the others into ``servers`` (so the caller can stop them if a later one fails)."""
    servers.append(targets.start_gateway(upstream, args.policies, targets.gateway_spec(args)))
    print(f"gateway ready in {servers[0].started_in:.2f} s (first successful auto request)", flush=True)
    if "floor" in args.compare:
        servers.append(targets.start_floor(upstream, "aiohttp"))
    if "floor-httpx" in args.compare:
        servers.append(targets.start_floor(upstream, "httpx"))
    if "litellm" in args.compare:
        print(f"starting LiteLLM's proxy {targets.LITELLM_VERSION} ...", flush=True)
        servers.append(targets.start_litellm(upstream))
        print(f"LiteLLM ready in {servers[-1].started_in:.2f} s (first successful request)", flush=True)


def target_list(args: argparse.Namespace, upstream: Server, servers: list[Server]) -> list[Target]:
    """Direct first, then the gateway, then the others: each scenario runs them back to back."""
    gateway = servers[0]
    out = [targets.direct(upstream), targets.target_for(gateway, upstream)]
    if "gateway-model" in args.extra:
        out.append(targets.named_model(gateway))
    out += [targets.target_for(s, upstream) for s in servers[1:]]
    return out


def run_matrix(args: argparse.Namespace, upstream: Server, items: list[Target]) -> list[Cell]:
    cells = []
    for scenario in scenarios(args):
        configure_upstream(upstream, scenario)
        for target in items:
            if args.quiet:
                busy = wait_for_quiet(args.quiet, args.quiet_wait)
                if busy >= args.quiet:
                    print(f"  (machine still {busy:.0f}% busy after {args.quiet_wait:g} s; measuring anyway)")
            cell = run_cell(target, scenario, args.duration, args.warmup, upstream)
            s = cell.stats
            print(
                f"  {scenario.label:30} {target.name:14} {s['rps']:8.0f} rps  p50 {s['p50_ms']:8.2f} ms  "
                f"cpu {cell.cpu_ms_per_req or 0:6.2f} ms/req  errors {s['errors']:.0f}",
                flush=True,
            )
            cells.append(cell)
    return cells


def matrix(args: argparse.Namespace) -> None:
    header = machine(args)
    print("\n".join(header), flush=True)
    upstream = targets.start_upstream()
    servers: list[Server] = []
    try:
        try:
            start_servers(args, upstream, servers)
            started = time.monotonic()
            cells = run_matrix(args, upstream, target_list(args, upstream, servers))
            elapsed = time.monotonic() - started
            peaks = {s.name: hwm_mb(s.pid) for s in servers}
        finally:
            for server in servers:
                server.stop()
        extra = after_matrix(args, upstream, servers)
    finally:
        upstream.stop()
    summary(args, header, cells, peaks, servers, extra, elapsed)


def after_matrix(args: argparse.Namespace, upstream: Server, servers: list[Server]) -> dict[str, object]:
    extra: dict[str, object] = {}
    spec = targets.gateway_spec(args)
    if args.startup_runs:
        extra["startup"] = startup.measure(upstream, args.policies, spec, args.startup_runs).gateway_runs
    if not args.no_network_check:
        extra["network"] = [c.line() for c in startup.network_checks(upstream, args.policies, spec)]
    if args.routing_runs:
        extra["routing"] = routing(args, spec, upstream)
    return extra


def routing(args: argparse.Namespace, spec: targets.GatewaySpec, upstream: Server) -> list[str]:
    """The routing micro-benchmark, in its own process so that it runs the same gateway code as the server."""
    script = targets.BENCH / "routing_decision.py"
    argv = [targets.PYTHON, str(script), "--policies", str(args.policies), "--n", str(args.routing_runs)]
    out = subprocess.run(argv, env=spec.env(upstream), capture_output=True, text=True, check=False, cwd=targets.REPO)
    return (out.stdout or out.stderr).strip().splitlines()


def summary(
    args: argparse.Namespace,
    header: list[str],
    cells: list[Cell],
    peaks: dict[str, float],
    servers: list[Server],
    extra: dict[str, object],
    elapsed: float,
) -> None:
    startup_runs = extra.get("startup") or []
    assert isinstance(startup_runs, list)
    median_startup = sorted(startup_runs)[len(startup_runs) // 2] if startup_runs else None
    lines = [
        "",
        *header,
        f"load average at end: {' '.join(Path('/proc/loadavg').read_text().split()[:3])}",
        f"matrix: {len(cells)} cells, {args.duration:g} s measured + {args.warmup:g} s warm-up each, "
        f"{elapsed / 60:.1f} min",
        "",
        report.table(cells),
        "",
        "peak RSS (VmHWM, whole process tree) over the run: " + ", ".join(f"{k} {v:.0f} MB" for k, v in peaks.items()),
        "start-up to first successful request: " + ", ".join(f"{s.name} {s.started_in:.2f} s" for s in servers),
    ]
    if startup_runs:
        runs = ", ".join(f"{t:.2f} s" for t in startup_runs)
        lines.append(f"gateway start-up, {len(startup_runs)} more runs: {runs}")
    lines += [str(x) for x in extra.get("network", [])]  # type: ignore[attr-defined]
    lines += ["", *extra.get("routing", [])]  # type: ignore[misc]
    lines += ["", report.check_table(report.checks(cells, peaks.get("gateway"), median_startup, None))]
    print("\n".join(lines), flush=True)
    if args.json:
        payload = {"header": header, "cells": [c.as_json() for c in cells], "peaks_mb": peaks, **extra}
        args.json.write_text(json.dumps(payload, indent=1))


def main(argv: list[str] | None = None) -> None:
    args = parser().parse_args(argv)
    if args.gateway_ref:  # resolved once: HEAD may move while a run is under way
        args.gateway_ref = _git("rev-parse", "--verify", args.gateway_ref + "^{commit}") or args.gateway_ref
    if args.soak:
        from bench import soak

        soak.run(args)
    elif args.profile:
        from bench import profile

        profile.run(args)
    else:
        matrix(args)


if __name__ == "__main__":
    main()
