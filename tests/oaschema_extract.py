"""Write the checked-in extract of OpenAI's OpenAPI schemas: ``python -m tests.oaschema_extract``.

The tests validate against ``#/components/schemas/<name>`` of OpenAI's official document
(``tests/oaschema.py``). The whole document (~3 MB, ``../shared/openai-openapi/openapi.yaml``) is not in
this repository, so a fresh clone validates against ``tests/data/openai-openapi-schemas.json``: the
closure of the component schemas reachable from ``ROOTS`` (and the names ``ROOT_PATTERNS`` match),
copied unmodified. Add a schema a test needs to ``ROOTS`` and run this module again; a test
(tests/test_oaschema.py) fails while the extract differs from what the document gives.

Source: github.com/openai/openai-openapi (MIT licence); see tests/data/README.md.
"""

from __future__ import annotations

import hashlib
import json
import re
import sys
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import yaml

# Every schema a test validates against, and the Responses API's (for its endpoint's tests).
ROOTS = (
    "CreateChatCompletionRequest",
    "CreateChatCompletionResponse",
    "CreateChatCompletionStreamResponse",
    "CreateCompletionRequest",
    "CreateCompletionResponse",
    "CreateEmbeddingRequest",
    "CreateEmbeddingResponse",
    "ListModelsResponse",
    "Model",
    "ErrorResponse",
    "Error",
    "CreateResponse",
    "Response",
    "ResponseStreamEvent",
    "ResponseError",
    "ResponseErrorCode",
    "ResponseItemList",
    "ResponseUsage",
)
ROOT_PATTERNS = (r"Response\w*Event",)  # every Response*Event (fullmatch)
EXTRACT = Path(__file__).resolve().parent / "data" / "openai-openapi-schemas.json"
REF_PREFIX = "#/components/schemas/"


def roots(schemas: dict[str, Any]) -> list[str]:
    """ROOTS plus every schema name one of ROOT_PATTERNS matches whole, in the document's order."""
    missing = [name for name in ROOTS if name not in schemas]
    if missing:
        raise KeyError(f"ROOTS names schemas the document does not have: {', '.join(missing)}")
    matched = [name for name in schemas if any(re.fullmatch(p, name) for p in ROOT_PATTERNS)]
    return list(dict.fromkeys([*ROOTS, *matched]))


def closure(schemas: dict[str, Any], names: Iterable[str]) -> dict[str, Any]:
    """The named schemas and every schema they reach through ``$ref``, sorted by name."""
    seen: set[str] = set()
    pending = list(names)
    while pending:
        name = pending.pop()
        if name in seen:
            continue
        seen.add(name)
        pending.extend(ref for ref in _refs(schemas[name]) if ref not in seen)
    return {name: schemas[name] for name in sorted(seen)}


def _refs(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        ref = node.get("$ref")
        if isinstance(ref, str) and ref.startswith(REF_PREFIX):
            yield ref.removeprefix(REF_PREFIX)
        for value in node.values():
            yield from _refs(value)
    elif isinstance(node, list):
        for item in node:
            yield from _refs(item)


def extract(spec: Path) -> dict[str, Any]:
    """What the extract file holds for the document at ``spec``: its digest, the roots, the schemas."""
    raw = spec.read_bytes()
    schemas = yaml.load(raw, Loader=yaml.CSafeLoader)["components"]["schemas"]
    names = roots(schemas)
    return {
        "source": "github.com/openai/openai-openapi openapi.yaml (MIT licence); see tests/data/README.md",
        "spec_sha256": hashlib.sha256(raw).hexdigest(),
        "roots": names,
        "schemas": closure(schemas, names),
    }


def render(content: dict[str, Any]) -> str:
    """The file's text: stable (sorted keys, one indent), so a regenerated extract diffs cleanly."""
    return json.dumps(content, indent=1, sort_keys=True, ensure_ascii=False) + "\n"


def main(argv: list[str]) -> int:
    from tests.oaschema import spec_path

    spec = Path(argv[0]) if argv else spec_path()
    if not spec.is_file():
        print(f"error: {spec} does not exist (set OPENAI_OPENAPI_YAML or pass the path)", file=sys.stderr)
        return 2
    content = extract(spec)
    EXTRACT.write_text(render(content), encoding="utf-8")
    print(f"wrote {EXTRACT}: {len(content['schemas'])} schemas from {len(content['roots'])} roots of {spec}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
