"""The event stream, callbacks, and traces: what a run shows while it runs and afterwards."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Sequence
from pathlib import Path

import anyio
import pytest

from rlm_async import RLM, Limits, ProviderError, RLMResult, Trace
from rlm_async.events import (
    AgentFinished,
    AgentStarted,
    CodeExecuted,
    Event,
    EventsDropped,
    LimitHit,
    ModelCalled,
    RunFinished,
    RunStarted,
    SubcallFinished,
    SubcallStarted,
)
from rlm_async.providers.base import Message
from rlm_async.testing import FunctionProvider, ScriptedProvider


def repl(code: str) -> str:
    return f"```repl\n{code}\n```"


def tree_model() -> FunctionProvider:
    """Root fans out to two child agents; each child asks one llm_query and answers."""

    def respond(messages: Sequence[Message]) -> str:
        if messages[0].role != "system":
            return "leaf answer"
        if "output:" in messages[-1].content:
            return "FINAL(done)"
        if "sub task" in messages[1].content:
            return repl("print(llm_query('leaf'))")
        return repl("print(rlm_query_batched(['sub task a', 'sub task b']))")

    return FunctionProvider(respond, name="m", input_price=1.0, output_price=2.0)


async def test_stream_yields_every_kind_of_event_then_the_result() -> None:
    items = [item async for item in RLM(tree_model(), limits=Limits(max_depth=2)).stream("q", "ctx")]
    *events, result = items
    assert isinstance(result, RLMResult) and result.answer == "done"
    assert isinstance(events[0], RunStarted) and isinstance(events[-1], RunFinished)
    kinds = {type(e) for e in events}
    assert {AgentStarted, ModelCalled, CodeExecuted, SubcallStarted, SubcallFinished, AgentFinished} <= kinds
    assert all(e.run_id == result.run_id for e in events)
    assert events == result.trace.events
    children = [e for e in events if isinstance(e, AgentStarted) and e.depth == 1]
    assert {c.parent_id for c in children} == {events[0].agent_id}
    assert all(isinstance(e, Event) and e.time > 0 for e in events)


async def test_a_slow_consumer_never_stalls_the_run() -> None:
    model = ScriptedProvider([repl(f"print({i})") for i in range(30)] + ["FINAL(x)"])
    items = []
    started = time.monotonic()
    async for item in RLM(model, limits=Limits(max_iterations=40)).stream("q", "ctx", buffer=5):
        if not items:
            await anyio.sleep(1.0)  # the run goes on meanwhile
        items.append(item)
    dropped = [e for e in items if isinstance(e, EventsDropped)]
    result = items[-1]
    assert isinstance(result, RLMResult) and result.answer == "x"
    assert len(dropped) == 1 and dropped[0].count > 0
    assert len(items) - 2 + dropped[0].count == len(result.trace.events)
    assert time.monotonic() - started < 2.5


async def test_errors_of_the_run_are_raised_from_the_iteration() -> None:
    model = ScriptedProvider([RuntimeError("api down")])
    with pytest.raises(ProviderError, match="api down"):
        async for _ in RLM(model).stream("q", "ctx"):
            pass


async def test_leaving_the_loop_early_cancels_the_run() -> None:
    model = ScriptedProvider([repl("import time\ntime.sleep(60)")])
    started = time.monotonic()
    async with contextlib.aclosing(RLM(model).stream("q", "ctx")) as events:
        async for event in events:
            if isinstance(event, ModelCalled):  # the cell (a 60 s sleep) starts next
                break
    assert time.monotonic() - started < 10


async def test_limits_are_reported_as_events() -> None:
    model = ScriptedProvider([repl("x = 1"), "FINAL(late)"])
    result = await RLM(model, limits=Limits(max_iterations=1)).completion("q", "ctx")
    assert [e.limit for e in result.trace.events if isinstance(e, LimitHit)] == ["max_iterations"]
    slow = ScriptedProvider([repl("import time\ntime.sleep(30)")])
    result = await RLM(slow, limits=Limits(max_seconds=0.5)).completion("q", "ctx")
    assert [e.limit for e in result.trace.events if isinstance(e, LimitHit)] == ["max_seconds"]
    assert isinstance(result.trace.events[-1], RunFinished) and result.trace.events[-1].stop_reason == "max_seconds"


async def test_trace_summaries_per_node_and_for_the_tree() -> None:
    result = await RLM(tree_model(), limits=Limits(max_depth=2)).completion("q", "ctx")
    trace = result.trace
    root = trace.agent_ids()[0]
    whole = trace.summary(root, with_descendants=True)
    own = trace.summary(root)
    assert whole.calls == result.usage.calls == own.calls + sum(trace.summary(c).calls for c in trace.children(root))
    assert whole.input_tokens == result.usage.input_tokens
    assert whole.cost_usd == pytest.approx(result.usage.cost_usd)
    assert own.stop_reason == "final" and own.seconds is not None and own.seconds > 0
    assert len(trace.descendants(root)) == 2


async def test_trace_of_a_100_mb_context_run_stays_small(tmp_path: Path) -> None:
    context = "lorem ipsum dolor sit amet " * (100 * 2**20 // 27)
    model = ScriptedProvider([repl("print(context[:50_000])"), repl("print(len(context))"), "FINAL(done)"])
    result = await RLM(model).completion("q " * 50_000, context)
    path = tmp_path / "trace.jsonl"
    result.trace.save(path)
    assert path.stat().st_size < 1_000_000
    assert Trace.load(path).events == result.trace.events
