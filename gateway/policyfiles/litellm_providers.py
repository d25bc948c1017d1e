"""What a LiteLLM provider prefix says about a deployment: how the gateway calls it, who runs it, where data goes.

Only what is certain is filled in: a vendor's own API is run by the vendor in its country (``openai`` is
OpenAI in the US, ``mistral`` is Mistral AI in France); a cloud's region names its country (Bedrock's
``aws_region_name``, Vertex's ``vertex_location``); a self-hosted server (``hosted_vllm``, ``ollama``, an
``openai/`` model on a private address) is yours, and where it stands is for ops to say. Anything else is
``FILL-ME``.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from urllib.parse import urlsplit

from gateway.policy.provenance import FILL_ME


@dataclass(frozen=True)
class Provider:
    gateway: str  # the deployment's provider: openai_compatible or a litellm provider name
    base_url: str | None  # when the config gives no api_base
    operator: str
    jurisdiction: str
    self_hosted: bool = False
    vendor: tuple[str, str] | None = None  # (vendor, origin) of every model this API serves: its own


SELF_HOSTED = "self-hosted"  # the --jurisdiction key for every self-hosted deployment
_SELF = Provider("openai_compatible", None, "self-hosted", FILL_ME, self_hosted=True)
PROVIDERS: dict[str, Provider] = {
    "openai": Provider("openai_compatible", "https://api.openai.com/v1", "OpenAI", "US", vendor=("OpenAI", "US")),
    "text-completion-openai": Provider("openai_compatible", "https://api.openai.com/v1", "OpenAI", "US"),
    "anthropic": Provider("anthropic", "https://api.anthropic.com", "Anthropic", "US", vendor=("Anthropic", "US")),
    "gemini": Provider("gemini", None, "Google", "US", vendor=("Google", "US")),
    "vertex_ai": Provider("vertex_ai", None, "Google Cloud (Vertex AI)", FILL_ME),
    "azure": Provider("azure", "${AZURE_API_BASE}", "Microsoft Azure", FILL_ME),
    "azure_ai": Provider("azure_ai", "${AZURE_AI_API_BASE}", "Microsoft Azure AI Foundry", FILL_ME),
    "bedrock": Provider("bedrock", None, "AWS Bedrock", FILL_ME),
    "deepseek": Provider("openai_compatible", "https://api.deepseek.com/v1", "DeepSeek", "CN"),
    "mistral": Provider("openai_compatible", "https://api.mistral.ai/v1", "Mistral AI", "FR"),
    "together_ai": Provider("openai_compatible", "https://api.together.xyz/v1", "Together AI", "US"),
    "groq": Provider("openai_compatible", "https://api.groq.com/openai/v1", "Groq", "US"),
    "fireworks_ai": Provider("openai_compatible", "https://api.fireworks.ai/inference/v1", "Fireworks AI", "US"),
    "deepinfra": Provider("openai_compatible", "https://api.deepinfra.com/v1/openai", "DeepInfra", "US"),
    "xai": Provider("openai_compatible", "https://api.x.ai/v1", "xAI", "US", vendor=("xAI", "US")),
    "hosted_vllm": Provider("openai_compatible", "${HOSTED_VLLM_API_BASE}", "self-hosted", FILL_ME, True),
    "vllm": Provider("openai_compatible", "${VLLM_API_BASE}", "self-hosted", FILL_ME, True),
    "ollama": Provider("openai_compatible", "http://localhost:11434", "self-hosted", FILL_ME, True),
    "ollama_chat": Provider("openai_compatible", "http://localhost:11434", "self-hosted", FILL_ME, True),
    "lm_studio": Provider("openai_compatible", "http://localhost:1234/v1", "self-hosted", FILL_ME, True),
    "llamafile": Provider("openai_compatible", "http://localhost:8080/v1", "self-hosted", FILL_ME, True),
}
_OLLAMA = ("ollama", "ollama_chat")

# Regions whose country is certain. Bedrock's cross-region profiles (eu., apac., global.) may use any region
# of their area, so only us. is certain.
_AWS = {"ca-central-1": "CA", "eu-central-1": "DE", "eu-central-2": "CH", "eu-west-1": "IE", "eu-west-2": "GB",
        "eu-west-3": "FR", "eu-north-1": "SE", "eu-south-1": "IT", "eu-south-2": "ES", "ap-northeast-1": "JP",
        "ap-northeast-2": "KR", "ap-northeast-3": "JP", "ap-southeast-1": "SG", "ap-southeast-2": "AU",
        "ap-south-1": "IN", "sa-east-1": "BR"}  # fmt: skip
_GCP = {"northamerica-northeast1": "CA", "europe-west1": "BE", "europe-west2": "GB", "europe-west3": "DE",
        "europe-west4": "NL", "europe-west6": "CH", "europe-west8": "IT", "europe-west9": "FR",
        "europe-north1": "FI", "europe-southwest1": "ES", "asia-northeast1": "JP", "asia-northeast3": "KR",
        "asia-southeast1": "SG", "australia-southeast1": "AU", "asia-south1": "IN"}  # fmt: skip


def provider_of(prefix: str, api_base: str | None) -> Provider:
    """The facts for a litellm prefix; an ``openai/`` model elsewhere than OpenAI is self-hosted when its
    address is private, and unknown otherwise."""
    known = PROVIDERS.get(prefix)
    if known is None:
        return Provider(prefix, None, FILL_ME, FILL_ME)
    if prefix == "openai" and api_base and urlsplit(api_base).hostname != "api.openai.com":
        return _SELF if is_private(api_base) else Provider("openai_compatible", None, FILL_ME, FILL_ME)
    return known


def is_private(url: str) -> bool:
    """A loopback or private address, or a name only an internal resolver knows (no dot, .local, .internal)."""
    host = urlsplit(url).hostname or ""
    if host.startswith("${"):
        return False
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return "." not in host or host.endswith((".local", ".internal", ".svc", ".cluster.local", ".lan"))
    return address.is_private or address.is_loopback


def region_country(prefix: str, region: str | None, upstream: str) -> str:
    """The country of a Bedrock or Vertex region when it is certain, else FILL-ME."""
    if prefix == "bedrock":
        profile = re.match(r"^(?:converse/|invoke/)?(us-gov|us|eu|apac|global|jp|au|ca)\.", upstream)
        if profile:  # a cross-region profile: any region of its area
            return "US" if profile.group(1) in ("us", "us-gov") else FILL_ME
        table = _AWS
    elif prefix == "vertex_ai":
        table = _GCP
    else:
        return FILL_ME
    if not region:
        return FILL_ME
    return "US" if region.startswith("us-") else table.get(region, FILL_ME)


def openai_base_url(prefix: str, url: str) -> str:
    """Ollama's OpenAI API lives under /v1; LiteLLM's ollama prefix takes the server's root."""
    if prefix in _OLLAMA and not url.rstrip("/").endswith("/v1"):
        return url.rstrip("/") + "/v1"
    return url
