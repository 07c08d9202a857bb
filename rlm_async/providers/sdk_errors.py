"""One mapping from the official SDKs' exceptions to ours. The `openai` and `anthropic`
SDKs are generated from one template and share their exception names."""

from __future__ import annotations

from types import ModuleType

from rlm_async.errors import ProviderAuthError, ProviderError, ProviderTimeout, RateLimited, RequestRejected


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
