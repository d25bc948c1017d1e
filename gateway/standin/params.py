"""Reading request parameters, with a 400 that names the parameter when one is wrong."""

from __future__ import annotations

from typing import Any

from gateway.standin.gate import Json, WireError

MAX_STOPS = 4


def model_of(body: Json) -> str:
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise WireError(400, "you must provide a model parameter", param="model")
    return model


def int_param(body: Json, name: str, *, low: int = 1, high: int = 2**31) -> int | None:
    """An optional integer within ``[low, high]``; None when absent or null."""
    value = body.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise WireError(400, f"{name} must be an integer from {low} to {high}, got {value!r}", param=name)
    return value


def first_int(body: Json, *names: str) -> int | None:
    """The first of several synonymous integer parameters that is set (e.g. max_completion_tokens, max_tokens)."""
    for name in names:
        value = int_param(body, name)
        if value is not None:
            return value
    return None


def stop_list(value: Any, param: str, limit: int = MAX_STOPS) -> list[str]:
    """A stop parameter (string, list of strings or null) as a list."""
    if value is None:
        return []
    stops = [value] if isinstance(value, str) else value
    if not isinstance(stops, list) or not all(isinstance(s, str) for s in stops) or len(stops) > limit:
        raise WireError(400, f"{param} must be a string or a list of at most {limit} strings", param=param)
    return stops


def list_param(body: Json, name: str, *, required: bool = False) -> list[Any]:
    value = body.get(name)
    if value is None and not required:
        return []
    if not isinstance(value, list) or (required and not value):
        raise WireError(400, f"{name} must be a non-empty list", param=name)
    return value
