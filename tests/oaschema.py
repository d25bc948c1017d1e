"""Validate JSON against component schemas of OpenAI's official OpenAPI document.

The document (``<repo>/../shared/openai-openapi/openapi.yaml``, or ``$OPENAI_OPENAPI_YAML``)
is OpenAPI 3.1 but still marks some schemas with 3.0-style ``nullable: true``; each such
schema ``S`` is rewritten to ``{"anyOf": [S, {"type": "null"}]}`` before validating with
JSON Schema draft 2020-12. The ~3 MB file is parsed once per process.

    validate("CreateChatCompletionResponse", response.model_dump())
"""

from __future__ import annotations

import functools
import os
from pathlib import Path
from typing import Any

import yaml
from jsonschema import Draft202012Validator
from jsonschema.exceptions import ValidationError, best_match
from referencing import Registry
from referencing.jsonschema import DRAFT202012

SPEC_ENV = "OPENAI_OPENAPI_YAML"
BASE_URI = "urn:openai:openapi"
MAX_REPORTED = 5


def spec_path() -> Path:
    override = os.environ.get(SPEC_ENV)
    if override:
        return Path(override)
    return Path(__file__).resolve().parents[1].parent / "shared" / "openai-openapi" / "openapi.yaml"


def validate(schema_name: str, instance: Any) -> None:
    """Raise AssertionError naming every place ``instance`` breaks ``#/components/schemas/<schema_name>``."""
    errors = sorted(_validator(schema_name).iter_errors(instance), key=lambda e: list(e.absolute_path))
    if errors:
        lines = [_describe(best_match([error])) for error in errors[:MAX_REPORTED]]
        more = f"\n  ... and {len(errors) - MAX_REPORTED} more" if len(errors) > MAX_REPORTED else ""
        raise AssertionError(f"not a valid {schema_name}:\n  " + "\n  ".join(lines) + more)


def _describe(error: ValidationError) -> str:
    return f"at {error.json_path}: {error.message}"


@functools.cache
def _validator(schema_name: str) -> Draft202012Validator:
    if schema_name not in _schemas():
        raise KeyError(f"{schema_name} is not in {spec_path()} components.schemas")
    ref = {"$ref": f"{BASE_URI}#/components/schemas/{schema_name}"}
    return Draft202012Validator(ref, registry=_registry())


@functools.cache
def _schemas() -> dict[str, Any]:
    with spec_path().open("rb") as file:
        document = yaml.load(file, Loader=yaml.CSafeLoader)
    schemas: dict[str, Any] = _without_nullable(document["components"]["schemas"])
    return schemas


@functools.cache
def _registry() -> Registry[Any]:
    resource = DRAFT202012.create_resource({"components": {"schemas": _schemas()}})
    return Registry().with_resource(BASE_URI, resource)


def _without_nullable(node: Any) -> Any:
    """Rewrite OpenAPI 3.0 ``nullable: true`` into JSON Schema, all the way down."""
    if isinstance(node, list):
        return [_without_nullable(item) for item in node]
    if not isinstance(node, dict):
        return node
    converted = {key: _without_nullable(value) for key, value in node.items() if key != "nullable"}
    if node.get("nullable") is True:
        return {"anyOf": [converted, {"type": "null"}]}
    return converted
