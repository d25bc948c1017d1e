from __future__ import annotations

import json
from pathlib import Path

import pytest

PROMPTS = {
    "quiz": [
        "Which planet is largest?\nA. Mars\nB. Jupiter\nC. Venus\nD. Earth\nAnswer:",
        "Statement 1 | Every group is abelian. Statement 2 | Z is a field.\nA. True, True\nB. False, False\n"
        "C. True, False\nD. False, True\nAnswer:",
        "What is 12% of 250?\nA. 25\nB. 30\nC. 35\nD. 40\nAnswer:",
    ],
    "math": [
        "Tom has 3 apples and buys 4 more. How many apples does he have?",
        "A train travels 120 km at 60 km/h, then 200 km at 80 km/h. What is its average speed, in km/h?",
        "Jane is twice as old as her brother was 5 years ago; in 3 years their ages sum to 40. How old is she?",
    ],
    "chat": [
        "Write a short poem about the sea.",
        "Explain why the sky is blue.",
        "Extract the company with the highest profit from this table and justify the answer step by step.",
    ],
}


@pytest.fixture
def small_data(tmp_path: Path) -> Path:
    """A tiny data set in the dev.jsonl format: three benchmarks, two strata each, mixed outcomes."""
    return write_small_data(tmp_path / "dev.jsonl")


def write_small_data(path: Path) -> Path:
    rows = []
    for bench, prompts in PROMPTS.items():
        for i in range(12):
            prompt = prompts[i % 3] + f" (variant {i})"
            weak, strong = float(i % 2), float(i % 3 != 0)
            if bench == "chat":
                weak, strong = weak * 9 + 1, strong * 9 + 1
            rows.append(
                {
                    "uid": f"{bench}:{i}",
                    "bench": "mtbench" if bench == "chat" else bench,
                    "stratum": f"s{i % 2}" if bench != "math" else bench,
                    "prompt": prompt,
                    "weak_score": weak,
                    "strong_score": strong,
                }
            )
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    return path
