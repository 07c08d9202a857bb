"""Run: what every agent of one `completion()` shares — budget, limiters, models, trace.

Agents receive the Run when they are made, so a child can never be started outside its
run's budget. `call_model` is the one path by which any agent reaches a provider.
"""

from __future__ import annotations

import itertools
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import anyio

from rlm_async.budget import Budget, Limits
from rlm_async.environments.base import Environment
from rlm_async.environments.slots import EnvironmentSlots
from rlm_async.errors import ConfigurationError, ProviderError, RLMError
from rlm_async.events import Event
from rlm_async.providers.base import Completion, Message, Provider
from rlm_async.trace import Trace

EventCallback = Callable[[Event], None]


@dataclass(frozen=True)
class Models:
    """Who answers what: the root agent, `llm_query`, child agents; plus every model by name."""

    root: Provider
    sub: Provider
    child: Provider

    @property
    def by_name(self) -> dict[str, Provider]:
        return {p.name: p for p in (self.root, self.sub, self.child)}

    def pick(self, name: str | None, default: Provider) -> Provider:
        if name is None:
            return default
        try:
            return self.by_name[name]
        except KeyError:
            known = ", ".join(repr(n) for n in self.by_name)
            raise ConfigurationError(f"unknown model {name!r}; known: {known}") from None


@dataclass(frozen=True, slots=True)
class ModelReply:
    completion: Completion
    cost_usd: float | None
    duration: float


class Run:
    def __init__(
        self,
        *,
        limits: Limits,
        models: Models,
        new_environment: Callable[[], Environment],
        provider_slots: anyio.CapacityLimiter,
        environment_slots: EnvironmentSlots,
        on_event: EventCallback | None = None,
    ) -> None:
        self.id = uuid.uuid4().hex[:12]
        self.limits = limits
        self.models = models
        self.new_environment = new_environment
        self.provider_slots = provider_slots
        self.environment_slots = environment_slots
        self.budget = Budget(limits)
        self.trace = Trace()
        self._on_event = on_event
        self._agent_numbers = itertools.count()
        self.subcall_ids = itertools.count(1)

    def new_agent_id(self) -> str:
        return f"{self.id}-{next(self._agent_numbers)}"

    def emit(self, event: Event) -> None:
        self.trace.events.append(event)
        if self._on_event is not None:
            self._on_event(event)

    async def call_model(self, provider: Provider, messages: Sequence[Message], depth: int) -> ModelReply:
        """Reserve, call, commit. Raises BudgetExceeded before sending, or ProviderError."""
        async with self.provider_slots:
            reservation = self.budget.reserve(provider, messages, depth)
            started = time.perf_counter()
            try:
                completion = await provider.complete(messages, max_output_tokens=reservation.max_output_tokens)
            except BaseException as exc:
                self.budget.release(reservation)
                if isinstance(exc, Exception) and not isinstance(exc, RLMError):
                    raise ProviderError(f"{provider.name}: {type(exc).__name__}: {exc}") from exc
                raise
            cost = provider.cost_usd(completion.usage)
            self.budget.commit(reservation, completion, cost)
        return ModelReply(completion, cost, time.perf_counter() - started)
