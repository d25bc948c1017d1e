"""``gateway policy explain`` resolves aliases as the gateway does, and shows the name, the alias and its target."""

from __future__ import annotations

import json
from pathlib import Path

from tests.factories import POLICIES
from tests.processes import run_cli


def test_policy_explain_shows_the_alias(tmp_path: Path) -> None:
    request = tmp_path / "request.json"
    body = {"model": "claude-sonnet-4-5-20250929", "messages": [{"role": "user", "content": "hi"}]}
    request.write_text(json.dumps(body))
    result = run_cli("policy", "explain", "--policies", str(POLICIES), "--tenant", "demo", "--request", str(request))
    assert result.returncode == 0, result.stderr
    decision = json.loads(result.stdout)["decision"]
    assert decision["requested_model"] == "claude-sonnet-4-5-20250929"
    assert (decision["alias"], decision["resolved_model"], decision["route"]) == ("claude-*", "auto", "auto")
