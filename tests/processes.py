"""Gateways as separate processes, started the way ops start them."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

from tests.factories import REPO


def run_cli(*args: str, stdin: str | None = None, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """``python -m gateway ARGS`` from the repository root, its output captured as text."""
    return subprocess.run(
        [sys.executable, "-m", "gateway", *args],
        check=False,
        capture_output=True,
        text=True,
        cwd=REPO,
        input=stdin,
        timeout=timeout,
    )


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Served:
    url: str
    stdout: str = ""
    stderr: str = ""
    proc: subprocess.Popen[str] | None = None  # the gateway process, to signal or wait for


@contextmanager
def serve(policy: Path, env: dict[str, str], *args: str) -> Iterator[Served]:
    """Run `gateway serve` until the block ends; its output is on the yielded value afterwards."""
    port = free_port()
    command = [sys.executable, "-m", "gateway", "serve", "--policies", str(policy), "--port", str(port), *args]
    proc = subprocess.Popen(
        command, cwd=REPO, env={**os.environ, **env}, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    served = Served(f"http://127.0.0.1:{port}", proc=proc)
    try:
        try:
            _wait_ready(served.url, proc)
        except AssertionError:
            proc.kill()
            served.stdout, served.stderr = proc.communicate(timeout=20)
            raise AssertionError("gateway did not start:\n" + served.stderr[-3000:]) from None
        yield served
    finally:
        proc.send_signal(signal.SIGTERM)
        served.stdout, served.stderr = proc.communicate(timeout=20)


def _wait_ready(url: str, proc: subprocess.Popen[str]) -> None:
    deadline = time.monotonic() + 30
    while True:
        try:
            if httpx.get(url + "/readyz", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        assert proc.poll() is None and time.monotonic() < deadline, "gateway did not start"
        time.sleep(0.1)
