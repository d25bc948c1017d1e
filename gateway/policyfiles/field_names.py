"""The field names a policy file may use at a given path, for "did you mean" on an unknown key."""

from __future__ import annotations

import types
import typing
from collections.abc import Sequence
from typing import Any

from pydantic import BaseModel

from gateway.policy.schema import PolicyFile


def fields_at(loc: Sequence[Any], root: type[BaseModel] = PolicyFile) -> list[str]:
    """The keys allowed in the mapping at ``loc`` (``('tenants', 'acme')`` -> TenantSpec's fields)."""
    kind: Any = root
    for part in loc:
        kind = _step(kind, part)
        if kind is None:
            return []
    model = _model(kind)
    if model is None:
        return []
    return [info.alias or name for name, info in model.model_fields.items()]


def _step(kind: Any, part: Any) -> Any:
    model = _model(kind)
    if model is not None:
        for name, info in model.model_fields.items():
            if part in (name, info.alias):
                return info.annotation
        return None
    for option in _options(kind):
        origin = typing.get_origin(option)
        args = typing.get_args(option)
        if origin is dict and isinstance(part, str):
            return args[1]
        if origin in (tuple, list) and isinstance(part, int) and args:
            return args[0]
    return None


def _model(kind: Any) -> type[BaseModel] | None:
    for option in _options(kind):
        if isinstance(option, type) and issubclass(option, BaseModel):
            return option
    return None


def _options(kind: Any) -> list[Any]:
    """``X | None`` and ``Annotated[X, ...]`` unwrapped to the types they allow."""
    origin = typing.get_origin(kind)
    if origin is typing.Annotated:
        return _options(typing.get_args(kind)[0])
    if origin in (typing.Union, types.UnionType):
        return [o for arg in typing.get_args(kind) for o in _options(arg)]
    return [kind]
