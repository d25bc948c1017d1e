"""JSON Schema of the policy files and of the case files, generated from their pydantic models.

Checked in as ``policies/schema/*.schema.json`` so editors (the YAML language server) complete and
check policies as ops type; ``gateway policy schema`` regenerates them and a test fails when stale."""

from __future__ import annotations

import json
from typing import Any

from pydantic import BaseModel

from gateway.policy.schema import PolicyFile
from gateway.policyfiles.cases import CaseFile

SCHEMA_DIR = "schema"
SCHEMAS: dict[str, tuple[type[BaseModel], str]] = {  # file name -> model, title
    "policy.schema.json": (PolicyFile, "Switchyard policy file (policies/*.yaml)"),
    "cases.schema.json": (CaseFile, "Switchyard policy cases (policies/cases/*.yaml)"),
}
LANGUAGE_SERVER_LINE = "# yaml-language-server: $schema=schema/policy.schema.json"


def schema_of(name: str) -> dict[str, Any]:
    model, title = SCHEMAS[name]
    schema = model.model_json_schema(by_alias=True, mode="validation")
    return {"$schema": "https://json-schema.org/draft/2020-12/schema", **schema, "title": title}


def render(name: str) -> str:
    return json.dumps(schema_of(name), indent=2, ensure_ascii=False) + "\n"
