"""One cell of the table: one target under one scenario, with the server's CPU and memory read around it."""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import httpx
import uvloop

from bench import loadgen
from bench.procs import Server, cpu_seconds, machine_busy_seconds
from bench.targets import Target


@dataclass(frozen=True)
class Scenario:
    delay_ms: float
    stream: bool
    concurrency: int
    chunks: int = 20
    chunk_gap_ms: float = 0.0

    @property
    def label(self) -> str:
        mode = f"stream {self.chunks}ch" if self.stream else "plain"
        return f"delay {self.delay_ms:g} ms, {mode}, c={self.concurrency}"


@dataclass
class Cell:
    scenario: Scenario
    target: str
    stats: dict[str, float]
    cpu_ms_per_req: float | None  # the target server's CPU (process tree) per request
    rss_peak_mb: float | None  # highest VmRSS of the target server sampled during the cell
    errors_by_kind: dict[str, int] = field(default_factory=dict)
    noise_pct: float = 0.0  # CPU used by processes outside the benchmark, % of all cores, during the cell
    upstream_connections: int = 0  # connections the upstream accepted during the measured phase

    def as_json(self) -> dict[str, Any]:
        return {
            "scenario": self.scenario.__dict__,
            "target": self.target,
            "stats": self.stats,
            "cpu_ms_per_req": self.cpu_ms_per_req,
            "rss_peak_mb": self.rss_peak_mb,
            "errors_by_kind": self.errors_by_kind,
            "noise_pct": self.noise_pct,
            "upstream_connections": self.upstream_connections,
        }


def configure_upstream(upstream: Server, scenario: Scenario) -> None:
    config = {"delay_ms": scenario.delay_ms, "chunks": scenario.chunks, "chunk_gap_ms": scenario.chunk_gap_ms}
    httpx.post(upstream.base_url.removesuffix("/v1") + "/bench/config", json=config, timeout=5).raise_for_status()


def wait_for_quiet(threshold_pct: float, max_wait: float) -> float:
    """Wait (up to ``max_wait`` s) until the machine's busy CPU over 1 s is below ``threshold_pct`` of all cores.

    Called between cells, when the benchmark's own processes are idle; returns the last busy share seen.
    """
    cores = os.cpu_count() or 1
    deadline = time.monotonic() + max_wait
    while True:
        before = machine_busy_seconds()
        time.sleep(1.0)
        busy = (machine_busy_seconds() - before) / cores * 100
        if busy < threshold_pct or time.monotonic() >= deadline:
            return busy


def upstream_connections(upstream: Server) -> int:
    stats = httpx.get(upstream.base_url.removesuffix("/v1") + "/bench/stats", timeout=5).json()
    return int(stats["connections"])


def run_cell(
    target: Target, scenario: Scenario, duration: float, warmup: float, upstream: Server, ours: Sequence[int] = ()
) -> Cell:
    """Load ``target``; the upstream and ``ours`` are the benchmark's other processes, not counted as noise."""
    return uvloop.run(_run_cell(target, scenario, duration, warmup, upstream, [upstream.pid, *ours]))


async def _run_cell(
    target: Target, scenario: Scenario, duration: float, warmup: float, upstream: Server, ours: list[int]
) -> Cell:
    server = target.server
    cpu: dict[str, float] = {}
    mine = [os.getpid(), *ours, *([server.pid] if server else [])]

    def mark(when: str) -> None:
        cpu[when + "-connections"] = upstream_connections(upstream)
        if server is not None:
            cpu[when] = cpu_seconds(server.pid)
        cpu[when + "-ours"] = sum(cpu_seconds(p) for p in mine)
        cpu[when + "-machine"] = machine_busy_seconds()
        cpu[when + "-wall"] = time.monotonic()

    peak: list[float] = [0.0]
    sampler = asyncio.ensure_future(_sample_rss(server, peak)) if server is not None else None
    try:
        requests = target.requests(scenario.stream)
        result, window_end = await loadgen.run(target.url, requests, scenario.concurrency, duration, warmup, mark)
    finally:
        if sampler is not None:
            sampler.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await sampler
    stats = result.summary(window_end)
    per_req = None
    if server is not None and result.samples:
        per_req = (cpu["end"] - cpu["start"]) * 1000 / len(result.samples)
    cell = Cell(scenario, target.name, stats, per_req, peak[0] if server else None, result.errors_by_kind)
    foreign = (cpu["end-machine"] - cpu["start-machine"]) - (cpu["end-ours"] - cpu["start-ours"])
    wall = cpu["end-wall"] - cpu["start-wall"]
    cell.noise_pct = max(foreign, 0.0) / (wall * (os.cpu_count() or 1)) * 100
    cell.upstream_connections = int(cpu["end-connections"] - cpu["start-connections"])
    return cell


async def _sample_rss(server: Server | None, peak: list[float]) -> None:
    assert server is not None
    while True:
        peak[0] = max(peak[0], server.sample_rss())
        await asyncio.sleep(0.25)
