"""Property: over random recursion trees — fan-out, depth, reply sizes, latencies, failures —
no limit is ever exceeded, and the usage a run reports is exactly what its providers reported."""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass, field

import anyio
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from rlm_async import RLM, Limits, ProviderError
from rlm_async.budget import input_token_bound
from rlm_async.providers.base import Completion, Message
from rlm_async.testing import FunctionProvider


@dataclass
class Ledger:
    """What the providers themselves saw and returned."""

    completions: list[Completion] = field(default_factory=list)
    in_flight: int = 0
    peak: int = 0
    violations: list[str] = field(default_factory=list)


class RecordingProvider(FunctionProvider):
    def __init__(self, ledger: Ledger, rng: random.Random, failure_rate: float, **kwargs: object) -> None:
        super().__init__(self._respond, **kwargs)  # type: ignore[arg-type]
        self.ledger, self.rng, self.failure_rate = ledger, rng, failure_rate

    async def complete(self, messages: Sequence[Message], *, max_output_tokens: int) -> Completion:
        ledger = self.ledger
        ledger.in_flight += 1
        ledger.peak = max(ledger.peak, ledger.in_flight)
        try:
            completion = await super().complete(messages, max_output_tokens=max_output_tokens)
        finally:
            ledger.in_flight -= 1
        if completion.usage.output_tokens > max_output_tokens:
            ledger.violations.append(f"{completion.usage.output_tokens} > asked {max_output_tokens}")
        if completion.usage.input_tokens > input_token_bound(messages):
            ledger.violations.append("input tokens above the reserved bound")
        ledger.completions.append(completion)
        return completion

    async def _respond(self, messages: Sequence[Message]) -> str:
        rng = self.rng
        await anyio.sleep(rng.choice([0, 0, 0.001, 0.01, 0.03]))
        if rng.random() < self.failure_rate:
            raise RuntimeError("injected failure")
        if messages[0].role != "system":  # llm_query
            return "w" * rng.randrange(0, 3000)
        first_turn = len(messages) == 2
        action = rng.choice(
            ["fan_out", "recurse"] if first_turn else ["fan_out", "recurse", "final", "ramble", "draft"]
        )
        k = rng.randrange(1, 5)
        if action == "fan_out":
            return f"```repl\nr = llm_query_batched(['q' * {rng.randrange(1, 4000)}] * {k})\nprint(len(r))\n```"
        if action == "recurse":
            return f"```repl\nprint(rlm_query_batched(['sub task'] * {min(k, 2)}, ['ctx {k}'] * {min(k, 2)}))\n```"
        if action == "draft":
            return "```repl\nanswer['content'] = 'draft'\nprint(llm_query('one more'))\n```"
        if action == "final":
            return "FINAL(done)"
        return "thinking " * rng.randrange(1, 500)


limits_strategy = st.builds(
    Limits,
    max_tokens=st.one_of(st.none(), st.integers(3_000, 20_000), st.integers(20_000, 400_000)),
    max_cost_usd=st.one_of(st.none(), st.floats(0.0005, 0.5)),
    max_calls=st.one_of(st.none(), st.integers(1, 80)),
    max_depth=st.sampled_from([2, 3, 1]),
    max_iterations=st.integers(2, 4),
    max_output_tokens=st.sampled_from([64, 500, 2000, 16_384]),
)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    limits=limits_strategy,
    seed=st.integers(0, 2**32),
    failure_rate=st.sampled_from([0.0, 0.05, 0.2]),
    concurrency=st.integers(1, 8),
)
def test_no_limit_is_ever_exceeded(limits: Limits, seed: int, failure_rate: float, concurrency: int) -> None:
    ledger = Ledger()
    rng = random.Random(seed)
    model = RecordingProvider(ledger, rng, failure_rate, name="m", input_price=0.5, output_price=4.0)
    rlm = RLM(model, limits=limits, max_concurrency=concurrency, max_environments=4)
    try:
        result = anyio.run(rlm.completion, "q", "some context")
        usage, stop = result.usage, result.stop_reason
        event(f"agents: {len(result.trace.agent_ids())}")
    except ProviderError as error:  # the root's own call failed: the run ends, usage is still reported
        assert error.usage is not None
        usage, stop = error.usage, "provider error"
    event(f"stop: {stop}")
    event(f"calls: {'0-4' if usage.calls < 5 else '5-19' if usage.calls < 20 else '20+'}")

    assert ledger.violations == []
    assert ledger.peak <= concurrency
    assert usage.calls == len(ledger.completions)
    assert usage.input_tokens == sum(c.usage.input_tokens for c in ledger.completions)
    assert usage.output_tokens == sum(c.usage.output_tokens for c in ledger.completions)
    expected_cost = sum(model.cost_usd(c.usage) or 0 for c in ledger.completions)
    assert usage.cost_usd is not None and abs(usage.cost_usd - expected_cost) < 1e-9
    if limits.max_calls is not None:
        assert usage.calls <= limits.max_calls
    if limits.max_tokens is not None:
        assert usage.total_tokens <= limits.max_tokens
    if limits.max_cost_usd is not None:
        assert usage.cost_usd <= limits.max_cost_usd + 1e-12
    assert max(usage.by_depth, default=0) <= limits.max_depth
    assert sum(t.calls for t in usage.by_depth.values()) == usage.calls
