"""Model strings → Providers.

    "openai:gpt-5-mini"                      api.openai.com, key from $OPENAI_API_KEY
    "anthropic:claude-sonnet-4-5"            api.anthropic.com, key from $ANTHROPIC_API_KEY
    "openai:qwen2.5@http://127.0.0.1:8080/v1"   any OpenAI-compatible server (llama.cpp, vLLM, Ollama…)
    "anthropic:MODEL@http://HOST:PORT"       any Anthropic-compatible server

The adapters are imported only when a string names them: their SDKs are slow to import.
"""

from __future__ import annotations

from rlm_async.errors import ConfigurationError
from rlm_async.providers.base import Provider

KINDS = ("openai", "anthropic")


def provider_from(spec: str | Provider, *, base_url: str | None = None) -> Provider:
    """A Provider for `spec`: a Provider is returned as it is, a model string is parsed."""
    if not isinstance(spec, str):
        if not isinstance(spec, Provider):
            raise ConfigurationError(f"a model must be a Provider or a string like 'openai:gpt-5-mini', got {spec!r}")
        return spec
    kind, colon, rest = spec.partition(":")
    model, at, url = rest.partition("@")
    if not colon or kind not in KINDS or not model or (at and not url):
        raise ConfigurationError(
            f"model string {spec!r} is not KIND:MODEL or KIND:MODEL@BASE_URL with KIND one of {', '.join(KINDS)}"
        )
    server = url or base_url
    if kind == "openai":
        from rlm_async.providers.openai import OpenAIProvider

        return OpenAIProvider(model, base_url=server)
    from rlm_async.providers.anthropic import AnthropicProvider

    return AnthropicProvider(model, base_url=server)
