"""``gateway router grade``: both answers and a judge's ratings, through a real gateway, into outcomes
``gateway router train --outcomes`` reads."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from gateway.http.app import create_app
from gateway.settings import Settings
from gateway.standin.server import ThreadedServer
from gateway.training.grade import GradeError, OpenAIEndpoint, judge_messages, rating
from gateway.training.outcomes import OPERATOR
from gateway.training.train import read_dataset
from tests.conftest import Upstreams
from tests.factories import REPO, deployment, model, small_policy, tenant


def test_the_rating_is_the_judges_last_one_from_1_to_10() -> None:
    assert rating("Accurate and complete. Rating: [[8]]") == 0.8
    assert rating("[[3]] at first sight, but on reflection: Rating: [[ 6.5 ]]") == 0.65
    assert rating("Rating: [[11]]") is None and rating("Rating: [[0]]") is None
    assert rating("I would give it an 8.") is None and rating("Rating: [8]") is None
    system, user = judge_messages("What is 2+2?", "4")
    assert system["role"] == "system" and "What is 2+2?" in user["content"] and "[[5]]" in user["content"]


class Judge:
    """A judge model on the OpenAI wire: it rates the stand-in `us-open`'s answers 8 and `cn-open`'s 3,
    gives no rating where the request says "unrateable", and fails once with a 503 where it says "flaky"."""

    def __init__(self) -> None:
        self.calls: list[dict[str, Any]] = []
        self.failed: set[str] = set()
        self.lock = threading.Lock()

    async def chat(self, request: Request) -> JSONResponse:
        body = await request.json()
        text = body["messages"][-1]["content"]
        with self.lock:
            self.calls.append(body)
            if "flaky" in text and text not in self.failed:
                self.failed.add(text)
                return JSONResponse({"error": {"message": "overloaded", "type": "server_error"}}, status_code=503)
        answer = text.split("[The assistant's answer]")[1]
        if "refused" in text:
            return JSONResponse({"error": {"message": "no such model", "type": "invalid_request_error"}}, 400)
        if "unrateable" in text:
            verdict = "I cannot judge this one."
        else:
            verdict = "Correct and to the point. Rating: [[8]]" if "[us-open]" in answer else "Vague. Rating: [[3]]"
        return JSONResponse({
            "id": "chatcmpl-judge", "object": "chat.completion", "created": 0, "model": body["model"],
            "choices": [{"index": 0, "message": {"role": "assistant", "content": verdict}, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": len(text) // 4, "completion_tokens": 10, "total_tokens": len(text) // 4 + 10},
        })  # fmt: skip


def judge_app(judge: Judge) -> Starlette:
    models = JSONResponse({"object": "list", "data": [{"id": "judge", "object": "model", "owned_by": "test"}]})
    return Starlette(
        routes=[
            Route("/v1/chat/completions", judge.chat, methods=["POST"]),
            Route("/v1/models", lambda _: models, methods=["GET"]),
        ]
    )


def test_the_endpoint_retries_what_passes_and_names_what_does_not() -> None:
    judge = Judge()
    with ThreadedServer(judge_app(judge)) as server:
        with OpenAIEndpoint(server.url + "/v1", "k", timeout=10) as endpoint:
            flaky = judge_messages("A flaky request", "[us-open] an answer")
            assert rating(endpoint.complete("judge", flaky, {})) == 0.8 and len(judge.calls) == 2
            with pytest.raises(GradeError, match=r"judge: HTTP 400: no such model"):
                endpoint.complete("judge", judge_messages("refused", "x"), {})
            assert len(judge.calls) == 3  # a 400 is not retried
        once = OpenAIEndpoint(server.url + "/v1", "k", timeout=10, attempts=1)
        with once, pytest.raises(GradeError, match=r"judge: HTTP 503: overloaded"):
            once.complete("judge", judge_messages("Another flaky one", "x"), {})


@pytest.fixture
def gateway(tmp_path: Path, upstreams: Upstreams) -> Iterator[tuple[str, Judge]]:
    judge = Judge()
    with ThreadedServer(judge_app(judge)) as judge_server:
        urls = upstreams.v1()
        policy = small_policy(
            tmp_path / "p",
            urls,
            models={"cn-open": model("CN", "basic", 0.1), "us-open": model("US", "strong", 0.2), "judge": model()},
            deployments={
                "cn-open-a": deployment("cn-open", urls["a"]),
                "us-open-a": deployment("us-open", urls["b"]),
                "judge-a": deployment("judge", judge_server.url + "/v1"),
            },
            tenants={"ops": tenant("ops-key")},
            routes={"auto": {"tiers": {"simple": ["cn-open"], "standard": ["us-open"], "complex": ["us-open"]}}},
        )
        settings = Settings(policies=policy, audit_log=None, reload_seconds=0)
        with ThreadedServer(create_app(settings, env={})) as server:
            yield server.url + "/v1", judge


def grade(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "SWITCHYARD_TEST_KEY": "ops-key"}
    return subprocess.run(
        [sys.executable, "-m", "gateway", "router", "grade", *args, "--key-env", "SWITCHYARD_TEST_KEY"],
        capture_output=True, text=True, cwd=REPO, env=env, timeout=120, check=False,
    )  # fmt: skip


def test_sampled_lines_are_answered_rated_and_trainable(gateway: tuple[str, Judge], tmp_path: Path) -> None:
    url, judge = gateway
    lines = [
        # the audit already holds the weak model's answer: it is reused, not asked again
        {"uid": "a", "prompt": "Prove that there are infinitely many primes.", "stratum": "t",
         "answered_by": "cn-open", "answer": "[cn-open] A proof from the audit trail."},
        {"uid": "b", "prompt": "What is the capital of Peru?", "stratum": "t", "answered_by": "us-open",
         "answer": "[us-open] Lima."},
        {"uid": "c", "prompt": "A flaky judge: rate this anyway.", "stratum": "t"},
        {"uid": "d", "prompt": "An unrateable request.", "stratum": "t"},
        {"uid": "e", "prompt": "Graded before.", "stratum": "t", "weak_score": 0.1, "strong_score": 0.9},
    ]  # fmt: skip
    source, out = tmp_path / "sample.jsonl", tmp_path / "graded.jsonl"
    source.write_text("".join(json.dumps(line) + "\n" for line in lines))
    result = grade(str(source), "--out", str(out), "--base-url", url, "--weak", "cn-open", "--strong", "us-open",
                   "--judge", "judge")  # fmt: skip
    assert result.returncode == 1  # one line could not be graded
    assert "graded 4 of 5 lines" in result.stderr and "not graded: d: the judge 'judge' gave no rating" in result.stderr
    graded = {line["uid"]: line for line in map(json.loads, out.read_text().splitlines())}
    assert list(graded) == ["a", "b", "c", "d", "e"]  # every line, in order
    a, b, c, d = graded["a"], graded["b"], graded["c"], graded["d"]
    assert a["weak_answer"] == "[cn-open] A proof from the audit trail." and a["strong_answer"].startswith("[us-open]")
    assert b["strong_answer"] == "[us-open] Lima." and b["weak_answer"].startswith("[cn-open]")
    assert (a["weak_score"], a["strong_score"]) == (b["weak_score"], b["strong_score"]) == (0.3, 0.8)
    assert (c["weak_score"], c["strong_score"]) == (0.3, 0.8)  # the judge's 503s were retried (by the gateway)
    assert "weak_score" not in d and "grade_error" in d and d["weak_answer"].startswith("[cn-open]")
    assert graded["e"] == lines[4]  # passed through, nothing asked
    assert all(call["temperature"] == 0 and call["model"] == "judge" for call in judge.calls)
    assert not any("Graded before" in call["messages"][-1]["content"] for call in judge.calls)

    with pytest.raises(ValueError, match=r"graded.jsonl:4: .*grade both"):
        read_dataset(out, default_bench=OPERATOR)  # training refuses the ungraded line, naming it

    again = tmp_path / "again.jsonl"
    calls = len(judge.calls)
    result = grade(str(out), "--out", str(again), "--base-url", url, "--weak", "cn-open", "--strong", "us-open",
                   "--judge", "judge")  # fmt: skip
    assert result.returncode == 1 and "graded 4 of 5" in result.stderr
    assert len(judge.calls) - calls == 2  # only d's kept weak answer is rated again (two tries): the rest pass through
    kept = [json.loads(line) for line in again.read_text().splitlines()]
    assert [line for line in kept if line["uid"] != "d"] == [graded[u] for u in "abce"]
    ok = [line for line in kept if "grade_error" not in line]
    trainable = tmp_path / "ok.jsonl"
    trainable.write_text("".join(json.dumps(line) + "\n" for line in ok))
    data = read_dataset(trainable, default_bench=OPERATOR)
    assert [(ex.uid, ex.weak, ex.strong) for ex in data.examples][:2] == [("a", 0.3, 0.8), ("b", 0.3, 0.8)]


def test_bad_arguments_and_an_unreachable_endpoint_are_named(tmp_path: Path) -> None:
    source = tmp_path / "sample.jsonl"
    source.write_text(json.dumps({"uid": "a", "prompt": "hi"}) + "\n")
    common = ["--base-url", "http://127.0.0.1:9/v1", "--weak", "w", "--strong", "s", "--judge", "j"]
    result = grade(str(source), "--out", str(source), *common)
    assert result.returncode == 2 and "--out must not be the input" in result.stderr
    result = grade(str(source), "--out", str(tmp_path / "o.jsonl"), "--concurrency", "0", *common)
    assert result.returncode == 2 and "--concurrency must be at least 1" in result.stderr
    (tmp_path / "bad.jsonl").write_text("not json\n")
    result = grade(str(tmp_path / "bad.jsonl"), "--out", str(tmp_path / "o.jsonl"), *common)
    assert result.returncode == 1 and "bad.jsonl" in result.stderr
    result = grade(str(source), "--out", str(tmp_path / "o.jsonl"), "--base-url", "gateway:8080/v1", *common[2:])
    assert result.returncode == 2 and "--base-url must start with http:// or https://" in result.stderr

    lines = [{"uid": f"u{i}", "prompt": f"question {i}"} for i in range(8)]
    source.write_text("".join(json.dumps(line) + "\n" for line in lines))
    out = tmp_path / "o.jsonl"
    result = grade(str(source), "--out", str(out), "--timeout", "2", "--concurrency", "2", *common)
    assert result.returncode == 1 and "not graded: u0: w: ConnectError" in result.stderr
    assert "stopped: the first 5 lines all failed" in result.stderr and "graded 0 of 8" in result.stderr
    written = [json.loads(line) for line in out.read_text().splitlines()]
    assert [line["uid"] for line in written] == [line["uid"] for line in lines]  # nothing lost
    assert all(line["grade_error"].startswith("w: ConnectError") for line in written[:5])
    assert written[5:] == lines[5:]  # not asked, kept as they were for the next run
