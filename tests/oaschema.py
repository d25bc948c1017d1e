"""Validate JSON against component schemas of OpenAI's official OpenAPI document.

The document (``<repo>/../shared/openai-openapi/openapi.yaml``, or ``$OPENAI_OPENAPI_YAML``) is
used whole when it is there (every schema of it can be named). Without it (a fresh clone) the
schemas come from the checked-in extract, ``tests/data/openai-openapi-schemas.json``: the closure
of the schemas reachable from ``tests/oaschema_extract.py``'s ``ROOTS``, which
``python -m tests.oaschema_extract`` regenerates. The document is OpenAPI 3.1 but still marks
some schemas with 3.0-style ``nullable: true``; each such schema ``S`` is rewritten to
``{"anyOf": [S, {"type": "null"}]}`` before validating with JSON Schema draft 2020-12. The
schemas are read once per process.

    validate("CreateChatCompletionResponse", response.model_dump())
"""

from __future__ import annotations

import functools
import json
import os
from pathlib import Path
from typing import Any

import yaml
from jsonschema import Draft202012Validator
from jsonschema.exceptions import ValidationError, best_match
from referencing import Registry
from referencing.jsonschema import DRAFT202012

from tests.oaschema_extract import EXTRACT

SPEC_ENV = "OPENAI_OPENAPI_YAML"
BASE_URI = "urn:openai:openapi"
MAX_REPORTED = 5


def spec_path() -> Path:
    override = os.environ.get(SPEC_ENV)
    if override:
        return Path(override)
    return Path(__file__).resolve().parents[1].parent / "shared" / "openai-openapi" / "openapi.yaml"


def source() -> Path:
    """Where the schemas come from: the whole document when it is there, else the extract."""
    spec = spec_path()
    return spec if spec.is_file() else EXTRACT


def validate(schema_name: str, instance: Any, schemas_from: Path | None = None) -> None:
    """Raise AssertionError naming every place ``instance`` breaks ``#/components/schemas/<schema_name>``
    (of ``schemas_from``, the document or the extract; default :func:`source`)."""
    validator = _validator(schema_name, schemas_from or source())
    errors = sorted(validator.iter_errors(instance), key=lambda e: list(e.absolute_path))
    if errors:
        lines = [_describe(best_match([error])) for error in errors[:MAX_REPORTED]]
        more = f"\n  ... and {len(errors) - MAX_REPORTED} more" if len(errors) > MAX_REPORTED else ""
        raise AssertionError(f"not a valid {schema_name}:\n  " + "\n  ".join(lines) + more)


def _describe(error: ValidationError) -> str:
    return f"at {error.json_path}: {error.message}"


@functools.cache
def _validator(schema_name: str, path: Path) -> Draft202012Validator:
    if schema_name not in schemas(path):
        hint = " (add it to ROOTS in tests/oaschema_extract.py and run that module)" if path == EXTRACT else ""
        raise KeyError(f"{schema_name} is not in {path} components.schemas{hint}")
    ref = {"$ref": f"{BASE_URI}#/components/schemas/{schema_name}"}
    return Draft202012Validator(ref, registry=_registry(path))


@functools.cache
def schemas(path: Path) -> dict[str, Any]:
    """The component schemas of the document or the extract at ``path``, ``nullable`` rewritten."""
    if path == EXTRACT:
        raw = json.loads(path.read_bytes())["schemas"]  # not orjson: it reads integers past 64 bits as floats
    else:
        with path.open("rb") as file:
            raw = yaml.load(file, Loader=yaml.CSafeLoader)["components"]["schemas"]
    converted: dict[str, Any] = _without_nullable(raw)
    return converted


@functools.cache
def _registry(path: Path) -> Registry[Any]:
    resource = DRAFT202012.create_resource({"components": {"schemas": schemas(path)}})
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
