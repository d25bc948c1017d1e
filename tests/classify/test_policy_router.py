"""A policy directory's own router (``router.json.gz`` beside its YAML files, trained on the operator's model
pair) is what scores its ``auto`` routes: in the gateway, after a reload, in explain, the cases and ``router score``;
and its calibration is what turns ``strong_share`` into a threshold."""

from __future__ import annotations

import json
import time
from pathlib import Path

import httpx
import pytest

from gateway.classify import load_default_classifier
from gateway.classify.learned import LearnedClassifier
from gateway.classify.loader import read_router_model
from gateway.http.app import create_app
from gateway.policyfiles.loader import ROUTER_ARTIFACT, PolicyError, load_policy_dir
from gateway.settings import Settings
from gateway.standin.server import ThreadedServer
from gateway.training.train import chat_request
from tests.classify.conftest import PROMPTS, write_small_data
from tests.conftest import Upstreams
from tests.factories import small_policy
from tests.processes import run_cli

PROMPT = "Tom has 3 apples and buys 4 more. How many apples does he have?"
ROUTES = {
    "auto": {
        "tiers": {"simple": ["cn-open"], "standard": ["us-open"], "complex": ["us-open"]},
        "thresholds": {"strong_share": 0.3, "standard_share": 0.4},
    }
}


@pytest.fixture(scope="module")
def artifact(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An operator's router: trained on the tiny data set plus outcomes where the long problems are the hard ones."""
    directory = tmp_path_factory.mktemp("trained")
    data = write_small_data(directory / "dev.jsonl")
    rows = []
    for i, prompt in enumerate(p for prompts in PROMPTS.values() for p in prompts):
        hard = len(prompt) > 60
        rows.append({"uid": f"o{i}", "prompt": prompt, "weak_score": 0.0 if hard else 1.0, "strong_score": 1.0})
    outcomes = directory / "ours.jsonl"
    outcomes.write_text("".join(json.dumps(r) + "\n" for r in rows * 3))
    out = directory / ROUTER_ARTIFACT
    result = run_cli("router", "train", "--data", str(data), "--outcomes", str(outcomes), "--out", str(out))
    assert result.returncode == 0, result.stderr
    return out


def test_the_directorys_router_scores_and_calibrates_its_routes(
    artifact: Path, tmp_path: Path, upstreams: Upstreams
) -> None:
    plain = small_policy(tmp_path / "plain", upstreams.v1(), routes=ROUTES)
    own = small_policy(tmp_path / "own", upstreams.v1(), routes=ROUTES)
    (own / ROUTER_ARTIFACT).write_bytes(artifact.read_bytes())
    packaged, mine = load_policy_dir(plain, {}), load_policy_dir(own, {})
    request = chat_request(PROMPT)
    assert packaged.classifier is load_default_classifier()  # no artifact: the packaged router, one per process
    assert packaged.classifier.classify(request).score == load_default_classifier().classify(request).score
    expected = LearnedClassifier(read_router_model(artifact)).classify(request).score
    assert mine.classifier.classify(request).score == expected
    assert expected != packaged.classifier.classify(request).score
    assert mine.revision != packaged.revision  # the artifact is part of what the revision names
    calibration = read_router_model(artifact).calibration
    assert mine.routes["auto"].thresholds.complex == calibration.threshold_for_share(0.3)
    assert mine.routes["auto"].thresholds.complex != packaged.routes["auto"].thresholds.complex

    request_file = tmp_path / "request.json"
    request_file.write_text(json.dumps({"model": "auto", "messages": [{"role": "user", "content": PROMPT}]}))
    explained = run_cli("policy", "explain", "--policies", str(own), "--tenant", "open", "--request", str(request_file))
    assert explained.returncode == 0, explained.stderr
    assert json.loads(explained.stdout)["decision"]["complexity"]["score"] == pytest.approx(expected, abs=1e-6)
    prompts = tmp_path / "prompts.jsonl"
    prompts.write_text(json.dumps({"uid": "x", "prompt": PROMPT}) + "\n")
    scored = run_cli("router", "score", "--input", str(prompts), "--policies", str(own))
    assert scored.returncode == 0, scored.stderr
    assert json.loads(scored.stdout)["score"] == expected


def test_a_broken_artifact_is_refused_naming_the_file(tmp_path: Path, upstreams: Upstreams) -> None:
    own = small_policy(tmp_path / "own", upstreams.v1(), routes=ROUTES)
    (own / ROUTER_ARTIFACT).write_bytes(b"\x1f\x8b not gzip")
    with pytest.raises(PolicyError, match=r"router.json.gz: not a router artifact"):
        load_policy_dir(own, {})
    (own / ROUTER_ARTIFACT).write_text('{"weights": {}}')
    with pytest.raises(PolicyError, match=r"router.json.gz: not a router artifact"):
        load_policy_dir(own, {})


def test_a_router_dropped_into_a_served_directory_takes_over_on_reload(
    artifact: Path, tmp_path: Path, upstreams: Upstreams
) -> None:
    policy = small_policy(tmp_path / "p", upstreams.v1(), routes=ROUTES)
    body = {"model": "auto", "messages": [{"role": "user", "content": PROMPT}]}
    headers = {"authorization": "Bearer open-key"}
    expected = LearnedClassifier(read_router_model(artifact)).classify(chat_request(PROMPT)).score
    with ThreadedServer(create_app(Settings(policies=policy, reload_seconds=0.1), env={})) as server:

        def explained() -> dict[str, object]:
            answer = httpx.post(server.url + "/v1/route/explain", json=body, headers=headers)
            assert answer.status_code == 200, answer.text
            return answer.json()["decision"]["complexity"]  # type: ignore[no-any-return]

        before = explained()["score"]
        assert before != expected
        (policy / ROUTER_ARTIFACT).write_bytes(artifact.read_bytes())
        deadline = time.monotonic() + 10
        while explained()["score"] != expected:
            assert time.monotonic() < deadline, "the new router did not take over"
            time.sleep(0.05)
        (policy / ROUTER_ARTIFACT).unlink()  # and back to the packaged one when it is removed
        while explained()["score"] != before:
            assert time.monotonic() < deadline, "the packaged router did not come back"
            time.sleep(0.05)
