"""E2BEnvironment through the unmodified e2b-code-interpreter SDK, in its debug mode, against
the stand-in sandbox of tests/e2b_server.py (which really runs the code)."""

from __future__ import annotations

import os
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from rlm_async import RLM, EnvironmentFailed, Limits
from rlm_async.context import Context
from rlm_async.environments.e2b import CreationRate, E2BEnvironment
from rlm_async.testing import FunctionProvider, ScriptedProvider
from tests.e2b_server import FakeSandbox
from tests.environment_contract import EnvironmentContract, Recorder

EXTERNAL = os.environ.get("RLM_ASYNC_E2B_SERVER") == "external"
"""Set to check against a real code-interpreter server on 127.0.0.1:49999 (the stand-in serves envd)."""


@pytest.fixture
async def sandbox(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[FakeSandbox]:
    monkeypatch.setenv("E2B_DEBUG", "true")
    monkeypatch.delenv("E2B_API_KEY", raising=False)
    async with FakeSandbox(tmp_path, code_interpreter=not EXTERNAL).running() as fake:
        yield fake


def make_environment(sandbox: FakeSandbox, **options: object) -> E2BEnvironment:
    return E2BEnvironment(workdir=str(sandbox.root / "work"), interrupt_grace=0.5, **options)  # type: ignore[arg-type]


class TestE2BContract(EnvironmentContract):
    @pytest.fixture
    def environment(self, sandbox: FakeSandbox) -> E2BEnvironment:
        return make_environment(sandbox)


async def started(sandbox: FakeSandbox, context: object = "ctx", handler: Recorder | None = None) -> E2BEnvironment:
    env = make_environment(sandbox)
    await env.start(Context.of(context), handler or Recorder())
    return env


async def test_no_host_secret_reaches_the_sandbox(sandbox: FakeSandbox, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-host-secret")
    env = await started(sandbox)
    try:
        result = await env.execute("import os\nprint(os.environ.get('OPENAI_API_KEY'))", 10)
        assert result.stdout == "None\n"
    finally:
        await env.aclose()


async def test_sub_call_lines_split_across_messages_are_reassembled(sandbox: FakeSandbox) -> None:
    handler = Recorder()
    env = await started(sandbox, handler=handler)
    try:
        prompts = [f"prompt {i} " + "é" * 3000 for i in range(5)]
        result = await env.execute(f"r = llm_query_batched({prompts!r})\nprint(len(r), r[4][:26])", 10)
        assert result.stdout == "5 llm_query_batched:prompt 4\n"
        assert handler.requests[0].prompts == prompts
    finally:
        await env.aclose()


async def test_large_context_is_uploaded_not_inlined(sandbox: FakeSandbox) -> None:
    text = "abcdefghij" * 10_000_000  # 100 MB: ten times what one run_code payload may carry
    env = await started(sandbox, text)
    try:
        result = await env.execute("print(len(context), context[-10:])", 60)
        assert result.stdout == f"{len(text)} abcdefghij\n"
        assert (sandbox.root / "work" / "context.txt").stat().st_size == len(text)
    finally:
        await env.aclose()


async def test_a_dead_kernel_is_replaced(sandbox: FakeSandbox) -> None:
    env = await started(sandbox, "the context")
    try:
        await env.execute("x = 1", 10)
        result = await env.execute("import os; os._exit(3)", 10)
        assert result.restarted and result.error is not None and "variables are lost" in result.error
        assert (await env.execute("print('x' in dir(), context)", 10)).stdout == "False the context\n"
    finally:
        await env.aclose()


@pytest.mark.skipif(EXTERNAL, reason="stops the sandbox's servers, which an external server does not allow")
async def test_a_vanished_sandbox_fails_typed_without_hanging(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("E2B_DEBUG", "true")
    async with FakeSandbox(tmp_path).running() as fake:
        env = make_environment(fake)
        await env.start(Context.of("ctx"), Recorder())
    started_at = time.monotonic()
    with pytest.raises(EnvironmentFailed, match="could not be restarted"):
        await env.execute("print(1)", 5)
    assert time.monotonic() - started_at < 20
    await env.aclose()


async def test_creation_rate_spaces_sandboxes(sandbox: FakeSandbox) -> None:
    rate = CreationRate(per_second=5)
    envs = [make_environment(sandbox, creation_rate=rate) for _ in range(3)]
    started_at = time.monotonic()
    for env in envs:
        await env.start(None, Recorder())
    assert time.monotonic() - started_at >= 0.4
    for env in envs:
        await env.aclose()


async def test_whole_run_with_recursion_in_sandboxes(sandbox: FakeSandbox) -> None:
    root = ScriptedProvider(["```repl\nprint(rlm_query('how long?', context='a b c'), llm_query('hi'))\n```",
                             "FINAL(done)"], name="root")  # fmt: skip
    child = FunctionProvider(lambda m: "```repl\nFINAL(str(len(context.split())))\n```", name="child")
    sub = FunctionProvider(lambda m: "hello", name="sub")
    rlm = RLM(root, sub_model=sub, child_model=child, environment=lambda: make_environment(sandbox),
              limits=Limits(max_depth=2))  # fmt: skip
    result = await rlm.completion("q", "ctx")
    assert result.answer == "done"
    assert "3 hello" in root.calls[1].messages[-1].content
    assert result.usage.sandbox_seconds > 0 and len(result.trace.agent_ids()) == 2


def test_labels_become_sandbox_metadata() -> None:
    env = E2BEnvironment(metadata={"team": "a"})
    env.label(rlm_run_id="r1")
    assert env.metadata == {"team": "a", "rlm_run_id": "r1"}


def test_environment_string_e2b_makes_e2b_environments() -> None:
    rlm = RLM(ScriptedProvider([]), environment="e2b")
    assert isinstance(rlm._new_environment(), E2BEnvironment)
