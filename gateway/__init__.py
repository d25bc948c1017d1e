"""Switchyard: an OpenAI-compatible LLM gateway that routes by task complexity and vendor-origin policy."""

__version__ = "0.1.0"
