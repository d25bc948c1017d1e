"""What the compliance proof costs: cells enumerated and seconds for ``gateway policy verify`` per policy set.

    .venv/bin/python bench/proof_cost.py [--repeat 5] [DIR ...]

Without directories: ``policies/``, every ``policies/examples/*/`` and ``bench/policies/``. Prints, per set,
tenants, cells and the best and median wall time of the pure proof (enumeration and checks; loading the
YAML is not counted).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make ``bench`` importable (``gateway`` may come from PYTHONPATH)
    sys.path.append(str(Path(__file__).resolve().parent.parent))

from gateway.policy.verify import prove
from gateway.policyfiles.loader import load_policy_dir

REPO = Path(__file__).resolve().parent.parent


def policy_sets() -> list[Path]:
    packs = sorted(p.parent for p in (REPO / "policies" / "examples").glob("*/tenants.yaml"))
    return [REPO / "policies", *packs, REPO / "bench" / "policies"]


def measure(directory: Path, repeat: int) -> str:
    policy = load_policy_dir(directory, os.environ)
    seconds, cells, tenants = [], 0, 0
    for _ in range(repeat):
        started = time.perf_counter()
        proof = prove(policy)
        seconds.append(time.perf_counter() - started)
        cells, tenants = len(proof.cells), len(proof.tenants)
    name = str(directory.relative_to(REPO)) if directory.is_relative_to(REPO) else str(directory)
    return (
        f"{name:32} {tenants:3d} tenants {cells:6d} cells  best {min(seconds) * 1000:7.1f} ms  "
        f"median {statistics.median(seconds) * 1000:7.1f} ms  ({min(seconds) / max(cells, 1) * 1e6:.0f} us/cell)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("directories", type=Path, nargs="*")
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    for directory in args.directories or policy_sets():
        print(measure(directory.resolve(), args.repeat), flush=True)


if __name__ == "__main__":
    main()
