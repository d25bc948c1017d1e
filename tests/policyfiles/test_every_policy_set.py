"""Every policy set in the repository passes ``gateway policy test``: policies/, each scenario pack under
policies/examples/*/ (found by glob, so packs added later are covered) and bench/policies."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway.cli.main import main
from tests.factories import POLICIES, POLICY_SETS, REPO


def test_the_sets_are_found() -> None:
    assert POLICIES in POLICY_SETS and REPO / "bench" / "policies" in POLICY_SETS
    assert len(POLICY_SETS) >= 7, "policies/, five scenario packs, bench/policies"


@pytest.mark.parametrize("directory", POLICY_SETS, ids=lambda d: str(d.relative_to(REPO)))
def test_policy_test_passes(
    directory: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("BENCH_UPSTREAM_URL", "http://127.0.0.1:9/v1")  # bench/policies reads it
    code = main(["policy", "test", str(directory)])
    out, err = capsys.readouterr()
    assert code == 0, err
    assert out.startswith("ok: ") and " 0 failed " in out
