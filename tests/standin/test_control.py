"""Control: recorded calls (bounded), the fault queue, timing, and the same over HTTP at /_standin (opt-in)."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator

import httpx
import pydantic
import pytest
from starlette.applications import Starlette

from gateway.standin.anthropic_wire import create_anthropic_app
from gateway.standin.control import Call, Control, Fault
from gateway.standin.openai_wire import create_openai_app
from gateway.standin.server import ThreadedServer

CHAT = "/v1/chat/completions"
HI = {"messages": [{"role": "user", "content": "hi"}]}
KEY = "sk-standin-secret"


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


def test_the_record_keeps_only_the_last_max_calls() -> None:
    control = Control(max_calls=3)
    for model in "abcab":
        control.record(Call(CHAT, model, {"model": model}))
    assert control.models() == ["c", "a", "b"]
    assert control.count() == 3 and control.counts() == {"c": 1, "a": 1, "b": 1}
    assert [call.model for call in control.calls("a")] == ["a"]


def test_the_default_record_is_bounded_and_zero_records_nothing() -> None:
    bounded, silent = Control(), Control(max_calls=0)
    for n in range(10_000):
        bounded.record(Call(CHAT, "m", {"n": n}))
        silent.record(Call(CHAT, "m", {"n": n}))
    assert 0 < bounded.count() < 10_000 and bounded.calls()[-1].body == {"n": 9_999}
    assert silent.calls() == [] and silent.counts() == {}
    with pytest.raises(ValueError, match="max_calls"):
        Control(max_calls=-1)


def test_timing_and_reset() -> None:
    control = Control(delay=0.1, chunk_gap=0.2)
    control.set_timing(chunk_gap=0.05)
    assert (control.delay, control.chunk_gap) == (0.1, 0.05)
    control.reset()
    assert (control.delay, control.chunk_gap) == (0.1, 0.2)


# -- over HTTP ------------------------------------------------------------------


@pytest.fixture(scope="module")
def http() -> Iterator[httpx.Client]:
    app = create_openai_app(admin=True, api_key=KEY)
    with (
        ThreadedServer(app) as server,
        httpx.Client(base_url=server.url, headers={"authorization": f"Bearer {KEY}"}) as http,
    ):
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


def test_no_answer_shows_a_key(http: httpx.Client) -> None:
    http.post("/_standin/reset")
    assert http.post(CHAT, json={"model": "m", **HI}).status_code == 200
    snapshot = http.get("/_standin/calls")
    assert snapshot.json()["calls"][0]["headers"]["authorization"] == "[redacted]"
    assert KEY not in snapshot.text
    http.post("/_standin/reset")


@pytest.mark.parametrize("create", [create_openai_app, create_anthropic_app], ids=["openai", "anthropic"])
def test_the_control_routes_are_off_unless_asked_for(create: Callable[..., Starlette]) -> None:
    control = Control()
    with ThreadedServer(create(control)) as server, httpx.Client(base_url=server.url) as http:
        assert http.post("/_standin/faults", json=[{"status": 503}]).status_code == 404
        assert http.get("/_standin/calls").status_code == 404
        assert http.post("/_standin/reset").status_code == 404
        assert http.post("/_standin/timing", json={"delay": 5}).status_code == 404
    assert control.pending_faults() == [] and control.delay == 0.0
