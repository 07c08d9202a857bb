"""Whole runs: RLM → Agent → LocalEnvironment → sub-calls, with scripted models."""

from __future__ import annotations

import time
from collections.abc import Sequence

import anyio
import pytest

from rlm_async import (
    RLM,
    BudgetExceeded,
    ConfigurationError,
    ContextError,
    EnvironmentSlots,
    LimitReached,
    Limits,
    ProviderError,
    Trace,
)
from rlm_async.events import AgentFinished, AgentStarted, BudgetRefused, CodeExecuted
from rlm_async.providers.base import Message
from rlm_async.testing import FunctionProvider, ScriptedProvider

CONTEXT = "lorem ipsum " * 200 + "The magic number is 4217. " + "dolor sit " * 200


def repl(code: str, prose: str = "Let me look.") -> str:
    return f"{prose}\n```repl\n{code}\n```"


def last_user(provider: ScriptedProvider, call: int) -> str:
    return provider.calls[call].messages[-1].content


async def run(steps: Sequence[object], context: object = CONTEXT, **options: object) -> tuple[object, ScriptedProvider]:
    model = ScriptedProvider(steps)  # type: ignore[arg-type]
    result = await RLM(model, **options).completion("What is the magic number?", context)  # type: ignore[arg-type]
    return result, model


async def test_final_in_code_ends_the_run() -> None:
    result, model = await run([repl("import re\nFINAL(re.search(r'number is (\\d+)', context).group(1))")])
    assert (result.answer, result.stop_reason) == ("4217", "final")  # type: ignore[attr-defined]
    model.assert_complete()


async def test_first_message_describes_context_and_budget() -> None:
    _, model = await run(["FINAL(x)"], limits=Limits(max_calls=9, max_iterations=4))
    first = model.calls[0].messages
    assert first[0].role == "system" and "llm_query_batched" in first[0].content
    assert f"`context` is a str of {len(CONTEXT):,} characters" in first[1].content
    assert "What is the magic number?" in first[1].content
    assert "[turn 1 of 4; 9 model calls left]" in first[1].content


@pytest.mark.parametrize(
    "reply",
    [
        "I know it.\nFINAL(4217)",
        "FINAL('4217')",
        repl("answer['content'] = '4217'\nanswer['ready'] = True"),
        repl("n = '4217'\nFINAL_VAR('n')"),
    ],
)
async def test_every_way_to_submit(reply: str) -> None:
    result, _ = await run([reply])
    assert (result.answer, result.stop_reason) == ("4217", "final")  # type: ignore[attr-defined]


async def test_final_var_in_text_is_resolved_after_the_code_beside_it() -> None:
    result, _ = await run([repl("n = str(4200 + 17)") + "\nFINAL_VAR(n)"])
    assert result.answer == "4217"  # type: ignore[attr-defined]


async def test_final_beside_code_counts_when_the_output_shows_it() -> None:
    result, model = await run([repl("print(4217)") + "\nFINAL(4217)"])
    assert result.answer == "4217" and len(model.calls) == 1  # type: ignore[attr-defined]


async def test_final_beside_code_is_held_back_when_the_output_disagrees() -> None:
    result, model = await run([repl("print(len(context))") + "\nFINAL(4217)", "FINAL(4217)"])
    assert "was not accepted" in last_user(model, 1) and str(len(CONTEXT)) in last_user(model, 1)
    assert result.answer == "4217" and len(model.calls) == 2  # type: ignore[attr-defined]


async def test_final_beside_failing_code_is_refused() -> None:
    result, model = await run([repl("1/0") + "\nFINAL(wrong)", "FINAL(right)"])
    assert "raised an error" in last_user(model, 1) and "ZeroDivisionError" in last_user(model, 1)
    assert result.answer == "right"  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("first", "feedback"),
    [
        ("FINAL_VAR(missing)", "no variable named 'missing'"),
        (repl("FINAL(4217)"), "FINAL: the answer must be a str, got int"),
        ("The number is probably 4217.", "had no ```repl block"),
        ("```repl\nprint(1)", "never closed"),
        (repl("def f(:"), "SyntaxError"),
    ],
)
async def test_model_mistakes_become_feedback(first: str, feedback: str) -> None:
    result, model = await run([first, "FINAL(done)"])
    assert feedback in last_user(model, 1)
    assert "[turn 2 of" in last_user(model, 1)
    assert (result.answer, result.stop_reason) == ("done", "final")  # type: ignore[attr-defined]


async def test_output_feedback_is_truncated_to_the_limit() -> None:
    _, model = await run([repl("print('y' * 50_000)"), "FINAL(ok)"], limits=Limits(max_output_chars=1000))
    feedback = last_user(model, 1)
    assert feedback.count("y") < 1100 and "49,001 more characters not shown" in feedback


async def test_max_iterations_gives_one_last_turn() -> None:
    steps = [repl("x = 1")] * 3 + ["FINAL(best guess)"]
    result, model = await run(steps, limits=Limits(max_iterations=3))
    assert "no turns left" in last_user(model, 3)
    assert (result.answer, result.stop_reason) == ("best guess", "max_iterations")  # type: ignore[attr-defined]
    model.assert_complete()


async def test_max_iterations_without_final_returns_the_last_reply() -> None:
    result, _ = await run([repl("x = 1"), "It is 4217, I believe."], limits=Limits(max_iterations=1))
    assert (result.answer, result.stop_reason) == ("It is 4217, I believe.", "max_iterations")  # type: ignore[attr-defined]


async def test_max_iterations_with_only_code_returns_the_draft() -> None:
    steps = [repl("answer['content'] = 'the draft'"), repl("print('still exploring')")]
    result, _ = await run(steps, limits=Limits(max_iterations=1))
    assert (result.answer, result.stop_reason) == ("the draft", "max_iterations")  # type: ignore[attr-defined]


async def test_llm_query_uses_the_sub_model_and_counts_by_depth() -> None:
    root = ScriptedProvider([repl("print(llm_query('hi'))"), "FINAL(done)"], name="root")
    sub = ScriptedProvider(["hello from sub"], name="sub")
    result = await RLM(root, sub_model=sub).completion("q", "ctx")
    assert "hello from sub" in last_user(root, 1)
    assert sub.calls[0].messages == (Message("user", "hi"),)
    assert result.usage.by_model["sub"].calls == 1 and result.usage.by_model["root"].calls == 2
    assert result.usage.by_depth[1].calls == 1 and result.usage.calls == 3


async def test_batched_subcalls_run_concurrently_and_keep_order() -> None:
    sub = FunctionProvider(lambda m: m[-1].content.upper(), name="sub", latency=0.3)
    root = ScriptedProvider([repl("print(llm_query_batched([f'p{i}' for i in range(16)]))"), "FINAL(x)"])
    started = time.perf_counter()
    await RLM(root, sub_model=sub).completion("q", "ctx")
    assert time.perf_counter() - started < 1.5
    assert str([f"P{i}" for i in range(16)]) in last_user(root, 1)


async def test_rlm_query_runs_a_child_agent_with_its_own_repl() -> None:
    root = ScriptedProvider([repl("print(rlm_query('count the words', context='a b c'))"), "FINAL(done)"])
    child = ScriptedProvider([repl("FINAL(str(len(context.split())))")], name="child")
    result = await RLM(root, child_model=child, limits=Limits(max_depth=2)).completion("q", "ctx")
    assert "3" in last_user(root, 1)
    assert "`context` is a str of 5 characters" in child.calls[0].messages[1].content
    started = [e for e in result.trace.events if isinstance(e, AgentStarted)]
    assert [(e.depth, e.parent_id) for e in started] == [(0, None), (1, started[0].agent_id)]
    assert result.usage.by_depth[1].calls == 1


async def test_rlm_query_at_max_depth_falls_back_to_llm_query() -> None:
    root = ScriptedProvider([repl("print(rlm_query('summarise', context=['x', 'y']))"), "FINAL(done)"])
    sub = ScriptedProvider(["summary"], name="sub")
    result = await RLM(root, sub_model=sub, limits=Limits(max_depth=1)).completion("q", "ctx")
    assert sub.calls[0].messages[0].content == 'summarise\n\n["x", "y"]'
    assert "summary" in last_user(root, 1)
    assert len(result.trace.agent_ids()) == 1


async def test_unknown_model_name_and_bad_child_context_are_errors_the_code_sees() -> None:
    code = "print(llm_query('a', model='nope'))\nprint(rlm_query('b', context=42))"
    root = ScriptedProvider([repl(code), "FINAL(done)"], name="root")
    await RLM(root, limits=Limits(max_depth=2)).completion("q", "ctx")
    feedback = last_user(root, 1)
    assert "[error] ConfigurationError: unknown model 'nope'; known: 'root'" in feedback
    assert "[error] ContextError: context must be str, bytes, list[str] or dict, not int" in feedback


async def test_sub_model_failure_is_an_error_string_not_a_crash() -> None:
    root = ScriptedProvider([repl("print(llm_query_batched(['ok', 'bad']))"), "FINAL(done)"])
    sub = FunctionProvider(lambda m: 1 / 0 if m[0].content == "bad" else "fine", name="sub")  # type: ignore[arg-type, return-value]
    result = await RLM(root, sub_model=sub).completion("q", "ctx")
    assert "['fine', '[error] ProviderError: sub: ZeroDivisionError: division by zero']" in last_user(root, 1)
    assert result.stop_reason == "final"


async def test_refused_subcall_reaches_the_code_then_the_run_stops() -> None:
    code = "print(llm_query('one'))\nprint(llm_query('two'))\nanswer['content'] = 'draft'"
    root = ScriptedProvider([repl(code)], name="root")
    sub = ScriptedProvider(["first answer"], name="sub")
    result = await RLM(root, sub_model=sub, limits=Limits(max_calls=2)).completion("q", "ctx")
    executed = next(e for e in result.trace.events if isinstance(e, CodeExecuted))
    assert executed.stdout == "first answer\n[error] BudgetExceeded: max_calls=2 reached\n"
    assert (result.stop_reason, result.answer, result.usage.calls) == ("max_calls", "draft", 2)
    assert any(isinstance(e, BudgetRefused) for e in result.trace.events)
    root.assert_complete()
    sub.assert_complete()


async def test_root_provider_failure_raises_with_usage_and_trace() -> None:
    model = ScriptedProvider([repl("x = 1"), TimeoutError("upstream timed out")])
    with pytest.raises(ProviderError, match="upstream timed out") as raised:
        await RLM(model).completion("q", "ctx")
    assert raised.value.usage is not None and raised.value.usage.calls == 1
    assert raised.value.trace is not None and any(isinstance(e, CodeExecuted) for e in raised.value.trace.events)
    assert isinstance(raised.value.__cause__, TimeoutError)


async def test_max_seconds_cancels_a_running_cell() -> None:
    started = time.perf_counter()
    result, _ = await run(
        [repl("answer['content'] = 'early'"), repl("import time\ntime.sleep(60)")],
        limits=Limits(max_seconds=1.5, cell_timeout=120),
    )
    assert time.perf_counter() - started < 4
    assert (result.stop_reason, result.answer) == ("max_seconds", "early")  # type: ignore[attr-defined]
    finished = [e for e in result.trace.events if isinstance(e, AgentFinished)]  # type: ignore[attr-defined]
    assert [e.stop_reason for e in finished] == ["aborted"]


async def test_max_seconds_cancels_in_flight_calls_of_children() -> None:
    root = ScriptedProvider([repl("rlm_query_batched(['a', 'b'])")])
    child = FunctionProvider(lambda m: repl("print(llm_query('slow'))"), name="child")
    sub = FunctionProvider(lambda m: "late", name="sub", latency=60)
    started = time.perf_counter()
    result = await RLM(root, sub_model=sub, child_model=child, limits=Limits(max_depth=2, max_seconds=1.5)).completion(
        "q", "c"
    )
    assert time.perf_counter() - started < 4
    assert result.stop_reason == "max_seconds" and len(result.trace.agent_ids()) == 3


async def test_raise_on_limit() -> None:
    model = ScriptedProvider([repl("answer['content'] = 'draft'"), repl("x = 2")])
    with pytest.raises(LimitReached) as raised:
        await RLM(model, limits=Limits(max_calls=1), raise_on_limit=True).completion("q", "ctx")
    assert (raised.value.limit, raised.value.answer) == ("max_calls", "draft")
    assert raised.value.usage is not None and raised.value.usage.calls == 1
    assert not isinstance(raised.value, BudgetExceeded) or raised.value.limit == "max_calls"


async def test_many_runs_share_one_loop_and_one_limiter() -> None:
    in_flight, peak = 0, 0

    async def respond(messages: Sequence[Message]) -> str:
        nonlocal in_flight, peak
        in_flight += 1
        peak = max(peak, in_flight)
        await anyio.sleep(0.05)
        in_flight -= 1
        return "FINAL(ok)" if messages[0].role == "system" else "sub"

    model = FunctionProvider(respond, name="m")
    rlm = RLM(model, max_concurrency=anyio.CapacityLimiter(3))
    results = []

    async def one() -> None:
        results.append(
            await rlm.completion(
                "q",
                "ctx",
            )
        )

    async with anyio.create_task_group() as tg:
        for _ in range(8):
            tg.start_soon(one)
    assert [r.answer for r in results] == ["ok"] * 8 and peak == 3
    assert len({r.run_id for r in results}) == 8 and all(r.usage.calls == 1 for r in results)


async def test_environment_slots_never_deadlock_a_deep_fan_out() -> None:
    def respond(messages: Sequence[Message]) -> str:
        if messages[0].role != "system":
            return "leaf"
        if len(messages) > 2:
            return "FINAL(done)"
        return repl("print(rlm_query_batched(['x', 'y', 'z']))")

    model = FunctionProvider(respond, name="m")
    slots = EnvironmentSlots(3)
    result = await RLM(model, limits=Limits(max_depth=3), max_environments=slots).completion("q", "ctx")
    assert result.answer == "done" and len(result.trace.agent_ids()) == 1 + 3 + 9
    assert slots.in_use == 0


def test_completion_sync() -> None:
    result = RLM(ScriptedProvider(["FINAL(sync)"])).completion_sync("q", "ctx")
    assert result.answer == "sync"


async def test_trace_round_trips_through_jsonl(tmp_path: object) -> None:
    from pathlib import Path

    result, _ = await run([repl("print(1)"), "FINAL(x)"])
    path = Path(str(tmp_path)) / "trace.jsonl"
    result.trace.save(path)  # type: ignore[attr-defined]
    loaded = Trace.load(path)
    assert loaded.events == result.trace.events  # type: ignore[attr-defined]
    assert loaded.outcome(loaded.agent_ids()[0]).stop_reason == "final"  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("context", "message"),
    [
        ("", "empty str"),
        ([], "empty list"),
        ({}, "empty dict"),
        (b"\xff\xfe bad", "not valid UTF-8"),
        (42, "not int"),
        ({"a", "b"}, "not set"),
        (["ok", 3], "item 1 is int"),
    ],
)
async def test_bad_contexts_are_refused_before_any_call(context: object, message: str) -> None:
    model = ScriptedProvider([])
    with pytest.raises(ContextError, match=message):
        await RLM(model).completion("q", context)
    assert model.calls == []


async def test_context_with_lone_surrogate_is_refused_before_any_call() -> None:
    model = ScriptedProvider([])
    with pytest.raises(ContextError, match="not valid Unicode"):
        await RLM(model).completion("q", "text \udcff")
    assert model.calls == []


async def test_utf8_bytes_context_is_accepted() -> None:
    result, _ = await run([repl("FINAL(context)")], context="café".encode())
    assert result.answer == "café"  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"environment": "docker"}, "environment must be"),
        ({"max_concurrency": 0}, "max_concurrency"),
        ({"max_environments": 1, "limits": Limits(max_depth=2)}, "max_environments=1"),
        ({"limits": Limits(max_cost_usd=1.0)}, "no known price"),
        ({"limits": {"max_calls": 3}}, "limits must be a Limits"),
    ],
)
def test_bad_configuration_is_refused(options: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        RLM(ScriptedProvider([]), **options)  # type: ignore[arg-type]


async def test_empty_query_is_refused() -> None:
    with pytest.raises(ConfigurationError, match="query"):
        await RLM(ScriptedProvider([])).completion("  ", "ctx")
