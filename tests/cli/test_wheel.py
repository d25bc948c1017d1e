"""``pip install .`` (a wheel, not editable) then ``gateway serve --demo`` from another directory."""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

from tests.cli.test_serve_process import assert_stopped_by_ctrl_c, chat, gateway
from tests.factories import POLICIES, REPO

SOURCES = ("pyproject.toml", "README.md", "LICENSE", "policies", "gateway")


def pip(*args: str) -> None:
    command = [sys.executable, "-m", "pip", "--disable-pip-version-check", "--no-input", *args]
    result = subprocess.run(command, capture_output=True, text=True, timeout=300, check=False)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]


def build_wheel(tmp_path: Path) -> Path:
    """The wheel of a copy of the sources (the build writes build/ and *.egg-info beside them)."""
    source = tmp_path / "source"
    source.mkdir()
    for name in SOURCES:
        if (REPO / name).is_dir():
            shutil.copytree(REPO / name, source / name, symlinks=True, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(REPO / name, source / name)
    pip("wheel", "--no-deps", "--no-build-isolation", "--no-index", "--wheel-dir", str(tmp_path / "dist"), str(source))
    (wheel,) = (tmp_path / "dist").glob("switchyard_gateway-*.whl")
    return wheel


def test_the_wheel_ships_the_example_policies_and_its_demo_runs_from_any_directory(tmp_path: Path) -> None:
    wheel = build_wheel(tmp_path)
    with zipfile.ZipFile(wheel) as archive:
        shipped = {
            name.removeprefix("gateway/example_policies/"): archive.read(name)
            for name in archive.namelist()
            if name.startswith("gateway/example_policies/")
        }
        assert any(name.endswith("/LICENSE") for name in archive.namelist())
    example = {str(path.relative_to(POLICIES)): path.read_bytes() for path in POLICIES.rglob("*.yaml")}
    assert shipped == example
    target = tmp_path / "installed"
    pip("install", "--no-deps", "--no-index", "--target", str(target), str(wheel))
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    with gateway(["--demo"], cwd=elsewhere, env={"PYTHONPATH": str(target)}) as (url, outcome):
        assert chat(url, "demo-us-only").headers["x-gateway-deployment"] == "gpt-oss-120b-vllm"
    assert_stopped_by_ctrl_c(outcome[0])
    assert f"from {target / 'gateway' / 'example_policies'}" in outcome[0].stdout.splitlines()[0]
