"""Fuzzing every POST endpoint of a real gateway on loopback (the example policies in front of the stand-ins).

Whatever the body, the answer is a 4xx in the API's own error shape, or a 200 of the endpoint's own shape;
never a 5xx, never a traceback or a source path. Bodies come from hypothesis, derandomized (the same cases
on every run) and bounded (a few thousand cases, seconds on two cores). Each case is a valid body of the
endpoint with one or two fields (known ones, at every level) replaced by a value of the wrong type or a
hostile JSON literal (NaN, 1e400, 2**70, a lone surrogate escape, nesting 300 to 10^5 deep), or raw bytes
that are not a JSON object at all, sent with a random content type. The few heavy cases (megabyte strings,
10^4 messages) run once per endpoint beside the generated ones, and the inputs of issue #18 are spelled out
as regression cases. ``python -m bench.fuzz`` runs the same generator for longer.
"""

from __future__ import annotations

import itertools
import re
import threading
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import gateway
from gateway.routing.normalize import MAX_DEPTH

Path_ = tuple[str | int, ...]

ENDPOINTS = {
    "chat": "/v1/chat/completions",
    "completions": "/v1/completions",
    "embeddings": "/v1/embeddings",
    "messages": "/v1/messages",
    "explain": "/v1/route/explain",
}
CASES = {"chat": 900, "completions": 500, "embeddings": 400, "messages": 900, "explain": 600}
KEY = "demo-key"
WORKERS = 8
SOURCE = str(Path(gateway.__file__).parent)
LEAK = re.compile(r"Traceback \(most recent call last\)|File \"[^\"]+\.py\"|" + re.escape(SOURCE))
OPENAI_ERROR = {"message", "type", "param", "code"}
CONTENT_TYPES = (
    "application/json",
    "application/json; charset=latin-1",
    "text/plain",
    "application/x-www-form-urlencoded",
    "multipart/form-data; boundary=x",
    "",
)

# ---- valid bodies: a few templates per endpoint, a model and some optional fields -------------------

CHAT_MODELS = ("auto", "auto-fast", "qwen3-32b", "gpt-oss-120b", "gpt-4.1", "gpt-4.1-mini", "claude-sonnet-4")
TEXT = st.text(st.characters(exclude_categories=("Cs",)), max_size=12)
WEATHER = {
    "type": "function",
    "function": {"name": "get_weather", "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}},
}
CALL = {"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'}}
USER = {"role": "user", "content": "What is the capital of France?"}
CHAT_MESSAGES = (
    [USER],
    [{"role": "system", "content": "Be brief."}, USER],
    [{"role": "developer", "content": "Be brief."}, {"role": "user", "content": [{"type": "text", "text": "hi"}]}],
    [USER, {"role": "assistant", "content": "Paris."}, {"role": "user", "content": "And of Italy?"}],
    [
        USER,
        {"role": "assistant", "content": None, "tool_calls": [CALL]},
        {"role": "tool", "tool_call_id": "call_1", "content": "sunny"},
    ],
)
CHAT_OPTIONS = {
    "stream": True,
    "stream_options": {"include_usage": True},
    "max_tokens": 16,
    "max_completion_tokens": 16,
    "temperature": 0.5,
    "n": 1,
    "stop": ["END"],
    "tools": [WEATHER],
    "tool_choice": "auto",
    "response_format": {"type": "json_object"},
    "user": "u1",
}
PROMPTS = ("Say hi", ["Say hi", "Say bye"], [1, 2, 3], [[1, 2], [3]])
TEXT_OPTIONS = {"stream": True, "max_tokens": 16, "echo": True, "n": 1, "stop": "\n", "temperature": 0.0}
INPUTS = ("hello", ["hello", "world"], [1, 2, 3])
EMBEDDING_OPTIONS = {"encoding_format": "float", "user": "u1"}
TOOL_USE = {"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {"city": "Paris"}}
ANTHROPIC_MESSAGES = (
    [{"role": "user", "content": "What is the capital of France?"}],
    [{"role": "user", "content": [{"type": "text", "text": "hi"}, {"type": "text", "text": "there"}]}],
    [
        {"role": "user", "content": "Weather in Paris?"},
        {"role": "assistant", "content": [{"type": "text", "text": "Let me look."}, TOOL_USE]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_1", "content": "sunny"}]},
    ],
)
ANTHROPIC_OPTIONS = {
    "system": "Be brief.",
    "stream": True,
    "temperature": 0.5,
    "top_k": 5,
    "stop_sequences": ["END"],
    "tools": [{"name": "get_weather", "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}}}],
    "tool_choice": {"type": "auto"},
    "metadata": {"user_id": "u1"},
}


def bodies(
    models: tuple[str, ...], field: str, values: tuple[Any, ...], options: dict[str, Any], **fixed: Any
) -> st.SearchStrategy[dict[str, Any]]:
    """Valid bodies: a model, one of ``values`` as ``field``, and a few of ``options``."""
    extras = st.lists(st.sampled_from(sorted(options)), max_size=3, unique=True)
    return st.builds(
        lambda model, value, names: {"model": model, field: value, **fixed} | {n: options[n] for n in names},
        st.sampled_from(models),
        st.sampled_from(values),
        extras,
    )


IMAGE_URL = {"type": "image_url", "image_url": {"url": "https://example.com/a.png"}}
CHAT_IMAGES = ([{"role": "user", "content": [{"type": "text", "text": "What is this?"}, IMAGE_URL]}],)
PNG = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg=="
IMAGE = {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": PNG}}
ANTHROPIC_IMAGES = (
    [{"role": "user", "content": [{"type": "text", "text": "What is this?"}, IMAGE]}],
    [{"role": "user", "content": [{"type": "image", "source": {"type": "url", "url": "https://example.com/a.png"}}]}],
)
VISION_MODELS = ("gpt-4.1", "claude-sonnet-4")
CHAT = bodies(CHAT_MODELS, "messages", CHAT_MESSAGES, CHAT_OPTIONS) | bodies(
    VISION_MODELS, "messages", CHAT_IMAGES, CHAT_OPTIONS
)
COMPLETIONS = bodies(("auto", "qwen3-32b", "gpt-oss-120b"), "prompt", PROMPTS, TEXT_OPTIONS)
EMBEDDINGS = bodies(("qwen3-embedding-8b", "text-embedding-3-small"), "input", INPUTS, EMBEDDING_OPTIONS)
MESSAGES = bodies(
    ("auto", "qwen3-32b", "gpt-4.1", "claude-sonnet-4"),
    "messages",
    ANTHROPIC_MESSAGES,
    ANTHROPIC_OPTIONS,
    max_tokens=16,
) | bodies(VISION_MODELS, "messages", ANTHROPIC_IMAGES, ANTHROPIC_OPTIONS, max_tokens=16)


# ---- what replaces a field ----------------------------------------------------------------------


def _nest(levels: int, opener: bytes = b"[", closer: bytes = b"]", inner: bytes = b"") -> orjson.Fragment:
    return orjson.Fragment(opener * levels + inner + closer * levels)


HOSTILE = (
    orjson.Fragment(b"NaN"),
    orjson.Fragment(b"Infinity"),
    orjson.Fragment(b"-Infinity"),
    orjson.Fragment(b"1e400"),
    orjson.Fragment(b"-1e400"),
    orjson.Fragment(str(2**70).encode()),
    orjson.Fragment(str(-(2**64)).encode()),
    orjson.Fragment(str(2**64 - 1).encode()),
    orjson.Fragment(b'"\\ud800"'),
    orjson.Fragment(b'"x\\udc00y"'),
    orjson.Fragment(b'"\\u0000"'),
    orjson.Fragment(b'"a\x00b"'),
    orjson.Fragment(b'"\xff\xfe"'),
    orjson.Fragment(b'"\xed\xa0\x80"'),
    _nest(MAX_DEPTH - 8),
    _nest(MAX_DEPTH),
    _nest(300),
    _nest(300, b'{"a":', b"}", b"1"),
    _nest(1_000),
    _nest(10**5),
    orjson.Fragment(b"[" * 2_000),  # unclosed
)
SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**64 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | TEXT
)
WRONG = st.recursive(
    SCALARS,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(TEXT, inner, max_size=3),
    max_leaves=6,
)
VALUES = WRONG | st.sampled_from(HOSTILE) | st.sampled_from([[], {}, "", 0, -1, [{}], [[]], [None], {"type": None}])

_CHAT_MESSAGE = ("role", "content", "name", "tool_calls", "tool_call_id", "function_call", "refusal")
_PART = ("type", "text", "image_url", "input_audio", "file")
_SAMPLING = ("temperature", "top_p", "n", "stop", "seed", "presence_penalty", "frequency_penalty", "logit_bias", "user")
CHAT_PATHS: tuple[Path_, ...] = (
    ("model",),
    ("messages",),
    ("messages", 0),
    *(("messages", 0, name) for name in _CHAT_MESSAGE),
    ("messages", 0, "content", 0),
    *(("messages", 0, "content", 0, name) for name in _PART),
    ("messages", 0, "content", 0, "image_url", "url"),
    ("messages", 0, "tool_calls", 0),
    ("messages", 0, "tool_calls", 0, "function"),
    ("messages", 0, "tool_calls", 0, "function", "arguments"),
    ("messages", 0, "tool_calls", 0, "function", "name"),
    ("messages", -1),
    ("messages", -1, "role"),
    ("messages", -1, "content"),
    ("tools",),
    ("tools", 0),
    ("tools", 0, "type"),
    ("tools", 0, "function"),
    ("tools", 0, "function", "name"),
    ("tools", 0, "function", "parameters"),
    ("functions",),
    ("tool_choice",),
    ("tool_choice", "function"),
    ("parallel_tool_calls",),
    ("response_format",),
    ("response_format", "type"),
    ("response_format", "json_schema"),
    ("stream",),
    ("stream_options",),
    ("stream_options", "include_usage"),
    ("max_tokens",),
    ("max_completion_tokens",),
    *((name,) for name in _SAMPLING),
    ("logprobs",),
    ("top_logprobs",),
    ("metadata",),
    ("unknown_field",),
)
COMPLETIONS_PATHS: tuple[Path_, ...] = (
    ("model",),
    ("prompt",),
    ("prompt", 0),
    ("prompt", 0, 0),
    ("suffix",),
    ("echo",),
    ("best_of",),
    ("stream",),
    ("stream_options",),
    ("stream_options", "include_usage"),
    ("max_tokens",),
    *((name,) for name in _SAMPLING),
    ("logprobs",),
    ("unknown_field",),
)
EMBEDDINGS_PATHS: tuple[Path_, ...] = (
    ("model",),
    ("input",),
    ("input", 0),
    ("input", 0, 0),
    ("encoding_format",),
    ("dimensions",),
    ("user",),
    ("stream",),
    ("unknown_field",),
)
_BLOCK = ("type", "text", "source", "id", "name", "input", "tool_use_id", "content", "is_error", "cache_control")
MESSAGES_PATHS: tuple[Path_, ...] = (
    ("model",),
    ("max_tokens",),
    ("messages",),
    ("messages", 0),
    ("messages", 0, "role"),
    ("messages", 0, "content"),
    ("messages", 0, "content", 0),
    *(("messages", 0, "content", 0, name) for name in _BLOCK),
    ("messages", 0, "content", 0, "source", "type"),
    ("messages", 0, "content", 0, "source", "media_type"),
    ("messages", 0, "content", 0, "source", "data"),
    ("messages", 0, "content", 0, "source", "url"),
    ("messages", 0, "content", 0, "content", 0),
    ("messages", 0, "content", 0, "content", 0, "text"),
    ("messages", -1, "content", 0, "input"),
    ("messages", -1, "role"),
    ("system",),
    ("system", 0),
    ("system", 0, "type"),
    ("system", 0, "text"),
    ("tools",),
    ("tools", 0),
    ("tools", 0, "type"),
    ("tools", 0, "name"),
    ("tools", 0, "description"),
    ("tools", 0, "input_schema"),
    ("tool_choice",),
    ("tool_choice", "type"),
    ("tool_choice", "name"),
    ("tool_choice", "disable_parallel_tool_use"),
    ("stream",),
    ("stop_sequences",),
    ("stop_sequences", 0),
    ("temperature",),
    ("top_p",),
    ("top_k",),
    ("metadata",),
    ("metadata", "user_id"),
    ("thinking",),
    ("unknown_field",),
)


@dataclass(frozen=True)
class Surface:
    """One endpoint as the fuzzer sees it: its valid bodies, its field paths, the shapes of its answers."""

    path: str
    bodies: st.SearchStrategy[dict[str, Any]]
    fields: tuple[Path_, ...]
    anthropic: bool
    answer: Callable[[Any], bool]  # a 200 JSON answer is of this endpoint's shape


SURFACES = {
    "chat": Surface(ENDPOINTS["chat"], CHAT, CHAT_PATHS, False, lambda a: a.get("object") == "chat.completion"),
    "completions": Surface(
        ENDPOINTS["completions"],
        COMPLETIONS,
        COMPLETIONS_PATHS,
        False,
        lambda a: a.get("object") == "text_completion",
    ),
    "embeddings": Surface(
        ENDPOINTS["embeddings"], EMBEDDINGS, EMBEDDINGS_PATHS, False, lambda a: a.get("object") == "list"
    ),
    "messages": Surface(ENDPOINTS["messages"], MESSAGES, MESSAGES_PATHS, True, lambda a: a.get("type") == "message"),
    "explain": Surface(ENDPOINTS["explain"], CHAT, CHAT_PATHS, False, lambda a: "decision" in a),
}


def put(body: Any, path: Path_, value: Any) -> None:
    """Set ``value`` at ``path``, making (or replacing) the containers on the way as the path needs them."""
    node = body
    for key, after in itertools.pairwise(path):
        child = _child(node, key)
        wanted = list if isinstance(after, int) else dict
        if not isinstance(child, wanted):
            child = [{}] if wanted is list else {}
            _set(node, key, child)
        node = child
    _set(node, path[-1], value)


def fresh(value: Any) -> Any:
    """A copy of the lists and objects in ``value`` (strategies hand out shared constants; a body that held
    the same list twice could be made to contain itself)."""
    if isinstance(value, list):
        return [fresh(item) for item in value]
    if isinstance(value, dict):
        return {key: fresh(item) for key, item in value.items()}
    return value


def _child(node: Any, key: str | int) -> Any:
    if isinstance(key, int):
        return node[key] if node else None
    return node.get(key)


def _set(node: Any, key: str | int, value: Any) -> None:
    if isinstance(key, int) and not node:
        node.append(value)
    else:
        node[key] = value


@dataclass(frozen=True)
class Case:
    """One request: its bytes and content type, and whether the body is a valid one left untouched."""

    raw: bytes
    content_type: str
    valid: bool


@st.composite
def mutated(draw: st.DrawFn, surface: Surface) -> Case:
    body = orjson.loads(orjson.dumps(draw(surface.bodies)))  # a copy: the strategies share their constants
    changes = draw(st.lists(st.tuples(st.sampled_from(surface.fields), VALUES), max_size=2))
    for path, value in changes:
        put(body, path, fresh(value))
    return Case(orjson.dumps(body), draw(st.sampled_from(CONTENT_TYPES)), valid=not changes)


NOT_OBJECTS = st.sampled_from(
    [
        *(
            b"",
            b" ",
            b"null",
            b"[]",
            b"[{}]",
            b"1",
            b'"x"',
            b"true",
            b"{",
            b"}",
            b"{}",
            b'{"model":}',
            b"\x00",
            b"\xff",
        ),
        *(b"[" * 10**5, b"{" * 10**5, b"[" * 10**5 + b"]" * 10**5, b"NaN", b"Infinity", b"1e400", b'"\\ud800"'),
    ]
)


@st.composite
def garbled(draw: st.DrawFn, surface: Surface) -> Case:
    """Raw bytes: not a JSON object, or a valid body cut short or with a stray byte in it."""
    if draw(st.booleans()):
        raw = draw(NOT_OBJECTS | st.binary(max_size=64))
    else:
        raw = orjson.dumps(draw(surface.bodies))
        at = draw(st.integers(0, len(raw)))
        stray = draw(st.sampled_from([b"", b"\x00", b"\xff", b"\xed\xa0\x80", b"\\ud800", b"NaN", b",", b"\n"]))
        raw = raw[:at] + stray + (raw[at:] if stray else b"")
    return Case(raw, draw(st.sampled_from(CONTENT_TYPES)), valid=False)


def cases(surface: Surface) -> st.SearchStrategy[Case]:
    return st.one_of(mutated(surface), mutated(surface), mutated(surface), garbled(surface))


# ---- sending and judging ------------------------------------------------------------------------


def send(client: httpx.Client, surface: Surface, case: Case) -> httpx.Response:
    headers = {"authorization": f"Bearer {KEY}"}
    if case.content_type:
        headers["content-type"] = case.content_type
    return client.post(surface.path, content=case.raw, headers=headers)


def verdict(surface: Surface, case: Case, response: httpx.Response) -> str:
    """What the answer was (a status and, for a stream, ``-stream``); raises AssertionError if it is wrong."""
    status, text = response.status_code, response.text
    where = f"{surface.path} {response.status_code} for {case.raw[:300]!r}: {text[:500]}"
    assert status < 500, where
    assert not LEAK.search(text), where
    if status == 200 and response.headers["content-type"].startswith("text/event-stream"):
        assert text.startswith(("data:", "event:")), where
        return "200-stream"
    body = response.json()
    if status == 200:
        assert surface.answer(body), where
    else:
        assert 400 <= status < 500, where
        assert _error_shaped(surface, body), where
    assert status == 200 or not case.valid, where
    return str(status)


def _error_shaped(surface: Surface, body: Any) -> bool:
    if surface.anthropic:
        error = body.get("error")
        return body.get("type") == "error" and isinstance(error, dict) and {"type", "message"} <= set(error)
    error = body.get("error") if set(body) == {"error"} else None
    return isinstance(error, dict) and set(error) == OPENAI_ERROR and isinstance(error["message"], str)


def fresh_client(base_url: str) -> httpx.Client:
    """A client that opens a new connection per request, for one thread at a time."""
    # A new connection per request, so that a case the gateway answers by closing the connection cannot touch the
    # next one. (Kept-alive connections once waited out a 40 ms delayed ACK; since the stand-in servers' listening
    # sockets ask for TCP_NODELAY, a kept-alive request takes ~1.0 ms on loopback and a fresh one ~1.4 ms.)
    return httpx.Client(base_url=base_url, timeout=60, limits=httpx.Limits(max_keepalive_connections=0))


class ThreadClients:
    """One :func:`fresh_client` per sending thread: ``clients()`` is the calling thread's own.

    Not one client shared by the threads. httpcore 1.0.9's pool, allowed no kept-alive connections, can hand a
    connection that has just gone idle to another thread's request and, in the same moment, close it as a surplus
    idle one; that thread then reads a closed socket (``httpx.ReadError: [Errno 9] Bad file descriptor``: once in
    CI, and 4 of 30,000 requests from 8 threads sharing a client in a loop, none with a client per thread).
    """

    def __init__(self, base_url: str) -> None:
        self._base_url = base_url
        self._local = threading.local()
        self._lock = threading.Lock()
        self._made: list[httpx.Client] = []

    def __call__(self) -> httpx.Client:
        client: httpx.Client | None = getattr(self._local, "client", None)
        if client is None:
            client = self._local.client = fresh_client(self._base_url)
            with self._lock:
                self._made.append(client)
        return client

    def close(self) -> None:
        with self._lock:
            made, self._made = self._made, []
        for client in made:
            client.close()


@pytest.fixture(scope="module")
def client(example_gateway: str, _upstreams: Any) -> Iterator[httpx.Client]:
    """For the tests that send from one thread."""
    with fresh_client(example_gateway) as client:
        yield client
    _upstreams.reset()  # the stand-ins record every call


@pytest.fixture(scope="module")
def clients(example_gateway: str, _upstreams: Any) -> Iterator[ThreadClients]:
    """For the tests that send from a few threads at once."""
    clients = ThreadClients(example_gateway)
    yield clients
    clients.close()
    _upstreams.reset()


FUZZ = settings(
    derandomize=True,
    database=None,
    deadline=None,
    print_blob=False,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.large_base_example],
)


def judge(clients: ThreadClients, surface: Surface, case: Case) -> str:
    """The verdict on one case, sent by this thread's client, or ``FAIL`` and why (raised in a worker thread, so
    kept as text)."""
    try:
        return verdict(surface, case, send(clients(), surface, case))
    except AssertionError as exc:
        return f"FAIL {exc}"


@pytest.mark.parametrize("name", list(SURFACES))
def test_generated_bodies_get_a_4xx_in_the_api_shape_or_a_200(name: str, clients: ThreadClients) -> None:
    """Hypothesis draws the cases, then a few threads send them: most of a case's time is waiting on loopback.
    (Drawing and sending at once trips hypothesis's check on the ``random`` module, which the gateway uses.)
    No shrinking, then: a failure names the bytes that were sent, which is the whole reproduction."""
    surface = SURFACES[name]
    drawn = draw_cases(surface, CASES[name])
    with ThreadPoolExecutor(WORKERS) as pool:
        verdicts = list(pool.map(lambda case: judge(clients, surface, case), drawn))
    failures = [verdict for verdict in verdicts if verdict.startswith("FAIL")]
    seen = Counter("FAIL" if verdict.startswith("FAIL") else verdict for verdict in verdicts)
    print(f"\n{surface.path}: {len(drawn)} cases, statuses {dict(sorted(seen.items()))}")
    assert not failures, f"{len(failures)} failures, the first five:\n" + "\n\n".join(failures[:5])
    assert seen["200"] + seen["200-stream"] > 0 and seen["400"] > 0, seen


def test_each_sending_thread_has_a_client_of_its_own_kept_until_all_are_closed() -> None:
    clients = ThreadClients("http://127.0.0.1:9")
    together = threading.Barrier(4)

    def twice(wait: bool) -> tuple[int, httpx.Client, httpx.Client]:
        if wait:
            together.wait(timeout=10)  # four tasks running at once: four threads
        return threading.get_ident(), clients(), clients()

    with ThreadPoolExecutor(4) as pool:
        first = list(pool.map(twice, [True] * 4))
        later = list(pool.map(twice, [False] * 40))
    own = {ident: client for ident, client, _ in first}
    assert len(own) == len({id(client) for client in own.values()}) == 4
    assert all(client is again for _, client, again in first + later)
    assert all(own[ident] is client for ident, client, _ in later)  # the same thread, the same client
    assert not any(client.is_closed for client in own.values())
    clients.close()
    assert all(client.is_closed for client in own.values())


def draw_cases(surface: Surface, count: int) -> list[Case]:
    """``count`` cases, the same ones on every run (``derandomize``)."""
    drawn: list[Case] = []

    @settings(FUZZ, max_examples=count)
    @given(case=cases(surface))
    def draw(case: Case) -> None:
        drawn.append(case)

    draw()
    return drawn


# ---- the inputs of issue #18, the depth limit, the heavy cases ----------------------------------

VALID = {
    "chat": {"model": "auto", "messages": [USER]},
    "completions": {"model": "auto", "prompt": "Say hi"},
    "embeddings": {"model": "qwen3-embedding-8b", "input": "hello"},
    "messages": {"model": "auto", "max_tokens": 16, "messages": [USER]},
    "explain": {"model": "auto", "messages": [USER]},
}


def with_raw(body: dict[str, Any], name: str, raw: bytes) -> bytes:
    """``body`` with field ``name`` set to the raw JSON ``raw`` (bytes orjson itself would refuse to write)."""
    return orjson.dumps(body | {name: orjson.Fragment(raw)})


def nested(levels: int) -> bytes:
    return b"[" * levels + b"]" * levels


def answer(client: httpx.Client, name: str, raw: bytes) -> httpx.Response:
    """The gateway's answer to ``raw``, checked to be a 4xx in the endpoint's shape or a 200 of its own."""
    surface, case = SURFACES[name], Case(raw, "application/json", valid=False)
    response = send(client, surface, case)
    assert not verdict(surface, case, response).startswith("FAIL")
    return response


def error_message(name: str, response: httpx.Response) -> str:
    error: dict[str, Any] = response.json()["error"]
    assert error["type"] == "invalid_request_error"
    return str(error["message"])


ISSUE_18 = [
    *((name, "nested 300 deep", with_raw(VALID[name], "extra", nested(300))) for name in SURFACES),
    *((name, "nested 1,000 deep", with_raw(VALID[name], "extra", nested(1_000))) for name in SURFACES),
    (
        "messages",
        "input_schema nested 300 deep",
        with_raw(
            VALID["messages"], "tools", b'[{"name": "t", "input_schema": ' + b'{"a":' * 300 + b"1" + b"}" * 301 + b"]"
        ),
    ),
]


@pytest.mark.parametrize(("name", "what", "raw"), ISSUE_18, ids=[f"{n}-{w}" for n, w, _ in ISSUE_18])
def test_a_body_nested_past_the_limit_is_a_400_naming_the_limit(
    name: str, what: str, raw: bytes, client: httpx.Client
) -> None:
    """Issue #18: 500s on chat, completions and embeddings (orjson read the body but could not write it again)."""
    response = answer(client, name, raw)
    assert response.status_code == 400
    assert f"more than {MAX_DEPTH} levels deep" in error_message(name, response)


@pytest.mark.parametrize("name", ["chat", "explain"])
@pytest.mark.parametrize("role", [{}, [], ["user"], {"role": "user"}])
def test_a_role_that_is_not_a_string_is_a_400_naming_it(name: str, role: Any, client: httpx.Client) -> None:
    """Issue #18: ``"role": {}`` or ``[]`` was a TypeError (unhashable) in normalize, a 500."""
    response = answer(client, name, orjson.dumps(VALID[name] | {"messages": [{"role": role, "content": "hi"}]}))
    assert response.status_code == 400
    assert response.json()["error"]["param"] == "messages[0].role"


def test_the_depth_limit_is_exact(client: httpx.Client) -> None:
    """The body itself is level 1: MAX_DEPTH levels pass, one more does not."""
    deepest = with_raw(VALID["explain"], "extra", nested(MAX_DEPTH - 1))
    assert answer(client, "explain", deepest).status_code == 200
    assert answer(client, "explain", with_raw(VALID["explain"], "extra", nested(MAX_DEPTH))).status_code == 400


def test_an_image_media_type_that_is_not_a_string_is_a_400(client: httpx.Client) -> None:
    """Found by the fuzz: a dict media_type was a TypeError (unhashable) in the Anthropic translation, a 500."""
    image = {"type": "image", "source": {"type": "base64", "media_type": {}, "data": PNG}}
    raw = orjson.dumps(VALID["messages"] | {"messages": [{"role": "user", "content": [image]}]})
    response = answer(client, "messages", raw)
    assert response.status_code == 400
    assert "media_type" in response.json()["error"]["message"]


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("tools", [{"type": "function", "function": {"name": "f", "parameters": 1.5}}]),
        ("tools", [{"type": "function", "function": 5}]),
        ("functions", [{"name": 5}]),
        ("tool_choice", 5),
        ("messages", [USER, {"role": "assistant", "content": None, "tool_calls": 5}, USER]),
        ("messages", [USER, {"role": "assistant", "content": None, "tool_calls": [{"function": {"name": 1}}]}, USER]),
    ],
)
def test_malformed_tools_are_a_400_before_any_upstream(field: str, value: Any, client: httpx.Client) -> None:
    """Found by the fuzz: non-object parameters made the OpenAI stand-in fail (a 503 after retries), and
    ``"tool_calls": 5`` sent to the litellm deployment was taken for an unreachable upstream (a 503)."""
    for model in ("gpt-4.1", "claude-sonnet-4"):
        response = answer(client, "chat", orjson.dumps({"model": model, "messages": [USER], field: value}))
        assert response.status_code == 400
        assert response.json()["error"]["code"] == "invalid_request"


def test_an_unknown_content_part_type_for_litellm_is_a_400(client: httpx.Client) -> None:
    part = {"type": "input_text", "text": "hi"}
    raw = orjson.dumps({"model": "claude-sonnet-4", "messages": [{"role": "user", "content": [part]}]})
    response = send(client, SURFACES["chat"], Case(raw, "application/json", valid=False))
    assert response.status_code == 400


MB = 1 << 20


def heavy(name: str, what: str) -> bytes:
    """The handful of big bodies: a 3 MB string, a 5 MB body (over the 4 MiB limit), 10^4 messages."""
    body = VALID[name]
    if what == "10^4 messages":
        turns = [{"role": role, "content": "hi"} for _ in range(5_000) for role in ("user", "assistant")]
        return orjson.dumps(body | {"messages": [*turns, USER]})
    text = "x" * (3 * MB if what == "3 MB string" else 5 * MB)
    if name == "completions":
        return orjson.dumps(body | {"prompt": text})
    if name == "embeddings":
        return orjson.dumps(body | {"input": text})
    return orjson.dumps(body | {"messages": [{"role": "user", "content": text}]})


HEAVY = [(name, what) for name in SURFACES for what in ("3 MB string", "5 MB body")] + [
    (name, "10^4 messages") for name in ("chat", "messages", "explain")
]


@pytest.mark.parametrize(("name", "what"), HEAVY, ids=[f"{n}-{w}" for n, w in HEAVY])
def test_heavy_bodies_get_an_answer_in_the_api_shape(name: str, what: str, client: httpx.Client) -> None:
    response = answer(client, name, heavy(name, what))
    if what == "5 MB body":
        assert response.status_code == 413
