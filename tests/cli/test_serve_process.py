"""``gateway serve`` as ops run it: the demo's output, Ctrl-C, the packaged example policies, router data errors."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

from tests.factories import POLICIES, REPO
from tests.processes import free_port, run_cli

CHAT = {"model": "auto", "messages": [{"role": "user", "content": "What is the capital of France?"}]}
START_SECONDS = 120  # a loaded 2-core machine can take a minute to import and load


@dataclass
class Stopped:
    code: int
    stdout: str
    stderr: str


@contextmanager
def gateway(
    args: Sequence[str], cwd: Path, python: Sequence[str] = (sys.executable,), env: dict[str, str] | None = None
) -> Iterator[tuple[str, list[Stopped]]]:
    """``gateway serve ARGS`` from ``cwd`` until the block ends, then Ctrl-C (SIGINT); the outcome is appended."""
    port = free_port()
    command = [*python, "-m", "gateway", "serve", "--port", str(port), "--reload-seconds", "0", *args]
    proc = subprocess.Popen(
        command, cwd=cwd, env={**os.environ, **(env or {})}, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )  # fmt: skip
    url, outcome = f"http://127.0.0.1:{port}", []
    try:
        _wait_ready(url, proc)
        yield url, outcome
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            stdout, stderr = proc.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            stdout, stderr = proc.communicate()
        outcome.append(Stopped(proc.returncode, stdout, stderr))


def _wait_ready(url: str, proc: subprocess.Popen[str]) -> None:
    deadline = time.monotonic() + START_SECONDS
    while True:
        try:
            if httpx.get(url + "/readyz", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            raise AssertionError("gateway did not start:\n" + proc.communicate()[1][-3000:])
        time.sleep(0.1)


def chat(url: str, key: str = "demo-key") -> httpx.Response:
    return httpx.post(url + "/v1/chat/completions", json=CHAT, headers={"authorization": f"Bearer {key}"}, timeout=30)


def assert_stopped_by_ctrl_c(stopped: Stopped) -> None:
    assert stopped.code == 0, stopped.stderr[-3000:]
    assert "Traceback" not in stopped.stderr and "KeyboardInterrupt" not in stopped.stderr, stopped.stderr[-3000:]
    assert [line for line in stopped.stderr.splitlines() if "SIGINT" in line or "Ctrl-C" in line][-1:] != []


def test_the_demo_keeps_stdout_for_its_banner_and_logs_one_server_start(tmp_path: Path) -> None:
    with gateway(["--demo"], cwd=tmp_path) as (url, outcome):  # no ./policies here: the packaged examples
        answer = chat(url)
        assert answer.status_code == 200, answer.text
        time.sleep(1.5)  # the audit line is written within --audit-flush-seconds (1)
    stopped = outcome[0]
    assert_stopped_by_ctrl_c(stopped)
    banner = stopped.stdout.splitlines()
    assert banner[0].startswith("Switchyard gateway listening on ") and "example_policies" in banner[0]
    assert "Audit trail: stderr; logs: stderr. Ctrl-C stops." in banner
    assert not [line for line in banner if line.startswith("{")], "audit or log lines on the banner's stdout"
    assert stopped.stderr.count("Started server process") == 1
    assert answer.headers["x-request-id"] in stopped.stderr  # the audit line went to stderr
    assert "no ./policies here: serving the example policies shipped in the package" in stopped.stderr
    assert "credentials missing" not in stopped.stderr
    assert "demo: no stand-in for 3 deployment(s), not called: claude-sonnet-4-anthropic" in stopped.stderr
    assert '"level":"warning"' not in stopped.stderr, "the demo warns of nothing (model check, keys)"


def test_ctrl_c_on_a_served_policy_exits_0_with_one_line() -> None:
    with gateway(["--policies", str(POLICIES), "--audit-log", "off"], cwd=REPO) as (url, outcome):
        assert httpx.get(url + "/healthz").status_code == 200
    assert_stopped_by_ctrl_c(outcome[0])
    assert outcome[0].stderr.count("SIGINT (Ctrl-C): stopped") == 1


def test_ctrl_c_with_workers_exits_0_without_a_traceback() -> None:
    with gateway(["--demo", "--workers", "2"], cwd=REPO) as (url, outcome):
        assert chat(url).status_code == 200
    assert_stopped_by_ctrl_c(outcome[0])


def test_router_train_and_eval_without_their_data_name_the_path_and_the_option(tmp_path: Path) -> None:
    missing = tmp_path / "dev.jsonl"
    for command in ("train", "eval"):
        result = run_cli("router", command, "--data", str(missing))
        assert result.returncode == 2, result.stderr
        expected = f"error: no data set at {missing}: pass one with --data PATH (JSON lines)"
        assert result.stderr.splitlines() == [expected]
