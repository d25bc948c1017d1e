"""`gateway serve` as ops run it: a separate process, JSON logs without secrets, several workers sharing metrics."""

from __future__ import annotations

import json
import pickle
import subprocess
import sys
from pathlib import Path

import httpx

from gateway.http.protocol import EdgeLimits
from gateway.http.serve import server_options
from gateway.settings import Settings
from gateway.standin.control import Fault
from tests.conftest import OPENAI_KEY, Upstreams
from tests.factories import deployment, small_policy
from tests.processes import run_cli, serve

SECRET_PROMPT = "patient-record-9931-do-not-log"
HI = {"model": "auto", "messages": [{"role": "user", "content": SECRET_PROMPT}]}


def policy_with_secret(tmp_path: Path, upstreams: Upstreams) -> Path:
    v1 = upstreams.v1()
    frontier = deployment("frontier", v1["c"], self_hosted=False, operator="F", api_key_env="FRONTIER_KEY")
    deployments = {"cn-open-a": deployment("cn-open", v1["a"], max_retries=0), "frontier-api": frontier}
    deployments["us-open-b"] = deployment("us-open", v1["b"])
    return small_policy(tmp_path / "p", v1, deployments=deployments)


def test_logs_are_json_with_request_ids_and_no_secrets(tmp_path: Path, upstreams: Upstreams) -> None:
    policy = policy_with_secret(tmp_path, upstreams)
    upstreams.controls["a"].inject(Fault(status=500, times=3))
    env = {"FRONTIER_KEY": OPENAI_KEY}
    with serve(policy, env, "--log-level", "debug", "--audit-log", "off") as served:
        url = served.url
        auth = {"authorization": "Bearer open-key"}
        for _ in range(3):
            assert httpx.post(url + "/v1/chat/completions", json=HI, headers=auth).status_code == 200
        assert (
            httpx.post(
                url + "/v1/chat/completions", content=b"{broken " + SECRET_PROMPT.encode(), headers=auth
            ).status_code
            == 400
        )
        assert (
            httpx.post(
                url + "/v1/chat/completions", json=HI, headers={"authorization": "Bearer wrong-key-123"}
            ).status_code
            == 401
        )
        hard = {"model": "frontier", "messages": [{"role": "user", "content": SECRET_PROMPT}]}
        assert httpx.post(url + "/v1/chat/completions", json=hard, headers=auth).status_code == 200
    lines = [json.loads(line) for line in served.stderr.splitlines() if line.strip()]
    assert lines and all({"time", "level", "logger", "message"} <= set(line) for line in lines)
    failures = [line for line in lines if "attempt on deployment cn-open-a failed" in line["message"]]
    assert failures and all(line["request_id"].startswith("req_") for line in failures)
    text = json.dumps(lines)
    for secret in (SECRET_PROMPT, "open-key", "wrong-key-123", OPENAI_KEY):
        assert secret not in text


def test_workers_share_one_metrics_view(tmp_path: Path, upstreams: Upstreams) -> None:
    policy = small_policy(tmp_path / "p", upstreams.v1())
    env = {"PROMETHEUS_MULTIPROC_DIR": str(tmp_path / "metrics")}
    (tmp_path / "metrics").mkdir()
    with serve(policy, env, "--workers", "2", "--audit-log", "off") as served:
        url = served.url
        with httpx.Client(headers={"authorization": "Bearer open-key"}) as client:
            for _ in range(20):  # new connections, so both workers get some
                assert httpx.post(url + "/v1/chat/completions", json=HI, headers=client.headers).status_code == 200
        totals = set()
        for _ in range(4):
            metrics = httpx.get(url + "/metrics").text
            totals.add(
                sum(
                    float(line.rsplit(" ", 1)[1])
                    for line in metrics.splitlines()
                    if line.startswith("gateway_requests_total{")
                )
            )
    assert totals == {20.0}
    assert len({p.name.split("_")[-1] for p in (tmp_path / "metrics").glob("counter_*.db")}) == 2, "two processes wrote"


def test_worker_processes_keep_the_edge_limits(tmp_path: Path, upstreams: Upstreams) -> None:
    """uvicorn spawns ``--workers`` processes and unpickles the protocol there: the limits go along."""
    limits = pickle.loads(pickle.dumps(server_options(Settings(max_headers=5))))["http"].keywords["limits"]
    assert limits == EdgeLimits(max_headers=5)
    env = {"PROMETHEUS_MULTIPROC_DIR": str(tmp_path / "metrics")}
    (tmp_path / "metrics").mkdir()
    policy = small_policy(tmp_path / "p", upstreams.v1())
    with serve(policy, env, "--workers", "2", "--audit-log", "off", "--max-headers", "5") as served:
        extra = {f"x-h{i}": "v" for i in range(6)}
        for _ in range(4):  # new connections, so both workers answer some
            answer = httpx.get(served.url + "/readyz", headers=extra)
            assert answer.status_code == 431
            assert answer.json()["error"]["code"] == "request_header_fields_too_large"


def test_edge_limits_must_be_positive() -> None:
    result = run_cli("serve", "--max-connections", "0")
    assert result.returncode == 2 and "--max-connections must be greater than 0" in result.stderr


def test_the_served_process_keeps_start_up_objects_out_of_the_cyclic_collector() -> None:
    script = (
        "import gc, json\n"
        "from gateway.http.serve import GC_YOUNG_THRESHOLD, tune_gc\n"
        "before = gc.get_freeze_count()\n"
        "tune_gc()\n"
        "print(json.dumps([before, gc.get_freeze_count(), gc.get_threshold()[0], GC_YOUNG_THRESHOLD]))\n"
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True, timeout=60)
    before, frozen, young, expected = json.loads(result.stdout)
    assert before == 0 and frozen > 10_000, "the loaded modules' objects are frozen"
    assert young == expected == 10_000


SERVER_TICKS = """
import json, os, signal, socket, threading, time
import uvicorn
from gateway.http.serve import Server


async def app(scope, receive, send):
    await send({"type": "http.response.start", "status": 204, "headers": []})
    await send({"type": "http.response.body", "body": b""})


class Counting(Server):
    ticks = 0

    async def on_tick(self, counter):
        Counting.ticks += 1
        return await super().on_tick(counter)


class Slow(Counting):
    TICK_SECONDS = 30.0


def run(cls, idle):
    sock = socket.create_server(("127.0.0.1", 0))
    server = cls(uvicorn.Config(app, lifespan="off", log_level="warning", loop="uvloop", http="httptools"))
    sent = []

    def stop():
        while not server.started:
            time.sleep(0.01)
        time.sleep(idle)
        sent.append(time.monotonic())
        os.kill(os.getpid(), signal.SIGTERM)

    threading.Thread(target=stop, daemon=True).start()
    server.run(sockets=[sock])
    return time.monotonic() - sent[0]


signal.signal(signal.SIGTERM, lambda *_: None)  # uvicorn raises the signal it caught again after a run
run(Counting, 2.5)
idle_ticks = Counting.ticks
print(json.dumps({"idle_ticks": idle_ticks, "shutdown_seconds": run(Slow, 0.5)}))
"""


def test_the_server_wakes_once_a_second_when_idle_and_still_stops_at_once() -> None:
    result = subprocess.run(
        [sys.executable, "-c", SERVER_TICKS], capture_output=True, text=True, check=True, timeout=60
    )
    figures = json.loads(result.stdout.strip().splitlines()[-1])
    assert figures["idle_ticks"] <= 4, "uvicorn's own loop ticks 10 times a second: ~26 in 2.5 s"
    assert figures["shutdown_seconds"] < 5.0, "SIGTERM wakes the loop; it does not wait for the 30 s tick"
