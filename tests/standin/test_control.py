"""Control: recorded calls, the fault queue, timing, and the same over HTTP at /_standin."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import httpx
import pydantic
import pytest

from gateway.standin.control import Call, Control, Fault
from gateway.standin.openai_wire import create_openai_app
from gateway.standin.server import ThreadedServer

CHAT = "/v1/chat/completions"
HI = {"messages": [{"role": "user", "content": "hi"}]}


def test_faults_match_model_and_path_and_run_out() -> None:
    control = Control()
    control.inject(Fault(status=500, model="a", times=2), Fault(status=429, path="/v1/embeddings"))
    assert control.take_fault(CHAT, "b") is None
    assert control.take_fault("/v1/embeddings", "b") == Fault(status=429, path="/v1/embeddings")
    assert [control.take_fault(CHAT, "a") for _ in range(3)] == [Fault(status=500, model="a", times=2)] * 2 + [None]
    assert control.pending_faults() == []


def test_pending_faults_show_what_is_left() -> None:
    control = Control()
    control.inject(Fault(delay=0.5, times=3))
    control.take_fault(CHAT, "m")
    assert control.pending_faults() == [Fault(delay=0.5, times=2)]


def test_a_fault_answers_or_drops_not_both() -> None:
    with pytest.raises(pydantic.ValidationError, match="not both"):
        Fault(status=500, drop_after=1)
    with pytest.raises(pydantic.ValidationError, match="colour"):
        Fault.model_validate({"status": 500, "colour": "red"})


def test_calls_models_and_counts_from_many_threads() -> None:
    control = Control()

    def record(model: str) -> None:
        for _ in range(100):
            control.record(Call(CHAT, model, {"model": model, "stream": True}))

    threads = [threading.Thread(target=record, args=(m,)) for m in ("a", "b", "c")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert control.counts() == {"a": 100, "b": 100, "c": 100}
    assert control.count() == 300 and control.count("b") == 100
    assert all(call.stream for call in control.calls("a"))
    control.reset()
    assert control.calls() == [] and control.models() == []


def test_timing_and_reset() -> None:
    control = Control(delay=0.1, chunk_gap=0.2)
    control.set_timing(chunk_gap=0.05)
    assert (control.delay, control.chunk_gap) == (0.1, 0.05)
    control.reset()
    assert (control.delay, control.chunk_gap) == (0.1, 0.2)


# -- over HTTP ------------------------------------------------------------------


@pytest.fixture(scope="module")
def http() -> Iterator[httpx.Client]:
    with ThreadedServer(create_openai_app()) as server, httpx.Client(base_url=server.url) as http:
        yield http


def test_faults_calls_and_reset_over_http(http: httpx.Client) -> None:
    http.post("/_standin/reset")
    injected = http.post("/_standin/faults", json=[{"status": 503, "model": "sick", "times": 2}])
    assert injected.json() == {"pending": 1}
    assert http.post(CHAT, json={"model": "sick", **HI}).status_code == 503
    assert http.post(CHAT, json={"model": "well", **HI}, headers={"x-trace": "t1"}).status_code == 200
    snapshot = http.get("/_standin/calls").json()
    assert snapshot["counts"] == {"sick": 1, "well": 1}
    assert snapshot["pending_faults"] == [{"status": 503, "model": "sick"}]
    assert snapshot["calls"][1]["headers"]["x-trace"] == "t1" and snapshot["calls"][1]["body"]["model"] == "well"
    http.post("/_standin/reset")
    assert http.get("/_standin/calls").json() == {"calls": [], "counts": {}, "pending_faults": []}


def test_bad_faults_and_timing_over_http(http: httpx.Client) -> None:
    bad = http.post("/_standin/faults", json=[{"status": 200}])
    assert bad.status_code == 400 and bad.json()["error"][0]["loc"] == [0, "status"]
    assert http.post("/_standin/faults", json={"status": 500}).status_code == 400  # a list is required
    timing = http.post("/_standin/timing", json={"chunk_gap": 0.01})
    assert timing.json() == {"delay": 0.0, "chunk_gap": 0.01}
    http.post("/_standin/reset")
