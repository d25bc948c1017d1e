"""The checked-in extract of OpenAI's schemas (tests/oaschema_extract.py) against the document it comes from."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import orjson
import pytest

from tests.oaschema import schemas, spec_path, validate
from tests.oaschema_extract import EXTRACT, REF_PREFIX, ROOTS, extract, render

ANSWER = {
    "id": "chatcmpl-1", "object": "chat.completion", "created": 1, "model": "m",
    "choices": [{"index": 0, "finish_reason": "stop", "logprobs": None,
                 "message": {"role": "assistant", "content": "hi", "refusal": None}}],
}  # fmt: skip
RESPONSES_ROOTS = ("CreateResponse", "Response", "ResponseStreamEvent", "ResponseError", "ResponseTextDeltaEvent")


def _spec() -> Path:
    spec = spec_path()
    if not spec.is_file():
        if os.environ.get("CI") == "true":
            pytest.fail(f"{spec} is missing; CI keeps the whole document beside the repository")
        pytest.skip(f"{spec} is not here (a fresh clone): the extract is used as it is")
    return spec


def _refs(node: Any) -> list[str]:
    if isinstance(node, dict):
        own = [node["$ref"]] if isinstance(node.get("$ref"), str) else []
        return own + [ref for value in node.values() for ref in _refs(value)]
    if isinstance(node, list):
        return [ref for item in node for ref in _refs(item)]
    return []


def test_the_extract_is_what_the_document_gives_now() -> None:
    expected = render(extract(_spec()))
    assert EXTRACT.read_text(encoding="utf-8") == expected, (
        "tests/data/openai-openapi-schemas.json is stale: run python -m tests.oaschema_extract"
    )


def test_the_extract_holds_the_roots_and_every_schema_they_reach() -> None:
    content = orjson.loads(EXTRACT.read_bytes())
    names = set(content["schemas"])
    assert set(ROOTS) | set(RESPONSES_ROOTS) <= set(content["roots"]) <= names
    refs = {ref for schema in content["schemas"].values() for ref in _refs(schema)}
    assert all(ref.startswith(REF_PREFIX) for ref in refs)
    assert {ref.removeprefix(REF_PREFIX) for ref in refs} <= names
    assert "MIT" in content["source"]
    assert len(content["spec_sha256"]) == 64


def test_the_extract_judges_an_answer_as_the_document_does() -> None:
    broken = {**ANSWER, "choices": [{"index": "0", "message": {"role": "robot"}}]}
    validate("CreateChatCompletionResponse", ANSWER, schemas_from=EXTRACT)
    with pytest.raises(AssertionError, match=r"not a valid CreateChatCompletionResponse:\n  at \$\.choices\[0\]"):
        validate("CreateChatCompletionResponse", broken, schemas_from=EXTRACT)
    spec = _spec()
    validate("CreateChatCompletionResponse", ANSWER, schemas_from=spec)
    with pytest.raises(AssertionError) as whole:
        validate("CreateChatCompletionResponse", broken, schemas_from=spec)
    with pytest.raises(AssertionError) as extracted:
        validate("CreateChatCompletionResponse", broken, schemas_from=EXTRACT)
    assert str(whole.value) == str(extracted.value)
    assert {name: schemas(spec)[name] for name in schemas(EXTRACT)} == schemas(EXTRACT)


def test_a_schema_outside_the_extract_is_named_with_how_to_add_it() -> None:
    with pytest.raises(KeyError, match=r"CreateImageRequest is not in .*openai-openapi-schemas.json.*add it to ROOTS"):
        validate("CreateImageRequest", {}, schemas_from=EXTRACT)
