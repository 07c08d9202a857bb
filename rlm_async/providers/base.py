"""The Provider protocol: what the agent loop needs from a model API."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal, Protocol, runtime_checkable

Role = Literal["system", "user", "assistant"]


@dataclass(frozen=True, slots=True)
class Message:
    role: Role
    content: str


@dataclass(frozen=True, slots=True)
class TokenUsage:
    """Tokens of one call, as the API reported them. `input_tokens` includes cached ones."""

    input_tokens: int = 0
    output_tokens: int = 0
    cached_input_tokens: int = 0
    cache_write_tokens: int = 0
    reasoning_tokens: int = 0

    @property
    def total_tokens(self) -> int:
        return self.input_tokens + self.output_tokens


@dataclass(frozen=True, slots=True)
class Completion:
    text: str
    usage: TokenUsage
    model: str
    finish_reason: str = "stop"


@runtime_checkable
class Provider(Protocol):
    """One model behind one API. `name` is how usage reports and `model=` in the REPL refer to it.

    `complete` must not produce more than `max_output_tokens`; `cost_usd` prices a usage,
    returning None when the price is unknown (a dollar limit then refuses to start).
    """

    name: str

    async def complete(self, messages: Sequence[Message], *, max_output_tokens: int) -> Completion: ...

    def cost_usd(self, usage: TokenUsage) -> float | None: ...
