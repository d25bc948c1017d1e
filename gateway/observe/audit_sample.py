"""``gateway audit sample FILE``: the prompts to grade for the router's per-pair calibration.

The first two steps of collecting an operator's outcomes (docs/router-evaluation.md): from the audit lines
of tenants whose policy sets ``audit_content``, take the answered requests the router scored, drop repeated
prompts, and pick ``n`` of them spread evenly over the complexity score (ten equal-width bins, the same
number from each where they have it), so that easy and hard requests are both there however skewed the
traffic is. Each line is in the shape ``gateway router train --outcomes`` reads, without the two scores a
judge adds: ``uid``, ``prompt``, ``stratum`` and, to help the grading, the model that answered, its answer,
the tier and the score.

Pure but for reading the file: entries in, lines out; the pick is deterministic for a seed.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

BINS = 10
STRATA = ("tenant", "route")


@dataclass
class Tally:
    """What a pass over the audit file saw."""

    read: int = 0
    eligible: int = 0
    repeats: int = 0


def eligible(entries: Iterable[dict[str, Any]], tally: Tally) -> Iterator[dict[str, Any]]:
    """The entries worth grading, the first of each prompt (whitespace aside), one at a time: a trail of
    any size is read once, keeping a 64-bit digest per distinct prompt."""
    seen: set[str] = set()
    for entry in entries:
        tally.read += 1
        content = entry.get("content")
        score = entry.get("complexity_score")
        if not isinstance(content, dict) or not isinstance(content.get("prompt"), str):
            continue
        if not isinstance(score, int | float) or int(entry.get("status") or 0) >= 400:
            continue
        text = " ".join(content["prompt"].split())
        if not text:
            continue
        key = _digest(text)
        if key in seen:
            tally.repeats += 1
            continue
        seen.add(key)
        tally.eligible += 1
        yield entry


def sample(entries: Iterable[dict[str, Any]], n: int, seed: int = 0) -> list[dict[str, Any]]:
    """``n`` entries (all of them when there are fewer) spread over the score: round-robin over ten
    equal-width score bins, each bin's entries in a seeded pseudo-random order; lowest score first.
    No bin can give more than ``n``, so each keeps only its ``n`` first in that order as it goes."""
    if n < 1:
        raise ValueError(f"n must be at least 1, not {n}")
    bins: list[list[tuple[str, dict[str, Any]]]] = [[] for _ in range(BINS)]
    for entry in entries:
        members = bins[score_bin(entry)]
        members.append((_shuffled(entry, seed), entry))
        if len(members) >= 2 * n:
            members.sort(key=lambda member: member[0])
            del members[n:]
    ordered = [[entry for _, entry in sorted(members, key=lambda member: member[0])[:n]] for members in bins]
    picked: list[dict[str, Any]] = []
    depth = 0
    while len(picked) < n and any(len(members) > depth for members in ordered):
        # each round visits the bins in its own seeded order, so that a last, partial round favours none
        for b in sorted(range(BINS), key=lambda b: _digest(f"{seed}\n{depth}\n{b}")):
            if len(ordered[b]) > depth and len(picked) < n:
                picked.append(ordered[b][depth])
        depth += 1
    return sorted(picked, key=lambda e: (float(e["complexity_score"]), _shuffled(e, seed)))


def score_bin(entry: dict[str, Any]) -> int:
    """Which tenth of [0, 1] the entry's complexity score falls in (1.0 in the last)."""
    score = min(max(float(entry["complexity_score"]), 0.0), 1.0)
    return min(int(score * BINS), BINS - 1)


def outcome_line(entry: dict[str, Any], stratum: str) -> dict[str, Any]:
    """The line a judge completes with ``weak_score`` and ``strong_score``."""
    content = entry["content"]
    return {
        "uid": str(entry.get("request_id") or _digest(content["prompt"])),
        "prompt": content["prompt"],
        "stratum": str(entry.get(stratum) or "none"),
        "answered_by": entry.get("model"),
        "answer": content.get("completion"),
        "tier": entry.get("tier"),
        "complexity_score": entry["complexity_score"],
    }


def _shuffled(entry: dict[str, Any], seed: int) -> str:
    return _digest(f"{seed}\n{entry.get('request_id')}\n{entry['content']['prompt']}")


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:16]
