from __future__ import annotations

import json
from pathlib import Path

from gateway.classify import load_default_classifier
from gateway.classify.loader import read_router_model
from gateway.policy.decide import tier_for
from gateway.training.train import chat_request
from tests.factories import POLICIES, example_policy
from tests.processes import run_cli


def test_score_writes_one_line_per_request_exactly_as_the_gateway_scores(tmp_path: Path) -> None:
    messages = [
        {"role": "system", "content": "You are terse."},
        {"role": "user", "content": "Prove that there are infinitely many primes, step by step."},
    ]
    lines = [{"uid": "a", "prompt": "What is the capital of France?"}, {"uid": 7, "messages": messages}]
    path = tmp_path / "in.jsonl"
    path.write_text("\n".join(json.dumps(line) for line in lines) + "\n\n")
    result = run_cli("router", "score", "--input", str(path), "--policies", str(POLICIES))
    assert result.returncode == 0, result.stderr
    out = [json.loads(line) for line in result.stdout.splitlines()]
    assert [o["uid"] for o in out] == ["a", 7]
    classifier, thresholds = load_default_classifier(), example_policy().routes["auto"].thresholds
    for line, got in zip(lines, out, strict=True):
        request = chat_request(line.get("prompt"), line.get("messages"))  # type: ignore[arg-type]
        expected = classifier.classify(request).score
        assert got == {"uid": line["uid"], "score": expected, "tier": tier_for(expected, thresholds)}
    assert out[0]["tier"] == "simple"


def test_score_reports_a_bad_line(tmp_path: Path) -> None:
    path = tmp_path / "in.jsonl"
    path.write_text('{"uid": 1, "prompt": "hi"}\nnot json\n')
    result = run_cli("router", "score", "--input", str(path), "--policies", str(POLICIES))
    assert result.returncode == 1 and ":2:" in result.stderr
    assert len(result.stdout.splitlines()) == 1


def test_train_then_eval_on_a_small_data_set(small_data: Path, tmp_path: Path) -> None:
    out = tmp_path / "router.json.gz"
    trained = run_cli("router", "train", "--data", str(small_data), "--out", str(out))
    assert trained.returncode == 0, trained.stderr
    model = read_router_model(out)
    assert model.training["examples"] == 36 and len(model.calibration.knots) == 101
    again = tmp_path / "again.json.gz"
    run_cli("router", "train", "--data", str(small_data), "--out", str(again))
    assert again.read_bytes() == out.read_bytes(), "training is deterministic"

    evaluated = run_cli("router", "eval", "--data", str(small_data), "--seeds", "0", "--folds", "3")
    assert evaluated.returncode == 0, evaluated.stderr
    text = evaluated.stdout
    assert "grouped 3-fold CV" in text and "leave one benchmark out" in text
    for name in ("| macro |", "| learned |", "| random | 0.500 | 0.500 | 0.800 |", "| oracle |"):
        assert name in text
