"""Claude Code (``@anthropic-ai/claude-code``) for the agent tests, installed once with npm into the cache.

It lives under ``~/.cache/switchyard/npm`` (``SWITCHYARD_CACHE`` to move it), outside the clone, so a second
run starts at once. npm reaches its registry for the install only; the CLI itself is run against a gateway
on loopback with its telemetry, error reports and updater off.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

PACKAGE = "@anthropic-ai/claude-code"
PREFIX = Path(os.environ.get("SWITCHYARD_CACHE") or Path.home() / ".cache" / "switchyard") / "npm"  # as llamacpp
QUIET = {
    "DISABLE_TELEMETRY": "1",
    "DISABLE_ERROR_REPORTING": "1",
    "DISABLE_AUTOUPDATER": "1",
    "DISABLE_BUG_COMMAND": "1",
    "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
}


def claude_binary() -> Path | None:
    """The ``claude`` command, installed into the cache when npm is here; None without node or npm."""
    binary = PREFIX / "node_modules" / ".bin" / "claude"
    if binary.exists():
        return binary
    npm = shutil.which("npm")
    if npm is None or shutil.which("node") is None:
        return None
    PREFIX.mkdir(parents=True, exist_ok=True)
    command = [npm, "install", "--prefix", str(PREFIX), "--no-audit", "--no-fund", PACKAGE]
    subprocess.run(command, check=True, capture_output=True, timeout=600)
    return binary


def claude_env(base_url: str, key: str, home: Path) -> dict[str, str]:
    """Only what Claude Code needs: the gateway as its Anthropic API, a key of the gateway, a fresh HOME."""
    return {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(home),
        "ANTHROPIC_BASE_URL": base_url,
        "ANTHROPIC_API_KEY": key,
        **QUIET,
    }
