"""The normalized request: a frozen value built once at the edge and read by every later stage."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

Endpoint = Literal["chat", "completions", "embeddings"]
CHARS_PER_TOKEN = 4  # no tokenizer: prompts (and output whose usage never came) are estimated at this many


@dataclass(frozen=True, slots=True)
class Native:
    """The client's own body when it came in another API's wire format (Anthropic's Messages API, OpenAI's
    Responses API): a deployment
    that speaks that API gets it as it came, instead of the translation in ``ChatRequest.body``. ``headers`` are
    the protocol headers to forward with it (``anthropic-version``, ``anthropic-beta``)."""

    api: Literal["anthropic", "responses"]
    body: dict[str, Any]
    headers: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True, slots=True)
class ChatRequest:
    endpoint: Endpoint
    model: str  # the route or catalog model asked for (an alias resolved: see ``requested_model``)
    body: dict[str, Any]  # the client's JSON, passed through untouched except ``model``
    stream: bool
    include_usage: bool
    text: str  # the prompt text the classifier reads (system + user + assistant turns)
    last_user: str
    turns: int  # user turns
    needs_tools: bool
    needs_json: bool
    needs_vision: bool
    max_tokens: int | None
    prompt_tokens_estimate: int
    data_class: str | None  # from the x-gateway-data-class header, if any
    native: Native | None = None  # the client's body in its own API, when that is not OpenAI's
    traceparent: str | None = None  # the client's W3C trace context, passed on to the upstream
    requested_model: str | None = None  # the client's own name, when an alias resolved it to ``model``
    alias: str | None = None  # that alias as the policy writes it (the exact name or the pattern that matched)
    whole_text: str | None = None  # the whole prompt text when ``text`` is cut to its ends (the detectors read it)
    prompt_chars: int = 0  # characters of all the text the upstream would get (gateway.routing.prompt_size)

    @property
    def scanned_text(self) -> str:
        """The text the personal-data detectors read: all of it, not the classifier's window."""
        return self.text if self.whole_text is None else self.whole_text
