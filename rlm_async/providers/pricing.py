"""Dollars from token usage: prices the user gives, else the genai-prices database.

A model the database does not know, with no prices given, costs None: a dollar limit with
such a model is refused when the RLM is made, never enforced on guesses.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any

from rlm_async.errors import ConfigurationError
from rlm_async.providers.base import TokenUsage

MILLION = 1_000_000


@dataclass(frozen=True, slots=True)
class Prices:
    """Dollars per million tokens. Cached input and cache writes default to the input price."""

    input: float
    output: float
    cached_input: float | None = None
    cache_write: float | None = None

    def __post_init__(self) -> None:
        for name in ("input", "output", "cached_input", "cache_write"):
            value = getattr(self, name)
            if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0):
                raise ConfigurationError(f"Prices.{name} must be a number ≥ 0, got {value!r}")

    def cost_usd(self, usage: TokenUsage) -> float:
        cached = self.input if self.cached_input is None else self.cached_input
        written = self.input if self.cache_write is None else self.cache_write
        fresh = usage.input_tokens - usage.cached_input_tokens - usage.cache_write_tokens
        return (
            fresh * self.input
            + usage.cached_input_tokens * cached
            + usage.cache_write_tokens * written
            + usage.output_tokens * self.output
        ) / MILLION


class Pricer:
    """Prices one model's usage. `prices` wins; else genai-prices by model, provider and API URL."""

    def __init__(self, model: str, *, provider_id: str, base_url: str | None, prices: Prices | None) -> None:
        self.model, self.provider_id, self.base_url, self.prices = model, provider_id, base_url, prices

    def cost_usd(self, usage: TokenUsage) -> float | None:
        if self.prices is not None:
            return self.prices.cost_usd(usage)
        return _database_cost(self.model, self.provider_id, self.base_url, usage)


def _database_cost(model: str, provider_id: str, base_url: str | None, usage: TokenUsage) -> float | None:
    genai_prices = _genai_prices()
    request = genai_prices.Usage(
        input_tokens=usage.input_tokens,
        output_tokens=usage.output_tokens,
        cache_read_tokens=usage.cached_input_tokens,
        cache_write_tokens=usage.cache_write_tokens,
    )
    try:
        if base_url is None:
            price = genai_prices.calc_price(request, model_ref=model, provider_id=provider_id)
        else:
            price = genai_prices.calc_price(request, model_ref=model, provider_api_url=base_url)
    except LookupError:
        return None
    return float(price.total_price)


@functools.cache
def _genai_prices() -> Any:
    import genai_prices  # slow to import: only when a price is needed

    return genai_prices
