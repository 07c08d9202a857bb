"""Limits validation and the reserve/commit/release ledger."""

from __future__ import annotations

import pytest

from rlm_async import BudgetExceeded, ConfigurationError, Limits
from rlm_async.budget import Budget, input_token_bound
from rlm_async.providers.base import Completion, Message, TokenUsage
from rlm_async.testing import FunctionProvider

MESSAGES = [Message("user", "x" * 92)]  # bound: 92 + 8 = 100 tokens


def priced(input_price: float = 1.0, output_price: float = 2.0) -> FunctionProvider:
    return FunctionProvider(lambda m: "ok", name="p", input_price=input_price, output_price=output_price)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"max_tokens": 0},
        {"max_calls": -1},
        {"max_cost_usd": 0.0},
        {"max_seconds": float("nan")},
        {"max_depth": 0},
        {"max_iterations": 1.5},
        {"max_calls": True},
        {"max_tokens": "10"},
        {"cell_timeout": float("inf")},
        {"max_output_chars": 0},
    ],
)
def test_invalid_limits_are_refused(kwargs: dict[str, object]) -> None:
    with pytest.raises(ConfigurationError, match=next(iter(kwargs))):
        Limits(**kwargs)  # type: ignore[arg-type]


def test_limits_are_frozen() -> None:
    with pytest.raises(AttributeError):
        Limits().max_calls = 3  # type: ignore[misc]


def test_input_bound_counts_utf8_bytes() -> None:
    assert input_token_bound([Message("user", "é" * 10)]) == 20 + 8


def test_reserve_commit_release_accounting() -> None:
    budget = Budget(Limits(max_tokens=1000, max_calls=3, max_output_tokens=200))
    first = budget.reserve(priced(), MESSAGES, 0)
    assert (first.input_tokens, first.max_output_tokens) == (100, 200)
    second = budget.reserve(priced(), MESSAGES, 1)
    budget.commit(first, Completion("ok", TokenUsage(25, 10), "p"), None)
    budget.release(second)
    assert (budget.usage.calls, budget.usage.total_tokens) == (1, 35)
    assert budget.usage.by_depth[0].calls == 1 and 1 not in budget.usage.by_depth
    with pytest.raises(RuntimeError):
        budget.release(first)


def test_concurrent_reservations_cannot_overshoot_calls() -> None:
    budget = Budget(Limits(max_calls=2))
    budget.reserve(priced(), MESSAGES, 0)
    budget.reserve(priced(), MESSAGES, 0)
    with pytest.raises(BudgetExceeded) as refused:
        budget.reserve(priced(), MESSAGES, 0)
    assert refused.value.limit == "max_calls"


def test_output_is_capped_to_the_tokens_left() -> None:
    budget = Budget(Limits(max_tokens=150, max_output_tokens=1000))
    assert budget.reserve(priced(), MESSAGES, 0).max_output_tokens == 50
    with pytest.raises(BudgetExceeded, match="max_tokens"):
        budget.reserve(priced(), MESSAGES, 0)


def test_output_is_capped_to_the_dollars_left() -> None:
    # $1/M input, $2/M output: 100 input tokens cost $0.0001; $0.0003 leaves room for 100 output tokens.
    budget = Budget(Limits(max_cost_usd=0.0003, max_output_tokens=1000))
    reservation = budget.reserve(priced(), MESSAGES, 0)
    assert reservation.max_output_tokens == 100
    assert reservation.cost_usd == pytest.approx(0.0003)
    with pytest.raises(BudgetExceeded, match="max_cost_usd"):
        budget.reserve(priced(), MESSAGES, 0)


def test_unpriced_model_with_a_dollar_limit_is_a_configuration_error() -> None:
    budget = Budget(Limits(max_cost_usd=1.0))
    with pytest.raises(ConfigurationError, match="no known price"):
        budget.reserve(FunctionProvider(lambda m: "x", name="free"), MESSAGES, 0)


def test_deadline_refuses_calls() -> None:
    now = [0.0]
    budget = Budget(Limits(max_seconds=10), clock=lambda: now[0])
    budget.reserve(priced(), MESSAGES, 0)
    now[0] = 10.0
    with pytest.raises(BudgetExceeded, match="max_seconds"):
        budget.reserve(priced(), MESSAGES, 0)


def test_describe_remaining() -> None:
    budget = Budget(Limits(max_calls=5, max_tokens=1000, max_cost_usd=1.0))
    assert budget.describe_remaining() == "5 model calls, 1,000 tokens, $1.0000 left"
    assert Budget(Limits()).describe_remaining() == "no budget limits"
