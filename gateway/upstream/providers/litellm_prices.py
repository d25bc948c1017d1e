"""Prices from the price map litellm ships, read without importing litellm.

litellm bundles ``model_prices_and_context_window_backup.json`` (about 5,000 entries keyed
``model`` or ``provider/model``, prices in USD per token). Reading the file directly costs
a JSON parse once per process instead of litellm's ~4 s import, and never reaches the network.
"""

from __future__ import annotations

import functools
import importlib.util
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any, TypeGuard

PRICE_FILE = "model_prices_and_context_window_backup.json"
_PER_MILLION = 1_000_000


def bundled_price(provider: str, model: str) -> tuple[float, float] | None:
    """(input, output) USD per million tokens, or None when the bundled map has no price.

    Tries the keys ``model`` then ``provider/model``; an entry that litellm files under
    ``provider`` wins over one filed under another provider (``deepseek-v4-pro`` is
    DeepSeek's own price, ``azure_ai/deepseek-v4-pro`` is Azure's).
    """
    entries = [entry for key in (model, f"{provider}/{model}") if (entry := _price_table().get(key)) is not None]
    entries.sort(key=lambda entry: entry.get("litellm_provider") != provider)
    for entry in entries:
        price = _per_million(entry)
        if price is not None:
            return price
    return None


@functools.cache
def _price_table() -> Mapping[str, Mapping[str, Any]]:
    """The bundled map, parsed once; empty when litellm is not installed."""
    path = _price_file()
    if path is None:
        return {}
    table = json.loads(path.read_text(encoding="utf-8"))
    return {key: entry for key, entry in table.items() if isinstance(entry, dict)}


def _price_file() -> Path | None:
    spec = importlib.util.find_spec("litellm")
    for location in (spec and spec.submodule_search_locations) or ():
        candidate = Path(location) / PRICE_FILE
        if candidate.is_file():
            return candidate
    return None


def _per_million(entry: Mapping[str, Any]) -> tuple[float, float] | None:
    input_price, output_price = entry.get("input_cost_per_token"), entry.get("output_cost_per_token")
    if not (_is_number(input_price) and _is_number(output_price)):
        return None
    return round(input_price * _PER_MILLION, 9), round(output_price * _PER_MILLION, 9)


def _is_number(value: object) -> TypeGuard[float]:
    return isinstance(value, int | float) and not isinstance(value, bool)
