"""Limits (frozen settings), Usage (counters) and Budget: the one ledger of a whole run.

Every provider call in the recursion tree goes through `Budget.reserve` before it is sent
and `commit` (or `release`) after. A reservation holds one call, an upper bound of the
input tokens, the output tokens the provider will be allowed to produce, and their price,
so concurrent calls can never overshoot a limit between them: a call that could exceed
a limit is refused with `BudgetExceeded` and never leaves the process.

The budget belongs to one event loop; `reserve` has no await in it, so it is atomic there.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, fields

from rlm_async.errors import BudgetExceeded, ConfigurationError
from rlm_async.providers.base import Completion, Message, Provider, TokenUsage

PER_MESSAGE_TOKEN_OVERHEAD = 8
"""Tokens a chat template may add around each message (role markers, separators)."""


def input_token_bound(messages: Sequence[Message]) -> int:
    """An upper bound of the input tokens of `messages`.

    Byte-level BPE tokenizers never make more tokens than UTF-8 bytes, so bytes plus a
    per-message allowance bounds what any provider will count.
    """
    return sum(len(m.content.encode("utf-8", "surrogatepass")) + PER_MESSAGE_TOKEN_OVERHEAD for m in messages)


@dataclass(frozen=True, slots=True)
class Limits:
    """Hard limits for one run, covering the root agent and every descendant.

    `max_depth=1` means only the root has a REPL (the paper's setting); `rlm_query` at the
    deepest level falls back to a plain model call. `max_iterations` is per agent.
    `max_output_tokens` caps what one call may produce; `max_output_chars` caps the REPL
    output fed back to the model per turn; `cell_timeout` bounds one code cell in seconds.
    """

    max_tokens: int | None = None
    max_cost_usd: float | None = None
    max_calls: int | None = None
    max_depth: int = 1
    max_iterations: int = 30
    max_seconds: float | None = None
    max_output_tokens: int = 16_384
    max_output_chars: int = 20_000
    cell_timeout: float = 300.0

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if value is None and f.default is None:
                continue
            integral = f.name not in {"max_cost_usd", "max_seconds", "cell_timeout"}
            ok_type = (int,) if integral else (int, float)
            if isinstance(value, bool) or not isinstance(value, ok_type):
                kind = "an int" if integral else "a number"
                raise ConfigurationError(f"Limits.{f.name} must be {kind}, got {value!r}")
            if not math.isfinite(value) or value <= 0:
                raise ConfigurationError(f"Limits.{f.name} must be positive, got {value!r}")


@dataclass(slots=True)
class UsageTotals:
    """Counters of provider calls. `cost_usd` is None once any counted call had no known price."""

    calls: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    cached_input_tokens: int = 0
    reasoning_tokens: int = 0
    cost_usd: float | None = 0.0

    @property
    def total_tokens(self) -> int:
        return self.input_tokens + self.output_tokens

    def add(self, usage: TokenUsage, cost_usd: float | None) -> None:
        self.calls += 1
        self.input_tokens += usage.input_tokens
        self.output_tokens += usage.output_tokens
        self.cached_input_tokens += usage.cached_input_tokens
        self.reasoning_tokens += usage.reasoning_tokens
        self.cost_usd = None if self.cost_usd is None or cost_usd is None else self.cost_usd + cost_usd


@dataclass(slots=True)
class Usage(UsageTotals):
    """Totals of a run, children included, also broken down per model name and per depth.
    `sandbox_seconds` adds up the lifetimes of billed sandboxes (E2B)."""

    by_model: dict[str, UsageTotals] = field(default_factory=dict)
    by_depth: dict[int, UsageTotals] = field(default_factory=dict)
    sandbox_seconds: float = 0.0

    def record(self, model: str, depth: int, usage: TokenUsage, cost_usd: float | None) -> None:
        self.add(usage, cost_usd)
        self.by_model.setdefault(model, UsageTotals()).add(usage, cost_usd)
        self.by_depth.setdefault(depth, UsageTotals()).add(usage, cost_usd)


@dataclass(slots=True)
class Reservation:
    """What one in-flight call may spend. Commit or release it exactly once."""

    model: str
    depth: int
    input_tokens: int
    max_output_tokens: int
    cost_usd: float
    open: bool = True

    @property
    def tokens(self) -> int:
        return self.input_tokens + self.max_output_tokens


class Budget:
    """The tree-wide ledger of one run: spent usage plus what in-flight calls have reserved."""

    def __init__(self, limits: Limits, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.limits = limits
        self.usage = Usage()
        self._clock = clock
        self.started_at = clock()
        self.deadline = None if limits.max_seconds is None else self.started_at + limits.max_seconds
        self._reserved_calls = 0
        self._reserved_tokens = 0
        self._reserved_cost = 0.0

    def seconds_left(self) -> float | None:
        return None if self.deadline is None else self.deadline - self._clock()

    def reserve(self, provider: Provider, messages: Sequence[Message], depth: int) -> Reservation:
        """Reserve one call to `provider`, or raise BudgetExceeded without changing anything."""
        limits = self.limits
        left = self.seconds_left()
        if left is not None and left <= 0:
            raise BudgetExceeded("max_seconds", f"max_seconds={limits.max_seconds} reached")
        if limits.max_calls is not None and self.usage.calls + self._reserved_calls >= limits.max_calls:
            raise BudgetExceeded("max_calls", f"max_calls={limits.max_calls} reached")
        input_tokens = input_token_bound(messages)
        max_output = limits.max_output_tokens
        if limits.max_tokens is not None:
            free = limits.max_tokens - self.usage.total_tokens - self._reserved_tokens
            max_output = min(max_output, free - input_tokens)
            if max_output < 1:
                raise BudgetExceeded(
                    "max_tokens",
                    f"max_tokens={limits.max_tokens}: {max(free, 0)} tokens left, "
                    f"this call needs up to {input_tokens} input tokens plus output",
                )
        max_output, cost_usd = self._affordable(provider, input_tokens, max_output)
        reservation = Reservation(provider.name, depth, input_tokens, max_output, cost_usd)
        self._reserved_calls += 1
        self._reserved_tokens += reservation.tokens
        self._reserved_cost += cost_usd
        return reservation

    def _affordable(self, provider: Provider, input_tokens: int, max_output: int) -> tuple[int, float]:
        """Shrink `max_output` to what the dollars left can pay for; return it with its price."""
        limit = self.limits.max_cost_usd
        if limit is None:
            return max_output, 0.0
        spent = self.usage.cost_usd
        # Worst case: every input token written to a prompt cache, the dearest way to send it.
        price_in = provider.cost_usd(TokenUsage(input_tokens, 0, cache_write_tokens=input_tokens))
        price_all = provider.cost_usd(TokenUsage(input_tokens, max_output, cache_write_tokens=input_tokens))
        if spent is None or price_in is None or price_all is None:
            raise ConfigurationError(f"max_cost_usd is set but {provider.name!r} has no known price")
        free = limit - spent - self._reserved_cost
        if price_all > free and price_all > price_in:
            per_token = (price_all - price_in) / max_output
            max_output = math.floor((free - price_in) / per_token)
            price_all = price_in + per_token * max_output
        if max_output < 1 or price_all > free:
            raise BudgetExceeded(
                "max_cost_usd", f"max_cost_usd={limit}: ${max(free, 0):.6f} left, not enough for this call"
            )
        return max_output, price_all

    def commit(self, reservation: Reservation, completion: Completion, cost_usd: float | None) -> None:
        """Record what a call really used and free the rest of its reservation."""
        self._close(reservation)
        self.usage.record(reservation.model, reservation.depth, completion.usage, cost_usd)

    def release(self, reservation: Reservation) -> None:
        """Free a reservation whose call failed before producing a usable response."""
        self._close(reservation)

    def _close(self, reservation: Reservation) -> None:
        if not reservation.open:
            raise RuntimeError("reservation already committed or released")
        reservation.open = False
        self._reserved_calls -= 1
        self._reserved_tokens -= reservation.tokens
        self._reserved_cost -= reservation.cost_usd

    def describe_remaining(self) -> str:
        """One line for the model: what it may still spend."""
        limits, usage, parts = self.limits, self.usage, []
        if limits.max_calls is not None:
            parts.append(f"{limits.max_calls - usage.calls} model calls")
        if limits.max_tokens is not None:
            parts.append(f"{limits.max_tokens - usage.total_tokens:,} tokens")
        if limits.max_cost_usd is not None and usage.cost_usd is not None:
            parts.append(f"${limits.max_cost_usd - usage.cost_usd:.4f}")
        left = self.seconds_left()
        if left is not None:
            parts.append(f"{max(left, 0):.0f} s")
        return ", ".join(parts) + " left" if parts else "no budget limits"
