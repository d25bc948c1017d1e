"""deploy/constraints.txt pins every runtime dependency, and the Dockerfile installs it before the code."""

from __future__ import annotations

import re
import tomllib
from importlib import metadata

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from tests.factories import REPO

CONSTRAINTS = REPO / "deploy" / "constraints.txt"
PIN = re.compile(r"(?P<name>[A-Za-z0-9][A-Za-z0-9._-]*)==(?P<version>[A-Za-z0-9.+!-]+)")


def pins() -> dict[str, str]:
    found: dict[str, str] = {}
    for line in CONSTRAINTS.read_text().splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        match = PIN.fullmatch(line.strip())
        assert match, f"deploy/constraints.txt: {line!r} is not name==version"
        name = canonicalize_name(match["name"])
        assert name not in found, f"deploy/constraints.txt pins {name} twice"
        found[name] = match["version"]
    return found


def runtime_requirements() -> list[Requirement]:
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    return [Requirement(line) for line in project["dependencies"]]


def closure(requirements: list[Requirement]) -> set[str]:
    """The runtime dependencies and everything they need (with their extras), from the installed metadata."""
    seen: set[str] = set()
    pending = [(req, req.extras) for req in requirements]
    while pending:
        req, extras = pending.pop()
        if req.marker is not None and not any(req.marker.evaluate({"extra": e}) for e in (extras or {""})):
            continue
        name = canonicalize_name(req.name)
        key = f"{name}[{','.join(sorted(req.extras))}]"
        if key in seen:
            continue
        seen.add(key)
        for line in metadata.requires(name) or []:
            pending.append((Requirement(line), req.extras))
    return {key.split("[")[0] for key in seen}


def test_the_constraints_pin_every_runtime_dependency_and_what_it_needs() -> None:
    pinned = pins()
    needed = closure(runtime_requirements())
    assert {"fastapi", "uvicorn", "uvloop", "httptools", "litellm", "redis"} <= needed
    missing = sorted(needed - set(pinned))
    assert not missing, f"deploy/constraints.txt lacks {missing}: regenerate it (its header says how)"
    assert "switchyard-gateway" not in pinned


def test_the_pins_satisfy_what_pyproject_asks_for() -> None:
    pinned = pins()
    for req in runtime_requirements():
        version = pinned[canonicalize_name(req.name)]
        assert req.specifier.contains(version, prereleases=True), f"{req.name}=={version} is not {req.specifier}"


def test_the_dockerfile_installs_the_pinned_dependencies_in_their_own_layer_before_the_code() -> None:
    lines = [line.strip() for line in (REPO / "Dockerfile").read_text().splitlines()]
    build = lines[next(i for i, line in enumerate(lines) if line.startswith("FROM ")) :]
    deps = build.index("RUN pip install --no-cache-dir --prefix=/install --no-deps -r deploy/constraints.txt")
    assert build.index("COPY deploy/constraints.txt ./deploy/constraints.txt") < deps
    assert (
        deps
        < build.index("COPY gateway ./gateway")
        < build.index("RUN pip install --no-cache-dir --prefix=/install --no-deps .")
    )
    (image,) = [line.split("=", 1)[1] for line in lines if line.startswith("ARG PYTHON_IMAGE=")]
    assert re.fullmatch(r"python:3\.11\.\d+-slim-[a-z]+(@sha256:[0-9a-f]{64})?", image), image
    stages = [line for line in lines if line.startswith("FROM")]
    assert stages == ["FROM ${PYTHON_IMAGE} AS build", "FROM ${PYTHON_IMAGE}"]
