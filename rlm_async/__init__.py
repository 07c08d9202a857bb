"""rlm-async: Recursive Language Models on an asyncio event loop.

from rlm_async import RLM, Limits
result = await RLM(model=provider, limits=Limits(max_cost_usd=1.0)).completion(query, context)
"""

from rlm_async.budget import Budget, Limits, Usage, UsageTotals
from rlm_async.environments.base import Environment, ExecResult
from rlm_async.environments.local import LocalEnvironment
from rlm_async.environments.slots import EnvironmentSlots
from rlm_async.errors import (
    BudgetExceeded,
    ConfigurationError,
    ContextError,
    EnvironmentFailed,
    LimitReached,
    ProviderError,
    RLMError,
)
from rlm_async.providers.base import Completion, Message, Provider, TokenUsage
from rlm_async.rlm import RLM, RLMResult
from rlm_async.trace import Trace

__all__ = [
    "RLM",
    "Budget",
    "BudgetExceeded",
    "Completion",
    "ConfigurationError",
    "ContextError",
    "Environment",
    "EnvironmentFailed",
    "EnvironmentSlots",
    "ExecResult",
    "LimitReached",
    "Limits",
    "LocalEnvironment",
    "Message",
    "Provider",
    "ProviderError",
    "RLMError",
    "RLMResult",
    "TokenUsage",
    "Trace",
    "Usage",
    "UsageTotals",
]
