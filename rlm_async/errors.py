"""Every error rlm-async raises. The tree::

    RLMError                      base; carries .usage and .trace of the run so far
    ├── ConfigurationError        invalid Limits, RLM arguments or model names
    ├── ContextError              context that is empty, not UTF-8, or of an unsupported type
    ├── LimitReached              a limit ended the run (raised only with raise_on_limit=True)
    │   └── BudgetExceeded        a provider call was refused before sending (.limit says which)
    ├── ProviderError             a model API call failed for good (after the SDK's retries)
    │   ├── ProviderTimeout       no answer within the call's timeout
    │   ├── RateLimited           HTTP 429, still after the SDK's retries (which honour Retry-After)
    │   ├── ProviderAuthError     HTTP 401/403: a missing or wrong API key
    │   └── RequestRejected       another HTTP 4xx: bad request, unknown model, context too long
    └── EnvironmentFailed         a REPL could not be started or stopped working

Model mistakes (syntax errors, bad FINAL_VAR names, refused sub-calls) are not raised:
they go back to the model as feedback or as error strings in its REPL.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from rlm_async.budget import Usage
    from rlm_async.trace import Trace


class RLMError(Exception):
    """Base class. `usage` and `trace` describe the run up to the failure, when there was one."""

    usage: Usage | None = None
    trace: Trace | None = None


class ConfigurationError(RLMError, ValueError):
    """The caller passed invalid settings."""


class ContextError(RLMError, ValueError):
    """The context cannot be given to a REPL."""


class LimitReached(RLMError):
    """A limit of the run was reached. `limit` names it (for example "max_seconds");
    `answer` is the best draft answer when the run had one."""

    answer: str | None = None

    def __init__(self, limit: str, message: str) -> None:
        super().__init__(message)
        self.limit = limit


class BudgetExceeded(LimitReached):
    """A provider call was refused because it could exceed `limit`; nothing was sent."""


class ProviderError(RLMError):
    """A model API call failed: server errors, connection failures, malformed responses."""


class ProviderTimeout(ProviderError):
    """The model API did not answer within the call's timeout."""


class RateLimited(ProviderError):
    """The model API kept answering 429 Too Many Requests."""


class ProviderAuthError(ProviderError):
    """The model API refused the credentials (401/403)."""


class RequestRejected(ProviderError):
    """The model API refused the request itself (a 4xx other than 401/403/429)."""


class EnvironmentFailed(RLMError):
    """A REPL environment could not be started, or died and could not be restarted."""
