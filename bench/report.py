"""The printed table (Markdown, so it can be pasted into RESULTS.md) and the targets of the issue."""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from bench.cells import Cell

HEADER = (
    "| scenario | target | RPS | p50 ms | p90 ms | p99 ms | TTFC p50 ms | added p50 ms | added TTFC p50 ms "
    "| CPU ms/req | RSS peak MB | errors | new upstream conns | other CPU % |"
)
RULE = "|" + "---|" * 14


def _f(value: float | None, digits: int = 2) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return f"{value:.{digits}f}"


def table(cells: Sequence[Cell]) -> str:
    direct = {c.scenario: c for c in cells if c.target == "direct"}
    lines = [HEADER, RULE]
    for cell in cells:
        base = direct.get(cell.scenario)
        s = cell.stats
        ttfc = s["ttfb_p50_ms"] if cell.scenario.stream else None
        added = s["p50_ms"] - base.stats["p50_ms"] if base and cell.target != "direct" else None
        added_ttfc = None
        if base and cell.scenario.stream and cell.target != "direct":
            added_ttfc = s["ttfb_p50_ms"] - base.stats["ttfb_p50_ms"]
        lines.append(
            f"| {cell.scenario.label} | {cell.target} | {s['rps']:.0f} | {_f(s['p50_ms'])} | {_f(s['p90_ms'])} "
            f"| {_f(s['p99_ms'])} | {_f(ttfc)} | {_f(added)} | {_f(added_ttfc)} | {_f(cell.cpu_ms_per_req)} "
            f"| {_f(cell.rss_peak_mb, 0)} | {s['errors']:.0f} | {cell.upstream_connections} | {cell.noise_pct:.0f} |"
        )
    return "\n".join(lines)


@dataclass
class Check:
    target: str
    measured: str
    ok: bool | None  # None: not measured in this run

    def line(self) -> str:
        verdict = {True: "met", False: "MISSED", None: "not measured"}[self.ok]
        return f"| {self.target} | {self.measured} | {verdict} |"


def _find(cells: Iterable[Cell], target: str, delay: float, stream: bool, concurrency: int) -> Cell | None:
    for c in cells:
        s = c.scenario
        if c.target == target and (s.delay_ms, s.stream, s.concurrency) == (delay, stream, concurrency):
            return c
    return None


def _added(cells: Sequence[Cell], stream: bool, key: str) -> float | None:
    via, direct = _find(cells, "gateway", 0, stream, 1), _find(cells, "direct", 0, stream, 1)
    if via is None or direct is None:
        return None
    return via.stats[key] - direct.stats[key]


def _cpu_check(cells: Sequence[Cell], stream: bool, limit: float, what: str) -> Check:
    mine = [c for c in cells if c.target == "gateway" and c.scenario.stream == stream and c.cpu_ms_per_req]
    if not mine:
        return Check(what, "-", None)
    worst = max(mine, key=lambda c: c.cpu_ms_per_req or 0.0)
    best = min(mine, key=lambda c: c.cpu_ms_per_req or 0.0)
    measured = f"{best.cpu_ms_per_req:.2f} to {worst.cpu_ms_per_req:.2f} ms (worst: {worst.scenario.label})"
    return Check(what, measured, (worst.cpu_ms_per_req or 0.0) <= limit)


def _throughput_check(cells: Sequence[Cell]) -> Check:
    ratios, errors = [], 0
    for c in cells:
        if c.target != "gateway" or c.scenario.concurrency != 64:
            continue
        errors += int(c.stats["errors"])
        other = next((o for o in cells if o.target == "litellm" and o.scenario == c.scenario), None)
        if other and other.stats["rps"] > 0:
            ratios.append((c.stats["rps"] / other.stats["rps"], c.scenario.label))
    if not ratios:
        return Check("throughput at c=64 >= 25x LiteLLM, zero errors", "-", None)
    low = min(ratios)
    measured = f"{low[0]:.1f}x at worst ({low[1]}); " + ", ".join(f"{r:.1f}x" for r, _ in ratios)
    measured += f"; gateway errors at c=64: {errors}"
    return Check("throughput at c=64 >= 25x LiteLLM, zero errors", measured, low[0] >= 25 and errors == 0)


def checks(
    cells: Sequence[Cell], gateway_hwm_mb: float | None, startup_s: float | None, soak_slope: float | None
) -> list[Check]:
    added = _added(cells, False, "p50_ms")
    ttfc = _added(cells, True, "ttfb_p50_ms")
    out = [
        Check("added p50, plain, delay 0, c=1 <= 1.5 ms", _f(added, 3) + " ms", _at_most(added, 1.5)),
        Check("added TTFC p50, stream, delay 0, c=1 <= 1.5 ms", _f(ttfc, 3) + " ms", _at_most(ttfc, 1.5)),
        _cpu_check(cells, False, 1.5, "gateway CPU per plain request <= 1.5 ms"),
        _cpu_check(cells, True, 2.0, "gateway CPU per 20-chunk stream <= 2 ms"),
        _throughput_check(cells),
        Check(
            "peak RSS of the gateway <= 150 MB",
            _f(gateway_hwm_mb, 0) + " MB (VmHWM)",
            None if gateway_hwm_mb is None else gateway_hwm_mb <= 150,
        ),
        Check(
            "start-up to first successful request < 3 s",
            _f(startup_s) + " s",
            None if startup_s is None else startup_s < 3,
        ),
    ]
    if soak_slope is not None:
        out.append(Check("no RSS growth in the soak", f"{soak_slope:+.3f} MB/min", abs(soak_slope) < 0.5))
    return out


def _at_most(value: float | None, limit: float) -> bool | None:
    return None if value is None else value <= limit


def check_table(items: Sequence[Check]) -> str:
    return "\n".join(["| target | measured | verdict |", "|---|---|---|", *(c.line() for c in items)])
