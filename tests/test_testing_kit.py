"""ScriptedProvider and FunctionProvider: what users test their pipelines with."""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from rlm_async.providers.base import Completion, Message, TokenUsage
from rlm_async.testing import FunctionProvider, ScriptedProvider

HELLO = [Message("user", "hello world!")]


async def test_steps_play_in_order_and_calls_are_kept() -> None:
    async def responder(messages: Sequence[Message]) -> str:
        return f"echo {messages[-1].content}"

    model = ScriptedProvider(["first", ValueError("second fails"), responder, lambda m: "sync fn"])
    assert (await model.complete(HELLO, max_output_tokens=100)).text == "first"
    with pytest.raises(ValueError, match="second fails"):
        await model.complete(HELLO, max_output_tokens=100)
    assert (await model.complete(HELLO, max_output_tokens=7)).text == "echo hello world!"
    assert (await model.complete(HELLO, max_output_tokens=100)).text == "sync fn"
    assert [c.max_output_tokens for c in model.calls] == [100, 100, 7, 100]
    assert model.calls[0].messages == tuple(HELLO)
    model.assert_complete()


async def test_running_out_and_leftovers_are_reported() -> None:
    model = ScriptedProvider(["only", "unused"])
    await model.complete(HELLO, max_output_tokens=10)
    with pytest.raises(AssertionError, match="1 of 2 steps unused"):
        model.assert_complete()
    await model.complete(HELLO, max_output_tokens=10)
    with pytest.raises(RuntimeError, match="ran out of steps after 2 calls"):
        await model.complete(HELLO, max_output_tokens=10)


async def test_usage_counts_and_output_cap() -> None:
    model = FunctionProvider(lambda m: "x" * 100, name="f")
    full = await model.complete(HELLO, max_output_tokens=1000)
    assert (full.usage, full.finish_reason, full.model) == (TokenUsage(3, 25), "stop", "f")
    cut = await model.complete(HELLO, max_output_tokens=10)
    assert (cut.text, cut.usage.output_tokens, cut.finish_reason) == ("x" * 40, 10, "length")


async def test_a_completion_step_is_returned_as_is() -> None:
    canned = Completion("c", TokenUsage(1, 2), "other-model", "stop")
    assert await ScriptedProvider([canned]).complete(HELLO, max_output_tokens=5) is canned


def test_prices() -> None:
    assert FunctionProvider(lambda m: "").cost_usd(TokenUsage(10, 10)) is None
    priced = FunctionProvider(lambda m: "", input_price=1.0, output_price=3.0)
    assert priced.cost_usd(TokenUsage(1_000_000, 1_000_000)) == pytest.approx(4.0)
