"""``GET /openapi.json`` (gateway/http/openapi.py), and schemathesis against it on a real gateway on loopback.

The document must be valid OpenAPI 3.1 and list exactly the routes the app serves. Then schemathesis draws
requests for every operation from the document itself, schema-valid ones and schema-breaking ones
(positive and negative modes), seeded and derandomized (the same cases on every run), and sends them with a
tenant's key to the example gateway in front of the stand-ins. Each answer must be no 5xx, of a status and
content type the document declares, of the schema it declares (errors in OpenAI's or Anthropic's shape),
and free of tracebacks and source paths. ``python -m bench.fuzz --schemathesis --cases N`` runs the same for longer.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, given, seed, settings
from hypothesis import strategies as st
from hypothesis.errors import Unsatisfiable
from openapi_spec_validator import validate
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.core.failures import FailureGroup
from schemathesis.core.transport import Response
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)
from starlette.routing import Route

from gateway.http.app import create_app
from gateway.http.openapi import document
from gateway.settings import Settings
from tests.http.test_fuzz import KEY, LEAK

CASES_PER_OPERATION = 40  # 17 operations: about 600 cases, half of them schema-breaking
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]
WORKERS = 8
DRAW = settings(
    database=None,
    deadline=None,
    print_blob=False,
    suppress_health_check=list(HealthCheck),
)


def test_the_document_is_valid_openapi_3_1() -> None:
    validate(document())
    assert document()["openapi"] == "3.1.0"


def _served(app: Any) -> set[tuple[str, str]]:
    routes = [route for route in app.router.routes if isinstance(route, Route)]
    return {
        (method.lower(), route.path.replace(":path}", "}"))
        for route in routes
        for method in route.methods or ()
        if method != "HEAD"
    }


def test_the_document_lists_exactly_the_routes_the_app_serves() -> None:
    app = create_app(Settings())
    described = {
        (method, path) for path, item in document()["paths"].items() for method in item if method != "parameters"
    }
    assert described == _served(app)


def test_the_document_is_served_without_a_key_and_names_nothing_of_the_policy(example_gateway: str) -> None:
    response = httpx.get(f"{example_gateway}/openapi.json", timeout=30)
    assert response.status_code == 200
    assert response.json() == document()
    assert KEY not in response.text and "vllm" not in response.text  # no key, no deployment


# ---- schemathesis ---------------------------------------------------------------------------------


def operations() -> list[Any]:
    schema = schemathesis.openapi.from_dict(document())
    return [result.ok() for result in schema.get_all_operations()]


# half the schema-valid bodies name a model the example policies serve, so that some get past routing
KNOWN_MODEL = {"/v1/embeddings": "qwen3-embedding-8b"}


def _known_model(case: Any, named: bool) -> Any:
    if named and isinstance(case.body, dict):
        case.body["model"] = KNOWN_MODEL.get(case.operation.path, "auto")
    return case


def draw(operation: Any, mode: GenerationMode, count: int, batch_seed: int = 0, by_seed: bool = False) -> list[Any]:
    """``count`` cases of ``operation``, the same for the same ``batch_seed`` (seeded, no example database).

    ``by_seed``: draw by the seed even under a derandomized profile (CI's), so that batches differ."""
    drawn: list[Any] = []
    named = st.booleans() if mode is GenerationMode.POSITIVE else st.just(False)
    cases = st.builds(_known_model, operation.as_strategy(generation_mode=mode), named)
    chosen = settings(DRAW, max_examples=count, derandomize=False) if by_seed else settings(DRAW, max_examples=count)

    @seed(batch_seed)
    @chosen
    @given(case=cases)
    def collect(case: Any) -> None:
        drawn.append(case)

    try:
        collect()
    except Unsatisfiable:  # nothing to break: an operation with no body and no parameters has no negative cases
        assert mode is GenerationMode.NEGATIVE and not drawn, operation.label
    return drawn


def run_case(base_url: str, case: Any) -> str:
    """The status of one case's answer, or ``FAIL`` and why (a check that failed, a leaked traceback)."""
    with requests.Session() as session:  # a fresh connection per case: no delayed ACK on loopback
        try:
            response = case.call(base_url=base_url, session=session, headers={"authorization": f"Bearer {KEY}"})
        except requests.RequestException as exc:
            return f"FAIL {case.operation.label}: {exc!r}"
    try:
        case.validate_response(response, checks=CHECKS)
        assert not LEAK.search(response.text), f"a traceback or path: {response.text[:300]}"
    except AssertionError as exc:  # schemathesis raises a subclass that names every failed check
        return f"FAIL {case.operation.label}: {str(exc)[:1500]}\n    body: {str(case.body)[:300]}"
    return str(response.status_code)


def run(base_url: str, cases: list[Any], workers: int = WORKERS) -> Counter[str]:
    with ThreadPoolExecutor(workers) as pool:
        return Counter(pool.map(lambda case: run_case(base_url, case), cases))


def summary(seen: Counter[str]) -> tuple[dict[str, int], list[str]]:
    failures = sorted(verdict for verdict in seen if verdict.startswith("FAIL"))
    return {k: v for k, v in sorted(seen.items()) if not k.startswith("FAIL")}, failures


@pytest.fixture(scope="module")
def gateway_url(example_gateway: str, _upstreams: Any) -> Iterator[str]:
    yield example_gateway
    _upstreams.reset()  # the stand-ins record every call


MODES = [GenerationMode.POSITIVE, GenerationMode.NEGATIVE]


@pytest.mark.parametrize("operation", operations(), ids=lambda op: op.label)
def test_schemathesis_finds_no_server_error_and_no_answer_off_the_document(operation: Any, gateway_url: str) -> None:
    cases = [case for mode in MODES for case in draw(operation, mode, CASES_PER_OPERATION // 2)]
    seen = run(gateway_url, cases)
    statuses, failures = summary(seen)
    print(f"\n{operation.label}: {len(cases)} cases, statuses {statuses}")
    assert not failures, f"{len(failures)} failures, the first three:\n" + "\n\n".join(failures[:3])


# ---- streamed answers, event by event --------------------------------------------------------------

STREAMED = {  # a streamed request per streaming operation; the example gateway serves each
    "/v1/chat/completions": {"model": "auto", "stream": True, "messages": [{"role": "user", "content": "hi"}]},
    "/v1/completions": {"model": "auto", "stream": True, "prompt": "hi"},
    "/v1/messages": {
        "model": "auto",
        "stream": True,
        "max_tokens": 16,
        "messages": [{"role": "user", "content": "hi"}],
    },
    "/v1/responses": {"model": "auto", "stream": True, "input": "hi"},
}


def _operation_at(path: str) -> Any:
    return next(op for op in operations() if op.path == path and op.method.upper() == "POST")


@pytest.mark.parametrize("path", sorted(STREAMED))
def test_every_event_of_a_streamed_answer_matches_the_document(path: str, gateway_url: str) -> None:
    case = _operation_at(path).Case(body=STREAMED[path], media_type="application/json")
    with requests.Session() as session:
        response = case.call(base_url=gateway_url, session=session, headers={"authorization": f"Bearer {KEY}"})
    assert response.status_code == 200, response.text[:300]
    assert response.headers["content-type"][0].startswith("text/event-stream")
    assert response.text.count("data:") >= 2
    case.validate_response(response, checks=CHECKS)


def _streamed_answer(path: str, events: str) -> Response:
    """A 200 ``text/event-stream`` answer to ``STREAMED[path]`` holding ``events``, as schemathesis reads one."""
    request = requests.Request("POST", f"http://127.0.0.1{path}", json=STREAMED[path]).prepare()
    headers = {"content-type": ["text/event-stream"]}
    return Response(
        status_code=200, headers=headers, content=events.encode(), request=request, elapsed=0.0, verify=True
    )


@pytest.mark.parametrize(
    ("path", "right", "wrong"),
    [
        (
            "/v1/chat/completions",
            'data: {"id": "x", "object": "chat.completion.chunk", "choices": []}\n\ndata: [DONE]\n\n',
            'data: {"id": "x", "object": "text_completion", "choices": []}\n\ndata: [DONE]\n\n',
        ),
        (
            "/v1/completions",
            'data: {"id": "x", "object": "text_completion", "choices": []}\n\ndata: [DONE]\n\n',
            "data: not json\n\ndata: [DONE]\n\n",
        ),
        (
            "/v1/messages",
            'event: message_start\ndata: {"type": "message_start", "message": {}}\n\n',
            'event: message_start\ndata: {"message": {}}\n\n',
        ),
        (
            "/v1/responses",
            'event: response.created\ndata: {"type": "response.created", "response": {}}\n\n',
            "event: response.created\ndata: [DONE]\n\n",
        ),
    ],
)
def test_a_wrong_event_fails_the_event_check(path: str, right: str, wrong: str) -> None:
    """The control for the test above: the per-event schemas refuse a wrong chunk, non-JSON data, a missing type,
    and pass the same stream with that one event right (so what fails is the event, not how the answer was built)."""
    case = _operation_at(path).Case(body=STREAMED[path], media_type="application/json")
    case.validate_response(_streamed_answer(path, right), checks=[response_schema_conformance])
    with pytest.raises(FailureGroup) as failed:
        case.validate_response(_streamed_answer(path, wrong), checks=[response_schema_conformance])
    kinds = {type(failure).__name__ for failure in failed.value.exceptions}
    assert kinds and kinds <= {"JsonSchemaError", "MalformedJson"}, kinds  # about the events, never a header
