"""Placeholder values satisfy the schema they were built from."""

from __future__ import annotations

from typing import Any

import jsonschema
import pytest

from gateway.standin.placeholder import placeholder

NAMED = {"type": "object", "properties": {"name": {"type": "string"}}, "required": ["name"]}
AGED = {"type": "object", "properties": {"age": {"type": "integer"}}, "required": ["age"]}
TAGS = {"type": "array", "items": {"type": "string"}, "minItems": 2}
SCHEMAS: list[dict[str, Any]] = [
    {"type": "object", "properties": {"a": {"type": "string"}, "b": {"type": "number"}}, "required": ["a", "b"]},
    {"type": "object", "properties": {"n": {"type": ["integer", "null"], "minimum": 3}}, "required": ["n"]},
    {"type": "object", "properties": {"tags": TAGS}, "required": ["tags"]},
    {"type": "object", "properties": {"kind": {"const": "x"}, "on": {"type": "boolean"}}, "required": ["kind", "on"]},
    {"anyOf": [{"type": "null"}, {"type": "object", "properties": {"z": {"enum": [2, 3]}}, "required": ["z"]}]},
    {"allOf": [{"$ref": "#/$defs/named"}, AGED], "$defs": {"named": NAMED}},
    {"$ref": "#/$defs/node", "$defs": {"node": {"type": "object", "properties": {"next": {"$ref": "#/$defs/node"}}}}},
]


@pytest.mark.parametrize("schema", SCHEMAS)
def test_placeholder_is_valid(schema: dict[str, Any]) -> None:
    jsonschema.validate(placeholder(schema), schema)


def test_placeholder_fills_required_properties_only() -> None:
    schema = {"type": "object", "properties": {"a": {"type": "integer"}, "b": {"type": "integer"}}, "required": ["b"]}
    assert placeholder(schema) == {"b": 0}
    assert placeholder({"type": "object"}) == {}
