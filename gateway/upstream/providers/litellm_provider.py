"""Adapter for every deployment that does not speak OpenAI's wire format, through litellm.

litellm translates an OpenAI-format body into Anthropic, Gemini, Bedrock... calls. This
module is the only place that imports it, and it does so lazily (``import litellm`` costs
about 3 s and 200 MB): the first :class:`LiteLLMProvider` pays for it.

Before the import, litellm is told to stay offline (it would fetch its price map, Anthropic
beta-header table and Hugging Face tokenizers from the internet) and not to load a ``.env``
file; after it, its debug banners and global callbacks are turned off. Each call passes only
OpenAI request fields (litellm reads dozens of keyword arguments of its own, e.g. ``base_url``,
``mock_response`` or logging-callback credentials, which a client must not be able to set),
and litellm never retries: retry and fallback belong to the gateway.

Answers are reduced to the fields of OpenAI's schema; litellm exceptions become
:mod:`gateway.errors` here and nowhere else.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import re
import traceback
from collections.abc import AsyncIterator, Callable, Collection, Iterator, Mapping
from typing import Any, Final
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from gateway.errors import (
    UpstreamBadResponse,
    UpstreamError,
    UpstreamRejected,
    UpstreamTimeout,
    UpstreamUnavailable,
)
from gateway.upstream.providers.base import Endpoint, Json, Target
from gateway.upstream.providers.upstream_errors import redact, status_error

OFFLINE_ENV: Final = {
    "LITELLM_MODE": "PRODUCTION",  # "DEV" (the default) loads a .env file found above litellm's install dir
    "LITELLM_LOCAL_MODEL_COST_MAP": "True",
    "LITELLM_LOCAL_ANTHROPIC_BETA_HEADERS": "True",
    "LITELLM_OFFLINE_MODE": "true",
}
# Request fields litellm understands for every provider although OpenAI has no such field.
PROVIDER_FIELDS: Final = frozenset({"thinking", "top_k"})
# OpenAI fields the adapter sets itself, or that litellm reads as its own settings.
_OWN_FIELDS: Final = frozenset({"model", "stream", "stream_options", "metadata"})
_DETAIL_CHARS: Final = 300
_LITELLM_ADVICE: Final = re.compile(r"\.? (?:Handle with `litellm\.|Original exception: |Traceback )")

_TOP: Final = ("id", "object", "created", "model", "system_fingerprint", "service_tier")
_MESSAGE: Final = ("role", "content", "refusal", "tool_calls", "function_call", "annotations", "reasoning_content")
_DELTA: Final = ("role", "content", "refusal", "tool_calls", "function_call", "reasoning_content")
_PAYLOAD: Final = ("content", "text", "tool_calls", "function_call", "refusal", "reasoning_content")
_TOOL_CALL: Final = ("index", "id", "type", "function")
_USAGE: Final = ("prompt_tokens", "completion_tokens", "total_tokens")
_USAGE_DETAILS: Final = {
    "prompt_tokens_details": ("audio_tokens", "cached_tokens", "text_tokens", "image_tokens", "cache_write_tokens"),
    "completion_tokens_details": (
        "accepted_prediction_tokens",
        "audio_tokens",
        "reasoning_tokens",
        "text_tokens",
        "rejected_prediction_tokens",
    ),
}
_CREDENTIALS_REFUSED: Final = (401, 403)
# Functions of litellm that map an OpenAI request to a provider's, and that read an answer.
_REQUEST_SIDE: Final = frozenset(
    {"get_optional_params", "map_openai_params", "transform_request", "validate_and_fix_openai_messages"}
)
_RESPONSE_SIDE: Final = frozenset({"transform_response", "convert_to_model_response_object", "chunk_parser"})
log = logging.getLogger("gateway.upstream")


class LiteLLMProvider:
    """One instance serves every litellm-backed deployment; the :class:`Target` says which."""

    def __init__(self) -> None:
        load_litellm()

    async def complete(self, endpoint: Endpoint, target: Target, body: Json) -> Json:
        with _translated(target):
            response = await _entry_point(endpoint)(**_call_arguments(endpoint, target, body))
            return _CLEANERS[endpoint](_dump(response))

    async def stream(self, endpoint: Endpoint, target: Target, body: Json) -> AsyncIterator[Json]:
        if endpoint == "embeddings":
            raise UpstreamRejected("embeddings cannot be streamed", param="stream")
        arguments = _call_arguments(endpoint, target, body)
        arguments |= {"stream": True, "stream_options": {"include_usage": True}}
        with _translated(target):
            upstream = await _entry_point(endpoint)(**arguments)
            try:
                async for chunk in _openai_chunks(endpoint, target, upstream):
                    yield chunk
            finally:
                await _close(upstream)

    async def aclose(self) -> None:
        """Close the HTTP clients litellm caches process-wide (they are shared by all callers)."""
        from litellm.llms.custom_httpx.async_client_cleanup import (
            close_litellm_async_clients,
        )

        await close_litellm_async_clients()  # type: ignore[no-untyped-call]


@functools.cache
def load_litellm() -> None:
    """Import litellm once, offline and quiet."""
    for name, value in OFFLINE_ENV.items():
        os.environ.setdefault(name, value)
    import litellm

    litellm.suppress_debug_info = True  # no "Give Feedback / Get Help" banners on stdout
    litellm.disable_hf_tokenizer_download = True
    litellm.turn_off_message_logging = True
    # Empty by default; emptied again in case anything else in the process registered a logger.
    litellm.callbacks, litellm.input_callback, litellm.service_callback = [], [], []
    litellm.success_callback, litellm.failure_callback = [], []
    litellm._async_input_callback, litellm._async_success_callback, litellm._async_failure_callback = [], [], []


def _call_arguments(endpoint: Endpoint, target: Target, body: Json) -> dict[str, Any]:
    """litellm keyword arguments: the body's OpenAI fields plus the deployment's connection."""
    if target.provider not in _litellm_providers():
        raise UpstreamUnavailable(f"deployment {target.deployment!r}: litellm has no provider {target.provider!r}")
    allowed = _openai_fields(endpoint)
    fields = {key: value for key, value in body.items() if key in allowed}
    return fields | {
        **_connection(target.base_url),
        "model": f"{target.provider}/{target.upstream_model}",
        "api_key": target.api_key,
        "timeout": target.timeout_seconds,
        "num_retries": 0,
        "drop_params": True,
    }


@functools.lru_cache(maxsize=256)
def _connection(base_url: str | None) -> Json:
    """``api_base``, and ``api_version`` when the base_url names one as Azure's URLs do (``?api-version=``)."""
    if base_url is None or "api-version=" not in base_url:
        return {"api_base": base_url}
    parts = urlsplit(base_url)
    query = parse_qsl(parts.query, keep_blank_values=True)
    version = next(value for key, value in query if key == "api-version")
    rest = urlencode([(key, value) for key, value in query if key != "api-version"])
    return {"api_base": urlunsplit(parts._replace(query=rest)), "api_version": version}


@functools.cache
def _litellm_providers() -> frozenset[str]:
    from litellm.types.utils import LlmProviders

    return frozenset(provider.value for provider in LlmProviders)


@functools.cache
def _openai_fields(endpoint: Endpoint) -> frozenset[str]:
    """Request fields of ``endpoint`` as the installed openai SDK knows them, plus :data:`PROVIDER_FIELDS`."""
    from openai.types import completion_create_params, embedding_create_params
    from openai.types.chat import completion_create_params as chat_create_params

    params: Mapping[Endpoint, Any] = {
        "chat": chat_create_params.CompletionCreateParamsBase,
        "completions": completion_create_params.CompletionCreateParamsBase,
        "embeddings": embedding_create_params.EmbeddingCreateParams,
    }
    typed_dict = params[endpoint]
    names = frozenset(typed_dict.__required_keys__ | typed_dict.__optional_keys__)
    extra = PROVIDER_FIELDS if endpoint != "embeddings" else frozenset()
    return (names | extra) - _OWN_FIELDS


def _entry_point(endpoint: Endpoint) -> Callable[..., Any]:
    import litellm

    entry_points = {
        "chat": litellm.acompletion,
        "completions": litellm.atext_completion,
        "embeddings": litellm.aembedding,
    }
    entry_point: Callable[..., Any] = entry_points[endpoint]
    return entry_point


# -- answers ------------------------------------------------------------------


async def _openai_chunks(endpoint: Endpoint, target: Target, upstream: Any) -> AsyncIterator[Json]:
    """Clean chunks with choices, then one ``choices: []`` chunk carrying the usage, when litellm reports it.

    Chunks wait until one carries content or usage is known: litellm turns a 200 answer that is
    not an event stream into a lone empty "stop" chunk, which must fail before the client sees
    anything, so that the gateway can still fall back.
    """
    clean = _CHUNK_CLEANERS[endpoint]
    held: list[Json] = []
    head: Json = {}
    usage: Json | None = None
    started = False
    async for raw in upstream:
        data = _dump(raw)
        usage = _usage(data.get("usage")) or usage
        chunk = clean(data)
        head = _pick(chunk, _TOP)
        held += [chunk] if chunk["choices"] else []
        started = started or usage is not None or _has_payload(chunk)
        if started:
            for ready in held:
                yield ready
            held.clear()
    if not started:
        raise UpstreamBadResponse(f"deployment {target.deployment!r} sent a stream without content or usage")
    if usage is not None:
        yield head | {"choices": [], "usage": usage}


def _has_payload(chunk: Json) -> bool:
    for choice in chunk["choices"]:
        fields = choice | _dict(choice.get("delta"))
        if any(fields.get(key) for key in _PAYLOAD):
            return True
    return False


def _chat_response(data: Json) -> Json:
    choices = [_chat_choice(choice) for choice in _list(data.get("choices"))]
    return _with_usage(data, _pick(data, _TOP) | {"object": "chat.completion", "choices": choices})


def _chat_choice(choice: Json) -> Json:
    message: Json = {"role": "assistant", "content": None, "refusal": None}
    message |= _pick(_dict(choice.get("message")), _MESSAGE)
    if "tool_calls" in message:
        message["tool_calls"] = [_tool_call(call, streamed=False) for call in _list(message["tool_calls"])]
    return {
        "index": choice.get("index", 0),
        "message": message,
        "finish_reason": choice.get("finish_reason") or "stop",
        "logprobs": choice.get("logprobs"),
    }


def _chat_chunk(data: Json) -> Json:
    choices = [_chunk_choice(choice) for choice in _list(data.get("choices"))]
    return _pick(data, _TOP) | {"object": "chat.completion.chunk", "choices": choices}


def _chunk_choice(choice: Json) -> Json:
    delta = _pick(_dict(choice.get("delta")), _DELTA)
    if "tool_calls" in delta:
        delta["tool_calls"] = [_tool_call(call, streamed=True) for call in _list(delta["tool_calls"])]
    cleaned = {"index": choice.get("index", 0), "delta": delta, "finish_reason": choice.get("finish_reason")}
    return cleaned | _pick(choice, ("logprobs",))


def _tool_call(call: Json, *, streamed: bool) -> Json:
    keys = _TOOL_CALL if streamed else _TOOL_CALL[1:]
    cleaned = _pick(call, keys)
    if "function" in cleaned:
        cleaned["function"] = _pick(_dict(cleaned["function"]), ("name", "arguments"))
    return cleaned


def _text_response(data: Json) -> Json:
    choices = [_text_choice(choice, streamed=False) for choice in _list(data.get("choices"))]
    return _with_usage(data, _pick(data, _TOP) | {"object": "text_completion", "choices": choices})


def _text_chunk(data: Json) -> Json:
    choices = [_text_choice(choice, streamed=True) for choice in _list(data.get("choices"))]
    return _pick(data, _TOP) | {"object": "text_completion", "choices": choices}


def _text_choice(choice: Json, *, streamed: bool) -> Json:
    finish = choice.get("finish_reason") or (None if streamed else "stop")
    return {
        "index": choice.get("index", 0),
        "text": choice.get("text") or "",
        "logprobs": choice.get("logprobs"),
        "finish_reason": finish,
    }


def _embedding_response(data: Json) -> Json:
    vectors = [{"object": "embedding"} | _pick(item, ("index", "embedding")) for item in _list(data.get("data"))]
    usage = _pick(_dict(data.get("usage")), ("prompt_tokens", "total_tokens"))
    usage = {"prompt_tokens": 0, "total_tokens": 0} | usage
    return {"object": "list", "model": data.get("model"), "data": vectors, "usage": usage}


_CLEANERS: Final[Mapping[Endpoint, Callable[[Json], Json]]] = {
    "chat": _chat_response,
    "completions": _text_response,
    "embeddings": _embedding_response,
}
_CHUNK_CLEANERS: Final[Mapping[Endpoint, Callable[[Json], Json]]] = {"chat": _chat_chunk, "completions": _text_chunk}


def _with_usage(data: Json, cleaned: Json) -> Json:
    usage = _usage(data.get("usage"))
    return cleaned | {"usage": usage} if usage is not None else cleaned


def _usage(raw: Any) -> Json | None:
    """OpenAI's usage object, or None when litellm reports none."""
    if not isinstance(raw, dict) or not isinstance(raw.get("total_tokens"), int):
        return None
    usage = {key: raw.get(key) or 0 for key in _USAGE}
    for name, keys in _USAGE_DETAILS.items():
        details = _pick(_dict(raw.get(name)), keys)
        if details:
            usage[name] = details
    return usage


def _pick(data: Mapping[str, Any], keys: Collection[str]) -> Json:
    return {key: data[key] for key in keys if data.get(key) is not None}


def _dict(value: Any) -> Json:
    return value if isinstance(value, dict) else {}


def _list(value: Any) -> list[Json]:
    return [item for item in value if isinstance(item, dict)] if isinstance(value, list) else []


def _dump(response: object) -> Json:
    dump = getattr(response, "model_dump", None)
    data = dump() if callable(dump) else None
    if not isinstance(data, dict):
        raise UpstreamBadResponse(f"litellm returned {type(response).__name__}, not a response object")
    return data


async def _close(upstream: object) -> None:
    aclose = getattr(upstream, "aclose", None)
    if callable(aclose):
        await aclose()


# -- errors -------------------------------------------------------------------


@contextlib.contextmanager
def _translated(target: Target) -> Iterator[None]:
    """Turn whatever litellm raises into an :class:`UpstreamError` naming the deployment."""
    try:
        yield
    except UpstreamError:
        raise
    except _litellm_errors() as exc:  # the cause holds the upstream request, key included: drop it
        raise _upstream_error(exc, target) from None
    except Exception as exc:  # the Provider contract: no third-party exception leaves an adapter
        log.warning(
            "deployment %s: unexpected %s from litellm: %s", target.deployment, type(exc).__name__, _detail(exc, target)
        )
        raise UpstreamBadResponse(
            f"deployment {target.deployment!r}: unexpected {type(exc).__name__} from litellm"
        ) from exc


@functools.cache
def _litellm_errors() -> tuple[type[Exception], ...]:
    """Every exception class litellm raises for a failed call (all subclass ``openai.OpenAIError``)."""
    from litellm import exceptions as e

    return (
        e.APIError,
        e.APIConnectionError,
        e.APIResponseValidationError,
        e.AuthenticationError,
        e.BadGatewayError,
        e.BadRequestError,
        e.InternalServerError,
        e.NotFoundError,
        e.OpenAIError,
        e.PermissionDeniedError,
        e.RateLimitError,
        e.ServiceUnavailableError,
        e.Timeout,
        e.UnprocessableEntityError,
    )


def _upstream_error(exc: Exception, target: Target) -> UpstreamError:
    """The gateway error for one litellm exception. The client's message names the deployment and what
    happened, never litellm's or the upstream's text (it can echo the request); that is logged, redacted."""
    from litellm import exceptions as e

    where = f"deployment {target.deployment!r}"
    status = getattr(exc, "status_code", None)
    detail = _detail(exc, target)
    if isinstance(exc, e.Timeout):  # before APIConnectionError, its base class
        return UpstreamTimeout(f"{where} gave no answer within {target.timeout_seconds:g} s")
    if status in _CREDENTIALS_REFUSED:  # litellm's AuthenticationError and PermissionDeniedError
        log.warning("%s refused the configured credentials: %s", where, detail)
        return UpstreamUnavailable(f"{where} refused the configured credentials (HTTP {status}): check its api key")
    if _request_translation_failed(exc):
        log.warning("%s: litellm could not translate the request: %s", where, detail)
        return UpstreamRejected(f"{where} ({target.provider}) cannot take this request: a field has a value it refuses")
    if isinstance(exc, e.APIConnectionError) and not _parse_failure(exc):
        log.warning("%s is unreachable: %s", where, detail)
        return UpstreamUnavailable(f"{where} is unreachable")
    if isinstance(exc, e.APIConnectionError | e.APIResponseValidationError) or not isinstance(status, int):
        log.warning("%s sent an answer litellm could not read: %s", where, detail)
        return UpstreamBadResponse(f"{where} sent an answer litellm could not read")
    if isinstance(exc, e.ContextWindowExceededError):
        status = 400
    return status_error(target.deployment, status, detail.encode(), target.api_key)


def _request_translation_failed(exc: BaseException) -> bool:
    """True when litellm failed while turning the OpenAI request into the provider's (a value it cannot map,
    such as ``"stop": [1]``), before anything was sent: the request is at fault, not the deployment.

    litellm wraps such failures in an ``APIConnectionError``; the frames of the cause say where it failed."""
    seen: set[int] = set()
    cause: BaseException | None = exc
    while cause is not None and id(cause) not in seen:
        seen.add(id(cause))
        names = {frame.name for frame in traceback.extract_tb(cause.__traceback__)}
        if names & _REQUEST_SIDE and not names & _RESPONSE_SIDE:
            return True
        cause = cause.__cause__ or cause.__context__
    return False


def _parse_failure(exc: BaseException) -> bool:
    """True when litellm's "connection error" was really an unreadable body (it raises one for both)."""
    seen: set[int] = set()
    cause: BaseException | None = exc
    while cause is not None and id(cause) not in seen:
        if isinstance(cause, ValueError | LookupError):
            return True
        seen.add(id(cause))
        cause = cause.__cause__ or cause.__context__
    return False


def _detail(exc: BaseException, target: Target) -> str:
    """litellm's message up to its advice ("Handle with ..."), without the deployment's key."""
    text = _LITELLM_ADVICE.split(" ".join(str(exc).split()), maxsplit=1)[0] or type(exc).__name__
    return redact(text, target.api_key)[:_DETAIL_CHARS]
