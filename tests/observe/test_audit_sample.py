"""``gateway audit sample``: the prompts an operator grades to calibrate the router for their model pair."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from gateway.http.app import create_app
from gateway.observe.audit_sample import Tally, eligible, sample, score_bin
from gateway.settings import Settings
from gateway.standin.server import ThreadedServer
from gateway.training.outcomes import OPERATOR
from gateway.training.train import read_dataset
from tests.audit_file import audit_entries
from tests.conftest import ClientFactory, Upstreams
from tests.factories import small_policy, tenant
from tests.processes import run_cli


def entry(i: int, score: float | None, prompt: str | None = None, status: int = 200) -> dict[str, Any]:
    line: dict[str, Any] = {"request_id": f"r{i}", "tenant": "t", "complexity_score": score, "status": status}
    line["content"] = {"prompt": f"prompt {i}" if prompt is None else prompt, "completion": "answer"}
    return line


def test_only_answered_scored_requests_with_a_prompt_are_eligible_and_each_prompt_once() -> None:
    no_content = {"request_id": "x", "complexity_score": 0.5, "status": 200}
    entries = [
        entry(1, 0.2, "What is  2+2?"),
        entry(2, 0.3, "What is 2+2? "),  # the same prompt, other whitespace
        entry(3, None),  # not scored (a model asked for by name)
        entry(4, 0.9, status=502),  # failed: no answer to grade
        entry(5, 0.4, "   "),
        no_content,
        entry(6, 0.7),
    ]
    tally = Tally()
    chosen = list(eligible(entries, tally))
    assert [e["request_id"] for e in chosen] == ["r1", "r6"]
    assert (tally.read, tally.eligible, tally.repeats) == (7, 2, 1)


def test_a_skewed_trail_is_sampled_evenly_over_the_score() -> None:
    entries = [entry(i, 0.01 * (i % 9)) for i in range(300)]  # 300 easy requests (scores 0-0.08)
    entries += [entry(1000 + i, 0.55) for i in range(6)] + [entry(2000 + i, 0.97) for i in range(5)]
    picked = sample(entries, 12)
    assert Counter(score_bin(e) for e in picked) == {0: 4, 5: 4, 9: 4}
    assert [e["complexity_score"] for e in picked] == sorted(e["complexity_score"] for e in picked)
    assert len({e["request_id"] for e in picked}) == 12
    assert sample(entries, 12) == picked  # deterministic for a seed
    assert {e["request_id"] for e in sample(entries, 12, seed=1)} != {e["request_id"] for e in picked}
    assert len(sample(entries, 10_000)) == len(entries)  # fewer than asked: all of them
    with pytest.raises(ValueError, match="at least 1"):
        sample(entries, 0)


PROMPTS = [
    "hi",
    "What is the capital of Peru?",
    "Prove that the square root of 2 is irrational, step by step, justifying each step.",
    "Write a Python function that merges two sorted lists, with tests and an analysis of its complexity.",
    "What is the capital of Peru?",
]


def test_a_trail_read_once_gives_the_pick_of_the_whole_trail_in_memory_whatever_its_order() -> None:
    entries = [entry(i, (i * 37 % 100) / 100) for i in range(5000)]
    once = iter(entries)  # a generator, as the file is read: no second pass
    picked = sample(once, 30, seed=3)
    assert picked == sample(list(entries), 30, seed=3)
    assert picked == sample(entries[::-1], 30, seed=3)  # the order of the lines does not matter
    assert picked == sample(sample(entries, 300, seed=3), 30, seed=3)  # nor where the trail was cut short: a
    # smaller sample is part of a bigger one, so growing --n adds prompts to grade and keeps those graded
    assert {e["request_id"] for e in picked} < {e["request_id"] for e in sample(entries, 300, seed=3)}


def test_fewer_picks_than_bins_favour_neither_end() -> None:
    entries = [entry(i, (i % 10) / 10 + 0.05) for i in range(100)]  # ten in each tenth
    picks = [score_bin(e) for seed in range(40) for e in sample(entries, 5, seed)]
    assert len(picks) == 200 and 3.5 < sum(picks) / len(picks) < 5.5  # bins 0-4 every time would be 2.0


@pytest.fixture
def trail(tmp_path: Path, upstreams: Upstreams, make_client: ClientFactory) -> Path:
    """A real gateway's audit file: a recorded tenant's requests (one repeated), and another tenant's."""
    tenants = {"recorded": tenant("recorded-key", audit_content=True), "private": tenant("private-key")}
    tiers = {"simple": ["cn-open", "us-open"], "standard": ["us-open"], "complex": ["us-open"]}  # no API key needed
    routes = {"auto": {"tiers": tiers, "baseline_model": "frontier"}}
    policy = small_policy(tmp_path / "p", upstreams.v1(), tenants=tenants, routes=routes)
    audit = tmp_path / "audit.jsonl"
    settings = Settings(policies=policy, audit_log=str(audit), audit_flush_seconds=0, reload_seconds=0)
    with ThreadedServer(create_app(settings, env={})) as server:
        recorded, private = make_client(server.url, "recorded-key"), make_client(server.url, "private-key")
        for prompt in PROMPTS:
            recorded.chat.completions.create(model="auto", messages=[{"role": "user", "content": prompt}])
        private.chat.completions.create(model="auto", messages=[{"role": "user", "content": "my secret plan"}])
        list(
            recorded.chat.completions.create(
                model="auto", messages=[{"role": "user", "content": "a stream"}], stream=True
            )
        )
    assert len(audit_entries(audit)) == 7
    return audit


def test_the_sample_of_a_real_trail_is_what_router_train_reads_once_graded(trail: Path, tmp_path: Path) -> None:
    out = tmp_path / "to-grade.jsonl"
    result = run_cli("audit", "sample", str(trail), "--n", "100", "--out", str(out))
    assert result.returncode == 0, result.stderr
    assert "picked 5 of 5" in result.stderr and "1 repeated prompts dropped" in result.stderr
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    by_uid = {e["request_id"]: e for e in audit_entries(trail)}
    assert sorted(line["prompt"] for line in lines) == sorted({*PROMPTS, "a stream"})
    assert all(line["stratum"] == "recorded" for line in lines)  # the private tenant's prompt is not in the trail
    for line in lines:
        audited = by_uid[line["uid"]]
        assert line["answered_by"] == audited["model"] and line["tier"] == audited["tier"]
        assert line["answer"] == audited["content"]["completion"] and line["answer"]
    assert [line["complexity_score"] for line in lines] == sorted(line["complexity_score"] for line in lines)

    with pytest.raises(ValueError, match=r"to-grade.jsonl:1: .*no weak_score and no strong_score: grade both"):
        read_dataset(out, default_bench=OPERATOR)
    graded = tmp_path / "graded.jsonl"
    graded.write_text("".join(json.dumps({**line, "weak_score": 0.5, "strong_score": 1.0}) + "\n" for line in lines))
    data = read_dataset(graded, default_bench=OPERATOR)
    assert [ex.uid for ex in data.examples] == [line["uid"] for line in lines]
    assert {ex.stratum for ex in data.examples} == {"recorded"} and data.benches == (OPERATOR,)


def test_a_trail_without_content_is_refused_with_the_setting_to_change(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    path.write_text(json.dumps({"request_id": "r", "tenant": "t", "complexity_score": 0.4, "status": 200}) + "\n")
    result = run_cli("audit", "sample", str(path))
    assert result.returncode == 1 and "audit_content: true" in result.stderr
    result = run_cli("audit", "sample", str(path), "--n", "0")
    assert result.returncode == 2 and "--n must be at least 1" in result.stderr
    result = run_cli("audit", "sample", str(tmp_path / "missing.jsonl"))
    assert result.returncode == 1 and "missing.jsonl" in result.stderr
