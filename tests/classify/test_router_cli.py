from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from gateway.classify import load_default_classifier
from gateway.classify.learned import LearnedClassifier
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
    for name in ("| macro |", "| learned |", "| random | 0.500 | 0.500 | 0.800 |", "| oracle |", "| n-gram LR |"):
        assert name in text
    assert text.index("leave one benchmark out") < text.index("grouped 3-fold CV")  # the headline first
    assert "target macro APGR >= 0.66" in text and "above the n-gram LR on" in text


def test_score_works_outside_a_policy_directory_with_the_packaged_calibration(tmp_path: Path) -> None:
    import subprocess
    import sys

    from gateway.training.cli import packaged_thresholds

    lines = [{"uid": "easy", "prompt": "What is the capital of France?"}, {"uid": "hard", "prompt": HARD_PROMPT}]
    stdin = "\n".join(json.dumps(line) for line in lines) + "\n"
    result = subprocess.run(
        [sys.executable, "-m", "gateway", "router", "score", "--input", "-"],
        cwd=tmp_path, input=stdin, capture_output=True, text=True, check=False, timeout=120,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    # without ./policies the example policies shipped in the package are used (their calibration is the
    # packaged router's), and stderr says so
    said = result.stderr
    assert "example policies shipped in the package" in said or "packaged router's calibration" in said
    out = [json.loads(line) for line in result.stdout.splitlines()]
    thresholds = packaged_thresholds()
    assert thresholds == example_policy().routes["auto"].thresholds.model_copy(
        update={"strong_share": None, "standard_share": None}
    )
    assert [o["tier"] for o in out] == [tier_for(o["score"], thresholds) for o in out] == ["simple", "complex"]


def test_score_with_a_missing_policy_directory_given_by_name_is_an_error(tmp_path: Path) -> None:
    result = run_cli("router", "score", "--input", "-", "--policies", str(tmp_path / "nope"), stdin="")
    assert result.returncode == 1 and "nope" in result.stderr


HARD_PROMPT = (
    "Prove step by step that the sum of the first n odd numbers is n^2; analyze the trade-offs "
    "of induction versus a combinatorial argument, design a plan, justify it and evaluate the edge cases."
)


def test_train_with_an_operators_outcomes_calibrates_on_them_and_advises_a_share(
    small_data: Path, tmp_path: Path
) -> None:
    hard = "Prove step by step that {} has no rational root; justify each step."
    easy = "What is the capital of {}?"
    rows = []
    for i, name in enumerate(["France", "Peru", "Chad", "Laos", "Fiji", "Iran", "Mali", "Oman", "Togo", "Cuba"]):
        rows.append({"uid": f"e{i}", "prompt": easy.format(name), "weak_score": 1.0, "strong_score": 1.0})
        messages = [
            {"role": "system", "content": "Be rigorous."},
            {"role": "user", "content": hard.format(f"x^{i + 2} - 2")},
        ]
        rows.append({"uid": f"h{i}", "messages": messages, "weak_score": 0.0, "strong_score": 1.0})
    outcomes = tmp_path / "ours.jsonl"
    outcomes.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    out = tmp_path / "ours.json.gz"
    result = run_cli("router", "train", "--data", str(small_data), "--outcomes", str(outcomes), "--out", str(out))
    assert result.returncode == 0, result.stderr
    assert "20 outcomes" in result.stdout and "strong_share" in result.stdout and "C95" in result.stdout
    model = read_router_model(out)
    assert model.training["examples"] == 36 + 20 and "operator" in model.training["calibration"]
    classifier = LearnedClassifier(model)
    scores = [classifier.classify(chat_request(r.get("prompt"), r.get("messages"))).score for r in rows]  # type: ignore[arg-type]
    assert 0.4 < sum(scores) / len(scores) < 0.6  # the curve is of these requests: their scores spread over [0, 1]


def test_train_names_a_bad_outcome_line(small_data: Path, tmp_path: Path) -> None:
    outcomes = tmp_path / "ours.jsonl"
    outcomes.write_text('{"uid": 1, "prompt": "hi", "weak_score": 1, "strong_score": 1}\n{"uid": 2}\n')
    result = run_cli(
        "router", "train", "--data", str(small_data), "--outcomes", str(outcomes), "--out", str(tmp_path / "x")
    )
    assert result.returncode != 0 and "ours.jsonl:2" in result.stderr


def test_an_operator_without_the_dev_data_trains_on_their_outcomes_alone(tmp_path: Path) -> None:
    rows = []
    for i in range(40):
        hard = i % 2 == 0
        prompt = f"Prove step by step that x^{i + 2} - 2 has no rational root." if hard else f"Capital of country {i}?"
        rows.append({"uid": f"u{i}", "prompt": prompt, "weak_score": 0.0 if hard else 1.0, "strong_score": 1.0})
    outcomes, out = tmp_path / "graded.jsonl", tmp_path / "router.json.gz"
    outcomes.write_text("".join(json.dumps(r) + "\n" for r in rows))
    command = [sys.executable, "-m", "gateway", "router", "train", "--outcomes", str(outcomes), "--out", str(out)]
    result = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 0, result.stderr  # no ../shared/routing/dev.jsonl from here
    assert "training on your outcomes alone" in result.stderr and "your 40 outcomes" in result.stdout
    assert "C95" in result.stdout
    model = read_router_model(out)
    assert model.training["examples"] == 40
    hard, easy = (LearnedClassifier(model).classify(chat_request(rows[i]["prompt"])).score for i in (0, 1))
    assert hard > easy
    without = [sys.executable, "-m", "gateway", "router", "train", "--out", str(out)]  # nothing to train on
    result = subprocess.run(without, cwd=tmp_path, capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 2 and "no data set at ../shared/routing/dev.jsonl" in result.stderr
