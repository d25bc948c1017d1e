"""A case may give just the features of its request instead of a full body: the model asked for, its data
class, tools / vision / JSON output, and the complexity tier as if the router had scored it so."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

TINY_PNG = (  # one transparent pixel
    "data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg=="
)


class Features(BaseModel):
    """What a case's request needs, without writing its body."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)
    model: str = Field("auto", description="the route, model or alias asked for")
    data_class: str | None = Field(None, description="as the x-gateway-data-class header")
    tier: Literal["simple", "standard", "complex"] | None = Field(
        None, description="the tier, as if the router scored the request so (routes only)"
    )
    tools: bool = Field(False, description="the request offers tools")
    vision: bool = Field(False, description="the request carries an image")
    json_output: bool = Field(False, alias="json", description="the request asks for JSON output")
    prompt: str = Field("Hello", description="the user's message")


def body_of(features: Features) -> dict[str, Any]:
    """A chat completion body with exactly these features."""
    content: Any = features.prompt
    if features.vision:
        content = [{"type": "text", "text": features.prompt}, {"type": "image_url", "image_url": {"url": TINY_PNG}}]
    body: dict[str, Any] = {"model": features.model, "messages": [{"role": "user", "content": content}]}
    if features.tools:
        function = {"name": "lookup", "parameters": {"type": "object", "properties": {}}}
        body["tools"] = [{"type": "function", "function": function}]
    if features.json_output:
        body["response_format"] = {"type": "json_object"}
    return body
