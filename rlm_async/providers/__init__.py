"""Model providers. Adapters for real APIs are imported lazily: their SDKs are slow to import."""

from rlm_async.providers.base import Completion, Message, Provider, TokenUsage

__all__ = ["Completion", "Message", "Provider", "TokenUsage"]
