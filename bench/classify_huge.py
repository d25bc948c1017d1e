"""What a huge prompt costs before routing: parsing, the classifier, and the personal-data detectors.

    .venv/bin/python -m bench.classify_huge [--n 20]

For prompts of 2 kB, 100 kB, 1 MB and 5 MB of prose (one user message), prints the thread's CPU time per
request (p50, p99) of ``normalize`` (JSON parse, checks, text extraction), of the default classifier on the
normalized request (it reads at most 4,000 characters from each end: gateway/routing/normalize.py), and of
the regulated pack's detectors, which read the whole text (what ``limits.max_prompt_chars`` bounds). No I/O.
"""

from __future__ import annotations

import argparse

import orjson

from bench.detect import REGULATED, prose, quantiles, scan, timed
from gateway.classify import load_default_classifier
from gateway.policyfiles.loader import load_policy_dir
from gateway.routing.normalize import normalize

SIZES = {"2 kB": 2_000, "100 kB": 100_000, "1 MB": 1_000_000, "5 MB": 5_000_000}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=20, help="requests per cell (2 kB and 100 kB run 50x more)")
    args = parser.parse_args()
    classifier = load_default_classifier()
    policy = load_policy_dir(REGULATED, {})
    print("| prompt | normalize p50 / p99 ms | classify p50 / p99 ms | classifier read (chars) ", end="")
    print("| detectors p50 / p99 ms |")
    print("|---|---|---|---|---|")
    for label, size in SIZES.items():
        n = args.n * 50 if size <= 100_000 else args.n
        text = prose(size)
        raw = orjson.dumps({"model": "auto", "messages": [{"role": "user", "content": text}]})
        request = normalize("chat", raw, {})
        cells = [
            quantiles(timed(lambda raw=raw: normalize("chat", raw, {}), n)),  # type: ignore[misc]
            quantiles(timed(lambda r=request: classifier.classify(r), n)),  # type: ignore[misc]
        ]
        detectors = quantiles(timed(scan(policy, text), n))
        shown = " | ".join(f"{p50 / 1000:.2f} / {p99 / 1000:.2f}" for p50, p99 in cells)
        print(f"| {label} | {shown} | {len(request.text):,} | {detectors[0] / 1000:.1f} / {detectors[1] / 1000:.1f} |")


if __name__ == "__main__":
    main()
