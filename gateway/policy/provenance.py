"""Provenance left for ops to fill: ``FILL-ME`` in a catalog or deployment field fails the check by name.

``gateway policy import-litellm`` writes ``FILL-ME`` where it cannot tell a model's vendor, origin or
licence, or where a deployment's data goes; the set does not load until someone fills them in.
"""

from __future__ import annotations

from typing import Any

FILL_ME = "FILL-ME"


def require_filled(data: Any, fields: tuple[str, ...], what: str) -> Any:
    """``data`` unchanged, or a ValueError naming every field still written ``FILL-ME``."""
    if not isinstance(data, dict):
        return data
    unfilled = [name for name in fields if data.get(name) == FILL_ME]
    if unfilled:
        raise ValueError(f"unknown provenance: set {', '.join(unfilled)} for this {what} (written {FILL_ME})")
    return data
