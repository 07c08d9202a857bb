"""What the adapters over the official `openai` and `anthropic` SDKs share: finding the key,
pricing, closing the client, and mapping the SDKs' exceptions to ours (the two SDKs are
generated from one template and share their exception names)."""

from __future__ import annotations

import os
from types import ModuleType
from typing import Any, ClassVar

from rlm_async.errors import (
    ConfigurationError,
    ProviderAuthError,
    ProviderError,
    ProviderTimeout,
    RateLimited,
    RequestRejected,
)
from rlm_async.providers.base import TokenUsage
from rlm_async.providers.pricing import Pricer, Prices


class SDKProvider:
    """Base of the SDK adapters. The key is `api_key`, else the SDK's usual environment
    variable; a custom `base_url` without one gets a placeholder (local servers ignore it)."""

    kind: ClassVar[str]
    key_variable: ClassVar[str]
    client: Any

    def __init__(
        self,
        model: str,
        *,
        base_url: str | None,
        api_key: str | None,
        prices: Prices | None,
        stream: bool,
        extra_body: dict[str, Any] | None,
    ) -> None:
        self.model = self.name = model
        self.base_url = base_url
        self.stream = stream
        self.extra_body = extra_body
        key = api_key or os.environ.get(self.key_variable) or ("no-key-needed" if base_url else None)
        if key is None:
            raise ConfigurationError(f"{self.kind}:{model} needs an API key: set ${self.key_variable} or pass api_key")
        self.api_key = key
        self._pricer = Pricer(model, provider_id=self.kind, base_url=base_url, prices=prices)

    def cost_usd(self, usage: TokenUsage) -> float | None:
        return self._pricer.cost_usd(usage)

    async def aclose(self) -> None:
        """Close the SDK client's connections."""
        await self.client.close()


def map_sdk_error(sdk: ModuleType, name: str, exc: Exception) -> ProviderError:
    """The most specific error of ours for what `sdk` raised while calling model `name`."""
    message = f"{name}: {type(exc).__name__}: {exc}"
    if isinstance(exc, sdk.APITimeoutError):
        return ProviderTimeout(message)
    if isinstance(exc, sdk.RateLimitError):
        return RateLimited(message)
    if isinstance(exc, (sdk.AuthenticationError, sdk.PermissionDeniedError)):
        return ProviderAuthError(message)
    if isinstance(exc, sdk.APIStatusError) and 400 <= exc.status_code < 500:
        return RequestRejected(message)
    return ProviderError(message)
