"""Prices from litellm's bundled price map (figures from litellm 1.110.2's file), read without importing litellm."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from gateway.upstream.providers.litellm_prices import bundled_price
from tests.factories import REPO


@pytest.mark.parametrize(
    ("provider", "model", "price"),
    [
        ("anthropic", "claude-sonnet-4-5", (3.0, 15.0)),  # filed under the bare model name
        ("mistral", "mistral-large-latest", (0.5, 1.5)),  # filed only as provider/model
        ("bedrock", "anthropic.claude-3-5-sonnet-20240620-v1:0", (3.0, 15.0)),
    ],
)
def test_a_listed_model_has_its_price_per_million_tokens(provider: str, model: str, price: tuple[float, float]) -> None:
    assert bundled_price(provider, model) == price


def test_the_entry_of_the_asked_provider_wins() -> None:
    deepseek, azure = bundled_price("deepseek", "deepseek-v4-pro"), bundled_price("azure_ai", "deepseek-v4-pro")
    assert deepseek is not None and azure is not None
    assert deepseek[0] == pytest.approx(1.32) and azure[0] == pytest.approx(1.74)


def test_an_unlisted_model_has_no_price() -> None:
    assert bundled_price("anthropic", "claude-that-does-not-exist") is None


def test_an_entry_without_an_output_price_has_no_price() -> None:
    assert bundled_price("azure", "gpt-image-1") is None  # priced per image: only an input token price


def test_prices_are_read_without_importing_litellm() -> None:
    code = (
        "import sys; from gateway.upstream.providers.litellm_prices import bundled_price; "
        "assert bundled_price('anthropic', 'claude-sonnet-4-5'); print('litellm' in sys.modules)"
    )
    env = dict(os.environ, PYTHONPATH=str(REPO))
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "False"
