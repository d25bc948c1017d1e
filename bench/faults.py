"""The fault matrix of tests/faults, long: many requests a cell, sent by several clients at once.

    .venv/bin/python -m bench.faults [--requests 1000] [--concurrency 16] [--faults http_500,gzip_bomb]

Every upstream fault x {plain, stream} x {single, pair, denied} (see tests/faults/matrix.py) against
one gateway per kind of address, in this process. Prints a Markdown table of what the clients got per
cell, then per cell the slowest answer, calls to the denied deployment, and the open file descriptors
and connections to the faulty upstream before and after the cell. Exits 1 when a cell broke a rule the
test asserts (an answer out of shape, a hang past the deadline, a denied call, descriptors or
connections that did not come back).
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import sys
import tempfile
import time
from pathlib import Path

from tests.faults.matrix import (
    FAULTY_DEPLOYMENTS,
    HANG_SECONDS,
    LAYOUTS,
    MODES,
    Address,
    Cell,
    FaultGateway,
    address_of,
    fault_gateway,
    run_cell,
    table,
)
from tests.faults.upstream import FAULTS, Fault


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.faults", description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=1000, help="requests per cell (default 1000)")
    parser.add_argument("--concurrency", type=int, default=16, help="clients at once per cell (default 16)")
    parser.add_argument("--faults", default=",".join(FAULTS), help="comma-separated subset of: " + ", ".join(FAULTS))
    args = parser.parse_args(argv)
    faults: list[Fault] = [f for f in args.faults.split(",") if f]  # type: ignore[misc]
    unknown = sorted(set(faults) - set(FAULTS))
    if unknown:
        parser.error(f"unknown faults {unknown}; known: {', '.join(FAULTS)}")
    logging.disable(logging.WARNING)  # every failed attempt logs a line; the table says it all
    cells: list[Cell] = []
    started = time.monotonic()
    with tempfile.TemporaryDirectory() as tmp, contextlib.ExitStack() as stack:
        gateways: dict[Address, FaultGateway] = {}
        for fault in faults:
            address = address_of(fault)
            if address not in gateways:
                gateways[address] = stack.enter_context(fault_gateway(address, Path(tmp) / address))
            gateway = gateways[address]
            gateway.set(fault)
            for layout in LAYOUTS:
                for mode in MODES:
                    cell = run_cell(gateway, layout, mode, args.requests, args.concurrency)
                    cells.append(cell)
                    print(f"{fault} {layout} {mode}: {cell.summary()}", file=sys.stderr, flush=True)
    print(table(cells))
    print()
    print("| fault | layout | mode | slowest s | denied calls | fds before -> after | upstream conns before -> after |")
    print("|---|---|---|---|---|---|---|")
    broken = []
    allowed_conns = FAULTY_DEPLOYMENTS * args.concurrency
    for c in cells:
        print(
            f"| {c.fault} | {c.layout} | {c.mode} | {c.slowest:.2f} | {c.denied_calls} | "
            f"{c.fds[0]} -> {c.fds[1]} | {c.upstream_connections[0]} -> {c.upstream_connections[1]} |"
        )
        leaked = c.fds[1] > c.fds[0] + args.concurrency
        leaked = leaked or c.upstream_connections[1] > max(c.upstream_connections[0], allowed_conns)
        if c.bad or c.slowest >= HANG_SECONDS or c.denied_calls or leaked:
            broken.append(c)
    total = sum(sum(c.outcomes.values()) for c in cells)
    seconds = time.monotonic() - started
    print(f"\n{total} requests in {len(cells)} cells, {seconds:.0f} s; {len(broken)} cells broke a rule")
    for c in broken[:10]:
        print(f"  {c.fault} {c.layout} {c.mode}: {c.summary()} {c.bad[:2]}")
    return 1 if broken else 0


if __name__ == "__main__":
    sys.exit(main())
