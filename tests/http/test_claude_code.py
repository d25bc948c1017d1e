"""Claude Code through ``gateway serve --demo``: ``claude -p`` with ``ANTHROPIC_BASE_URL`` pointed at the
gateway and its own default model name, which the shipped ``claude-*`` alias routes as ``auto``.

Skipped only when node or npm is absent and ``CI`` is not set (on CI a missing Claude Code fails the test):
it is an npm package, installed once into the cache (tests/claudecode.py). It cannot reach Anthropic: the
demo loads the policies with the stand-ins' addresses only (its Anthropic deployment has no key and is
unavailable), Claude Code's API is the gateway, and any other traffic goes to a closed loopback proxy.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from tests.audit_file import audit_entries
from tests.claudecode import claude_binary, claude_env
from tests.factories import POLICIES
from tests.processes import free_port, serve

CLOSED_PROXY = f"http://127.0.0.1:{free_port()}"  # nothing listens: traffic off loopback fails, never leaves


def claude() -> Path:
    binary = claude_binary()
    if binary is None:
        if os.environ.get("CI"):
            pytest.fail("Claude Code needs node and npm, which CI must have")
        pytest.skip("node or npm is not installed")
    return binary


def test_claude_code_says_hi_through_the_demo_with_its_default_model(tmp_path: Path) -> None:
    binary = claude()
    audit = tmp_path / "audit.jsonl"
    (tmp_path / "home").mkdir()
    (tmp_path / "work").mkdir()
    with serve(POLICIES, {}, "--demo", "--audit-log", str(audit), "--audit-flush-seconds", "0") as served:
        env = claude_env(served.url, "demo-key", tmp_path / "home")
        env |= {"HTTPS_PROXY": CLOSED_PROXY, "HTTP_PROXY": CLOSED_PROXY, "NO_PROXY": "127.0.0.1,localhost"}
        done = subprocess.run(
            [str(binary), "-p", "say hi"],
            cwd=tmp_path / "work",
            env=env,
            capture_output=True,
            text=True,
            timeout=240,
            check=False,
        )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "] Here is a short answer to:" in done.stdout or "] Based on the tool result:" in done.stdout, done.stdout
    lines = audit_entries(audit)
    asked = {(e["requested_model"], e["alias"], e["route"], e["status"]) for e in lines}
    assert lines and all(e["status"] == 200 and e["endpoint"] == "messages" for e in lines), asked
    assert all(e["requested_model"].startswith("claude-") and e["alias"] == "claude-*" for e in lines), asked
    assert {e["route"] for e in lines} == {"auto"}
    assert len(lines) < 40, f"{len(lines)} requests: the stand-ins must end the tool loop"
