"""FunctionProvider and ScriptedProvider."""

from __future__ import annotations

import inspect
import math
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

import anyio

from rlm_async.providers.base import Completion, Message, TokenUsage

Reply = str | Completion
Responder = Callable[[Sequence[Message]], Reply | Awaitable[Reply]]
Step = str | Completion | BaseException | Responder
"""A reply, an exception to raise, or a function of the messages returning a reply."""


def count_tokens(text: str) -> int:
    """The testing providers' token count: one per 4 characters, rounded up."""
    return math.ceil(len(text) / 4)


@dataclass(frozen=True, slots=True)
class Call:
    """What a provider was asked: a snapshot of the messages and the output cap."""

    messages: tuple[Message, ...]
    max_output_tokens: int


class FunctionProvider:
    """Answers every call with `respond(messages)` (sync or async).

    Replies longer than `max_output_tokens` are cut, as a real API would, with
    finish_reason "length". Prices are dollars per million tokens; None means unknown.
    """

    def __init__(
        self,
        respond: Responder,
        *,
        name: str = "function",
        latency: float = 0.0,
        input_price: float | None = None,
        output_price: float | None = None,
    ) -> None:
        self.respond = respond
        self.name = name
        self.latency = latency
        self.input_price = input_price
        self.output_price = output_price
        self.calls: list[Call] = []

    async def complete(self, messages: Sequence[Message], *, max_output_tokens: int) -> Completion:
        self.calls.append(Call(tuple(messages), max_output_tokens))
        if self.latency:
            await anyio.sleep(self.latency)
        reply = await self._reply(messages)
        if isinstance(reply, Completion):
            return reply
        finish = "stop"
        if count_tokens(reply) > max_output_tokens:
            reply, finish = reply[: max_output_tokens * 4], "length"
        usage = TokenUsage(sum(count_tokens(m.content) for m in messages), count_tokens(reply))
        return Completion(reply, usage, self.name, finish)

    async def _reply(self, messages: Sequence[Message]) -> Reply:
        reply: Any = self.respond(messages)
        return await reply if inspect.isawaitable(reply) else reply  # type: ignore[no-any-return]

    def cost_usd(self, usage: TokenUsage) -> float | None:
        if self.input_price is None or self.output_price is None:
            return None
        return (usage.input_tokens * self.input_price + usage.output_tokens * self.output_price) / 1e6


class ScriptedProvider(FunctionProvider):
    """Plays `steps` in order, one per call: a reply, an exception (raised), or a responder.

    `calls` keeps what each call was asked; `assert_complete()` fails if steps are left over.
    Running out of steps raises an error, which the run reports as a ProviderError.
    """

    def __init__(self, steps: Sequence[Step], *, name: str = "scripted", **options: Any) -> None:
        super().__init__(self._next_step, name=name, **options)
        self.steps = list(steps)
        self.used = 0

    async def _next_step(self, messages: Sequence[Message]) -> Reply:
        if self.used >= len(self.steps):
            raise RuntimeError(f"ScriptedProvider {self.name!r} ran out of steps after {self.used} calls")
        step = self.steps[self.used]
        self.used += 1
        if isinstance(step, BaseException):
            raise step
        if isinstance(step, (str, Completion)):
            return step
        reply: Any = step(messages)
        return await reply if inspect.isawaitable(reply) else reply  # type: ignore[no-any-return]

    def assert_complete(self) -> None:
        left = len(self.steps) - self.used
        if left:
            raise AssertionError(f"ScriptedProvider {self.name!r}: {left} of {len(self.steps)} steps unused")
