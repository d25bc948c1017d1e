"""The checked-in JSON Schemas match the pydantic models, and the shipped files name them."""

from __future__ import annotations

import pytest

from gateway.policyfiles.json_schema import LANGUAGE_SERVER_LINE, SCHEMAS, render
from tests.factories import POLICIES


@pytest.mark.parametrize("name", sorted(SCHEMAS))
def test_the_checked_in_schema_is_fresh(name: str) -> None:
    checked_in = (POLICIES / "schema" / name).read_text(encoding="utf-8")
    assert checked_in == render(name), f"stale: run gateway policy schema --out policies/schema/{name}"


def test_every_shipped_policy_file_names_the_schema() -> None:
    for path in POLICIES.glob("*.yaml"):
        assert path.read_text(encoding="utf-8").splitlines()[0] == LANGUAGE_SERVER_LINE, path
