"""RLM: configuration and entry points. Each `completion()` is one run with its own Budget."""

from __future__ import annotations

import dataclasses
import functools
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Literal

import anyio

from rlm_async.agent import Agent, AgentOutcome
from rlm_async.budget import Limits, Usage
from rlm_async.context import Context
from rlm_async.environments.base import Environment
from rlm_async.environments.local import LocalEnvironment
from rlm_async.environments.slots import EnvironmentSlots
from rlm_async.errors import ConfigurationError, LimitReached, RLMError
from rlm_async.events import Event, EventsDropped, LimitHit, RunFinished, RunStarted, clip
from rlm_async.providers.base import Provider, TokenUsage
from rlm_async.providers.registry import provider_from
from rlm_async.run import EventCallback, Models, Run
from rlm_async.trace import Trace

EnvironmentChoice = Literal["local", "e2b"] | Callable[[], Environment]


@dataclass(frozen=True, slots=True)
class RLMResult:
    """`stop_reason` is "final" when the model submitted an answer, else what stopped it:
    "max_iterations" (answer from a last forced turn), "max_seconds", "max_tokens",
    "max_cost_usd" or "max_calls" (answer: the best draft, or None)."""

    answer: str | None
    stop_reason: str
    usage: Usage
    trace: Trace
    run_id: str
    seconds: float

    @property
    def cost_usd(self) -> float | None:
        return self.usage.cost_usd


class RLM:
    """A Recursive Language Model.

    Models are Providers or strings such as "openai:gpt-5-mini", "anthropic:claude-sonnet-4-5"
    or "openai:MODEL@http://127.0.0.1:8080/v1" (see providers/registry.py).
    `model` answers at the root; `sub_model` serves `llm_query` (default: `model`);
    `child_model` drives child agents made by `rlm_query` (default: `model`).
    `environment` is "local", "e2b" or a factory returning a fresh Environment per agent.
    `max_concurrency` caps in-flight provider calls and `max_environments` live REPLs; pass a
    `CapacityLimiter` / `EnvironmentSlots` to share one cap across runs.
    `raise_on_limit=True` raises LimitReached instead of returning a result with a stop_reason.
    """

    def __init__(
        self,
        model: Provider | str,
        *,
        sub_model: Provider | str | None = None,
        child_model: Provider | str | None = None,
        environment: EnvironmentChoice = "local",
        limits: Limits | None = None,
        max_concurrency: int | anyio.CapacityLimiter = 16,
        max_environments: int | EnvironmentSlots = 16,
        raise_on_limit: bool = False,
    ) -> None:
        root = provider_from(model)
        self.models = Models(
            root,
            root if sub_model is None else provider_from(sub_model),
            root if child_model is None else provider_from(child_model),
        )
        given = (model, sub_model, child_model)
        self._owned = [p for p in self.models.by_name.values() if not any(p is g for g in given)]
        self.limits = limits or Limits()
        if not isinstance(self.limits, Limits):
            raise ConfigurationError(f"limits must be a Limits, got {type(self.limits).__name__}")
        self._new_environment = _environment_factory(environment)
        self._provider_slots = max_concurrency
        self._environment_slots = max_environments
        if isinstance(max_concurrency, int) and (isinstance(max_concurrency, bool) or max_concurrency < 1):
            raise ConfigurationError(f"max_concurrency must be a positive int, got {max_concurrency!r}")
        total = max_environments.total if isinstance(max_environments, EnvironmentSlots) else max_environments
        if isinstance(total, bool) or not isinstance(total, int) or total < self.limits.max_depth:
            raise ConfigurationError(
                f"max_environments={total!r} must be an int of at least max_depth={self.limits.max_depth}"
            )
        if self.limits.max_cost_usd is not None:
            unpriced = [p.name for p in self.models.by_name.values() if p.cost_usd(TokenUsage(1, 1)) is None]
            if unpriced:
                raise ConfigurationError(f"max_cost_usd is set but these models have no known price: {unpriced}")
        self.raise_on_limit = raise_on_limit

    async def completion(self, query: str, context: object, *, on_event: EventCallback | None = None) -> RLMResult:
        """Answer `query` about `context` (str, bytes, list[str] or a JSON-able dict)."""
        if not isinstance(query, str) or not query.strip():
            raise ConfigurationError("query must be a non-empty str")
        ctx = Context.of(context)
        run = Run(
            limits=self.limits,
            models=self.models,
            new_environment=self._new_environment,
            provider_slots=self._limiter(),
            environment_slots=self._slots(),
            on_event=on_event,
        )
        root = Agent(run, query=query, context=ctx, provider=self.models.root, depth=0, parent_id=None)
        limits = {f.name: getattr(self.limits, f.name) for f in dataclasses.fields(self.limits)}
        root.emit(RunStarted, query=clip(query), model=self.models.root.name, limits=limits)
        started = time.perf_counter()
        outcome: AgentOutcome | None = None
        try:
            with anyio.move_on_after(self.limits.max_seconds):
                outcome = await root.run_to_end()
        except RLMError as exc:
            self._finish(root, AgentOutcome(root.partial, "error", root.turns), started)
            exc.usage, exc.trace = run.budget.usage, run.trace
            raise
        if outcome is None:
            root.emit(LimitHit, limit="max_seconds")
            outcome = AgentOutcome(root.partial, "max_seconds", root.turns)
        result = self._finish(root, outcome, started)
        if self.raise_on_limit and outcome.stop_reason != "final":
            error = LimitReached(outcome.stop_reason, f"the run stopped: {outcome.stop_reason}")
            error.usage, error.trace, error.answer = result.usage, result.trace, result.answer
            raise error
        return result

    @staticmethod
    def _finish(root: Agent, outcome: AgentOutcome, started: float) -> RLMResult:
        usage, seconds = root.run.budget.usage, time.perf_counter() - started
        root.emit(
            RunFinished, answer=outcome.answer, stop_reason=outcome.stop_reason, calls=usage.calls,
            input_tokens=usage.input_tokens, output_tokens=usage.output_tokens, cost_usd=usage.cost_usd,
            seconds=seconds,
        )  # fmt: skip
        return RLMResult(outcome.answer, outcome.stop_reason, usage, root.run.trace, root.run.id, seconds)

    async def stream(self, query: str, context: object, *, buffer: int = 10_000) -> AsyncIterator[Event | RLMResult]:
        """Yield the run's events as they happen, then its RLMResult.

        The run never waits for the consumer: events wait in a buffer of `buffer` events, and
        when it is full new events are dropped and counted; the consumer then gets one
        `EventsDropped` with the count before the next event. The result always arrives.
        Errors of the run are raised from the iteration. Leaving the loop early cancels the run
        (iterate under `contextlib.aclosing(...)` to have that happen at once).
        """
        send, receive = anyio.create_memory_object_stream[Event](buffer)
        dropped = 0
        outcome: list[RLMResult] = []
        failure: list[RLMError] = []

        def offer(event: Event) -> None:
            nonlocal dropped
            try:
                send.send_nowait(event)
            except anyio.WouldBlock:
                dropped += 1
            except (anyio.BrokenResourceError, anyio.ClosedResourceError):
                pass  # the consumer has left; the run is being cancelled

        async def run() -> None:
            with send:
                try:
                    outcome.append(await self.completion(query, context, on_event=offer))
                except RLMError as exc:
                    failure.append(exc)

        async with anyio.create_task_group() as tg:
            tg.start_soon(run)
            with receive:
                async for event in receive:
                    batch: list[Event] = [event]
                    if dropped:
                        gap = EventsDropped(run_id=event.run_id, agent_id=event.agent_id, parent_id=None, depth=0,
                                            count=dropped)  # fmt: skip
                        batch, dropped = [gap, event], 0
                    for item in batch:
                        try:
                            yield item
                        except GeneratorExit:  # the consumer left: stop the run, then end quietly
                            tg.cancel_scope.cancel()
                            return
        if failure:
            raise failure[0]
        yield outcome[0]

    def completion_sync(self, query: str, context: object, *, on_event: EventCallback | None = None) -> RLMResult:
        """`completion` for synchronous code (must not be called from a running event loop)."""
        return anyio.run(functools.partial(self.completion, query, context, on_event=on_event))

    async def aclose(self) -> None:
        """Close the API clients of the models this RLM made from strings."""
        for provider in self._owned:
            close = getattr(provider, "aclose", None)
            if close is not None:
                await close()

    async def __aenter__(self) -> RLM:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    def _limiter(self) -> anyio.CapacityLimiter:
        slots = self._provider_slots
        return slots if isinstance(slots, anyio.CapacityLimiter) else anyio.CapacityLimiter(slots)

    def _slots(self) -> EnvironmentSlots:
        slots = self._environment_slots
        return slots if isinstance(slots, EnvironmentSlots) else EnvironmentSlots(slots)


def _environment_factory(choice: EnvironmentChoice) -> Callable[[], Environment]:
    if choice == "local":
        return LocalEnvironment
    if choice == "e2b":
        try:
            from rlm_async.environments.e2b import E2BEnvironment
        except ImportError as exc:
            raise ConfigurationError("environment='e2b' needs the extra: pip install 'rlm-async[e2b]'") from exc
        return E2BEnvironment
    if callable(choice):
        return choice
    raise ConfigurationError(f"environment must be 'local', 'e2b' or a factory of Environments, got {choice!r}")
