"""``gateway serve --demo`` keeps its state where REDIS_URL / REDIS_MODE say (deploy/compose.yaml relies
on it), while the policies still see the stand-ins' environment only, never a provider key."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from tests.processes import REPO, serve
from tests.state.servers import RedisServer

HI = {"model": "auto", "messages": [{"role": "user", "content": "hi"}]}
DEMO = {"authorization": "Bearer demo-key"}


def demo_policies(directory: Path) -> Path:
    """The example policies, with 3 requests per minute for the demo tenant."""
    shutil.copytree(REPO / "policies", directory)
    tenants = directory / "tenants.yaml"
    marker = '    description: Demo tenant with no restrictions. Key "demo-key".\n'
    text = tenants.read_text()
    assert marker in text
    tenants.write_text(text.replace(marker, marker + "    limits: {rpm: 3}\n"))
    return directory


@pytest.mark.parametrize("mode", ["standalone", "cluster", "sentinel"])
def test_two_demo_replicas_share_one_redis(tmp_path: Path, mode: str, request: pytest.FixtureRequest) -> None:
    policies = demo_policies(tmp_path / "policies")
    servers = request.getfixturevalue(
        {"standalone": "redis_server", "cluster": "redis_cluster"}.get(mode, "redis_sentinel")
    )
    # a provider key in the shell is not for the demo: its stand-in would refuse it
    env = {"REDIS_URL": servers.url, "REDIS_MODE": mode, "OPENAI_API_KEY": "sk-not-for-the-demo"}
    with serve(policies, env, "--demo") as one, serve(policies, env, "--demo") as two:
        statuses = [httpx.post(r.url + "/v1/chat/completions", json=HI, headers=DEMO).status_code for r in (one, two)]
        statuses += [httpx.post(r.url + "/v1/chat/completions", json=HI, headers=DEMO).status_code for r in (one, two)]
    assert statuses == [200, 200, 200, 429]  # 3 per minute across both replicas: counted in Redis
    assert "shared state: redis" in one.stderr + one.stdout
    if isinstance(servers, RedisServer):
        assert any(key.startswith(b"switchyard:{tenant:demo}:rate:") for key in servers.stored_keys())


def test_a_bad_redis_mode_stops_the_demo_with_its_name(tmp_path: Path) -> None:
    env = {"REDIS_URL": "redis://127.0.0.1:1", "REDIS_MODE": "replicated", "PATH": "/usr/bin:/bin"}
    result = subprocess.run(
        [sys.executable, "-m", "gateway", "serve", "--demo", "--port", "0", "--policies", str(REPO / "policies")],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert result.returncode != 0
    assert "REDIS_MODE: 'replicated' is not one of standalone, cluster, sentinel" in result.stderr
