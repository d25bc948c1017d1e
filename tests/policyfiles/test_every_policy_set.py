"""Every policy set in the repository passes ``gateway policy test``: policies/, each scenario pack under
policies/examples/*/ (found by glob, so packs added later are covered) and bench/policies."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway.cli.main import main
from tests.factories import POLICIES, REPO


def policy_sets() -> list[Path]:
    candidates = [
        POLICIES,
        *sorted(p for p in (POLICIES / "examples").glob("*/") if p.is_dir()),
        REPO / "bench" / "policies",
    ]
    return [d for d in candidates if any((d / "cases").glob("*.y*ml"))]


def test_the_sets_are_found() -> None:
    assert POLICIES in policy_sets() and REPO / "bench" / "policies" in policy_sets()


@pytest.mark.parametrize("directory", policy_sets(), ids=lambda d: str(d.relative_to(REPO)))
def test_policy_test_passes(
    directory: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("BENCH_UPSTREAM_URL", "http://127.0.0.1:9/v1")  # bench/policies reads it
    code = main(["policy", "test", str(directory)])
    out, err = capsys.readouterr()
    assert code == 0, err
    assert out.startswith("ok: ") and " 0 failed " in out
