"""A placeholder JSON value that satisfies a JSON schema's required shape.

Used for ``response_format: json_schema`` and for tool-call arguments: every required
property is filled with a value of the right type (first enum value, const, default,
or a type-based placeholder). Local ``$ref`` (``#/$defs/...``) are followed.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

Schema = Mapping[str, Any]
MAX_DEPTH = 12

_BY_TYPE: dict[str, Any] = {
    "string": "example",
    "integer": 0,
    "number": 0.0,
    "boolean": False,
    "null": None,
}


def placeholder(schema: Schema) -> Any:
    """A value of the schema's type; objects get their required properties."""
    return _value(schema, schema, 0)


def _value(schema: Schema, root: Schema, depth: int) -> Any:
    if depth > MAX_DEPTH:
        return None
    schema = _resolve(schema, root)
    for key in ("const", "default"):
        if key in schema:
            return schema[key]
    if schema.get("enum"):
        return schema["enum"][0]
    for key in ("anyOf", "oneOf"):
        if schema.get(key):
            return _value(_first_not_null(schema[key]), root, depth + 1)
    if schema.get("allOf"):
        return _value(_merge(schema["allOf"], root), root, depth + 1)
    return _by_type(schema, root, depth)


def _by_type(schema: Schema, root: Schema, depth: int) -> Any:
    kind = _type_of(schema)
    if kind == "object":
        return _object(schema, root, depth)
    if kind == "array":
        count = int(schema.get("minItems", 0))
        items = schema.get("items", {})
        return [_value(items, root, depth + 1) for _ in range(count)]
    if kind in ("integer", "number") and "minimum" in schema:
        return schema["minimum"]
    return _BY_TYPE.get(kind, "example")


def _object(schema: Schema, root: Schema, depth: int) -> dict[str, Any]:
    properties = schema.get("properties", {})
    return {name: _value(properties.get(name, {}), root, depth + 1) for name in schema.get("required", [])}


def _type_of(schema: Schema) -> str:
    kind = schema.get("type")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), "null")
    if kind is None:
        kind = "object" if "properties" in schema else "string"
    return str(kind)


def _first_not_null(options: list[Schema]) -> Schema:
    return next((option for option in options if option.get("type") != "null"), options[0])


def _merge(parts: list[Schema], root: Schema) -> Schema:
    if len(parts) == 1:
        return _resolve(parts[0], root)
    properties: dict[str, Any] = {}
    required: list[str] = []
    for part in (_resolve(p, root) for p in parts):
        properties.update(part.get("properties", {}))
        required.extend(part.get("required", []))
    return {"type": "object", "properties": properties, "required": required}


def _resolve(schema: Schema, root: Schema) -> Schema:
    for _ in range(MAX_DEPTH):
        ref = schema.get("$ref")
        if not isinstance(ref, str) or not ref.startswith("#/"):
            return schema
        target: Any = root
        for part in ref[2:].split("/"):
            target = target.get(part, {}) if isinstance(target, Mapping) else {}
        schema = target
    return schema
