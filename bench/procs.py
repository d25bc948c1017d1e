"""Processes under test: start, wait for, stop; CPU and memory read from /proc.

CPU is utime + stime of a process and every live descendant (a server's workers), in seconds.
Memory is VmRSS (now) and VmHWM (peak since start) summed over the same process tree, in MB.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import httpx

TICKS = os.sysconf("SC_CLK_TCK")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _children(pid: int) -> list[int]:
    found: list[int] = []
    try:
        for task in os.listdir(f"/proc/{pid}/task"):
            text = Path(f"/proc/{pid}/task/{task}/children").read_text()
            found += [int(child) for child in text.split()]
    except OSError:
        pass
    return found


def tree(pid: int) -> list[int]:
    """``pid`` and all its live descendants."""
    pids, index = [pid], 0
    while index < len(pids):
        pids += _children(pids[index])
        index += 1
    return pids


def cpu_seconds(pid: int) -> float:
    total = 0
    for p in tree(pid):
        try:
            fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])  # utime, stime (fields 14 and 15 of stat)
    return total / TICKS


def machine_busy_seconds() -> float:
    """CPU seconds all cores spent in processes (user, nice, system) or stolen by the hypervisor, since boot."""
    fields = Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]
    user, nice, system, _idle, _iowait, _irq, _softirq, steal = (int(v) for v in fields[:8])
    return (user + nice + system + steal) / TICKS


def _status_kb(pid: int, key: str) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def rss_mb(pid: int) -> float:
    return sum(_status_kb(p, "VmRSS") for p in tree(pid)) / 1024


def hwm_mb(pid: int) -> float:
    """Peak resident memory: the sum over the tree of each process's VmHWM."""
    return sum(_status_kb(p, "VmHWM") for p in tree(pid)) / 1024


@dataclass
class Server:
    """A process under test and what the benchmark read of it."""

    name: str
    base_url: str  # e.g. http://127.0.0.1:8080/v1
    proc: subprocess.Popen[bytes]
    started_in: float = 0.0  # seconds from spawn to the first successful request
    log: Path | None = None
    rss_samples: list[tuple[float, float]] = field(default_factory=list)  # (monotonic time, MB)

    @property
    def pid(self) -> int:
        return self.proc.pid

    def sample_rss(self) -> float:
        mb = rss_mb(self.pid)
        self.rss_samples.append((time.monotonic(), mb))
        return mb

    def stop(self) -> None:
        stop(self.proc)


def spawn(
    argv: Sequence[str], env: Mapping[str, str] | None = None, log: Path | None = None, cwd: Path | None = None
) -> subprocess.Popen[bytes]:
    """Start ``argv`` in its own session (so ``stop`` ends its whole process group), output to ``log``."""
    out = open(log, "wb") if log else subprocess.DEVNULL  # noqa: SIM115 - closed below, the child keeps its copy
    try:
        return subprocess.Popen(
            list(argv),
            env=dict(env) if env is not None else None,
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=cwd,
            start_new_session=True,
        )
    finally:
        if log:
            out.close()  # type: ignore[union-attr]


def stop(proc: subprocess.Popen[bytes], timeout: float = 10.0) -> None:
    """SIGTERM the process group the benchmark started, then SIGKILL it if it lingers."""
    if proc.poll() is not None:
        return
    os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout)


def wait_until(ok: Callable[[], bool], proc: subprocess.Popen[bytes], timeout: float, what: str) -> float:
    """Poll ``ok`` every 10 ms until it is true; return the seconds it took. Fails if ``proc`` dies."""
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        if proc.poll() is not None:
            raise RuntimeError(f"{what} exited with code {proc.returncode} before it was ready")
        if ok():
            return time.monotonic() - started
        time.sleep(0.01)
    raise RuntimeError(f"{what} was not ready after {timeout:.0f} s")


def answers(url: str, body: bytes, key: str | None) -> Callable[[], bool]:
    """A probe: does a POST of ``body`` to ``url`` come back 200?"""
    headers = {"content-type": "application/json"}
    if key:
        headers["authorization"] = f"Bearer {key}"

    def probe() -> bool:
        try:
            return httpx.post(url, content=body, headers=headers, timeout=5).status_code == 200
        except httpx.HTTPError:
            return False

    return probe


def ready(url: str) -> Callable[[], bool]:
    """A probe: does the gateway at ``url`` answer ``GET /readyz`` with 200?"""

    def probe() -> bool:
        try:
            return httpx.get(url + "/readyz", timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    return probe
