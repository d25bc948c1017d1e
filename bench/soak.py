"""Soak: steady mixed load on one gateway process, its RSS sampled every second, and the slope.

    .venv/bin/python -m bench --soak 600 [--soak-concurrency 16]

The load cycles through plain and streamed requests, three prompts and four tenants, through the
``auto`` route, at upstream delay 0. The slope is a least-squares fit of RSS over time after the
first 10% of the run (or 10 s, whichever is longer), when pools and caches have filled.
"""

from __future__ import annotations

import argparse
import itertools

import uvloop

from bench import loadgen, targets
from bench.cells import Scenario, configure_upstream
from bench.procs import Server, cpu_seconds, hwm_mb

KEYS = ("bench-key", "bench-key-open-lab", "bench-key-acme-us", "bench-key-helios-health")


def mixed_requests(url: str) -> list[bytes]:
    combos = itertools.product(KEYS, loadgen.PROMPTS, (False, True))
    return [loadgen.http_request(url, loadgen.chat_body("auto", stream, prompt), key) for key, prompt, stream in combos]


def slope_mb_per_min(samples: list[tuple[float, float]]) -> float:
    t0 = samples[0][0]
    xs = [(t - t0) / 60 for t, _ in samples]
    ys = [mb for _, mb in samples]
    mx, my = sum(xs) / len(xs), sum(ys) / len(ys)
    var = sum((x - mx) ** 2 for x in xs)
    return sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / var if var else 0.0


async def _drive(gateway: Server, seconds: float, concurrency: int) -> loadgen.Result:
    import asyncio

    url = gateway.base_url + "/chat/completions"

    async def sample() -> None:
        while True:
            gateway.sample_rss()
            await asyncio.sleep(1.0)

    sampler = asyncio.ensure_future(sample())
    try:
        result, _ = await loadgen.run(url, mixed_requests(url), concurrency, seconds, warmup=0.0)
    finally:
        sampler.cancel()
    return result


def run(args: argparse.Namespace) -> None:
    upstream = targets.start_upstream()
    try:
        gateway = targets.start_gateway(upstream, args.policies, targets.gateway_spec(args))
    except BaseException:
        upstream.stop()
        raise
    try:
        configure_upstream(upstream, Scenario(0.0, False, args.soak_concurrency, args.chunks, args.chunk_gap_ms))
        cpu_before = cpu_seconds(gateway.pid)
        result = uvloop.run(_drive(gateway, args.soak, args.soak_concurrency))
        cpu = cpu_seconds(gateway.pid) - cpu_before
        peak = hwm_mb(gateway.pid)
    finally:
        gateway.stop()
        upstream.stop()
    report(args, gateway, result, cpu, peak)


def report(args: argparse.Namespace, gateway: Server, result: loadgen.Result, cpu: float, peak: float) -> None:
    samples = gateway.rss_samples
    skip = max(10.0, args.soak * 0.1)
    steady = [s for s in samples if s[0] - samples[0][0] >= skip] or samples
    stats = result.summary(float("inf"))
    print(
        f"soak: {args.soak:g} s at concurrency {args.soak_concurrency}, mixed plain/stream, 3 prompts, {len(KEYS)} "
        f"tenants, auto route, upstream delay 0"
    )
    print(
        f"  requests {stats['requests']:.0f} ({stats['requests'] / args.soak:.0f}/s), errors {stats['errors']:.0f}, "
        f"p50 {stats['p50_ms']:.2f} ms, p99 {stats['p99_ms']:.2f} ms, gateway CPU "
        f"{cpu * 1000 / max(stats['requests'], 1):.2f} ms/req"
    )
    print(
        f"  RSS: first sample {samples[0][1]:.1f} MB, after warm-up {steady[0][1]:.1f} MB, "
        f"last {samples[-1][1]:.1f} MB, peak (VmHWM) {peak:.1f} MB"
    )
    print(
        f"  RSS slope after the first {skip:.0f} s: {slope_mb_per_min(steady):+.3f} MB/min "
        f"({len(steady)} samples, one a second)"
    )
    minutes = sorted({int((t - samples[0][0]) // 60) for t, _ in samples})
    per_minute = [max(mb for t, mb in samples if int((t - samples[0][0]) // 60) == m) for m in minutes]
    print("  RSS max per minute: " + ", ".join(f"{mb:.1f}" for mb in per_minute) + " MB")
