"""The behaviour every Environment must have. Subclass `EnvironmentContract` per backend and
provide an `environment` fixture that returns an unstarted Environment."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable

import anyio
import pytest

from rlm_async.context import Context
from rlm_async.environments.base import Environment, SubcallRequest
from rlm_async.environments.protocol import Result


class Recorder:
    """A sub-call handler that answers "<fn>:<prompt>" after `delay(prompt)` seconds and keeps requests."""

    def __init__(self, delay: Callable[[str], float] = lambda prompt: 0.0) -> None:
        self.requests: list[SubcallRequest] = []
        self.delay = delay

    async def __call__(self, request: SubcallRequest) -> list[Result]:
        self.requests.append(request)
        results = []
        for prompt in request.prompts:
            await anyio.sleep(self.delay(prompt))
            if prompt == "fail":
                results.append(Result(ok=False, text="[error] ProviderError: boom"))
            else:
                results.append(Result(ok=True, text=f"{request.fn}:{prompt}"))
        return results


class EnvironmentContract:
    @pytest.fixture
    def environment(self) -> Environment:
        raise NotImplementedError("a backend's test class provides this fixture")

    @pytest.fixture
    async def repl(self, environment: Environment) -> AsyncIterator[Environment]:
        await environment.start(Context.of("alpha beta gamma"), Recorder())
        yield environment
        await environment.aclose()

    async def started(self, environment: Environment, context: object, handler: Recorder) -> Environment:
        await environment.start(None if context is None else Context.of(context), handler)
        return environment

    async def test_context_kinds_arrive_intact(self, environment: Environment) -> None:
        value = {"k": ["ü", "\u2028", "line\r\nbreak"], "n": 3}
        env = await self.started(environment, value, Recorder())
        try:
            result = await env.execute("import json; print(json.dumps(context, sort_keys=True))", 10)
            assert json.loads(result.stdout) == value
        finally:
            await env.aclose()

    async def test_list_context_and_crlf_string(self, environment: Environment) -> None:
        env = await self.started(environment, ["a\r\nb", "ç"], Recorder())
        try:
            result = await env.execute("print(repr(context))", 10)
            assert result.stdout.strip() == repr(["a\r\nb", "ç"])
        finally:
            await env.aclose()

    async def test_no_context(self, environment: Environment) -> None:
        env = await self.started(environment, None, Recorder())
        try:
            assert (await env.execute("print(context)", 10)).stdout == "None\n"
        finally:
            await env.aclose()

    async def test_state_persists_and_last_expression_is_shown(self, repl: Environment) -> None:
        await repl.execute("words = context.split()", 10)
        result = await repl.execute("n = len(words)\nn * 2", 10)
        assert result.stdout == "6\n"
        assert result.error is None

    async def test_exception_gives_traceback_and_state_survives(self, repl: Environment) -> None:
        await repl.execute("x = 5", 10)
        result = await repl.execute("y = 1\n1 / 0", 10)
        assert result.error is not None
        assert "ZeroDivisionError" in result.error and "<cell" in result.error and "1 / 0" in result.error
        assert (await repl.execute("x + y", 10)).stdout == "6\n"

    async def test_syntax_error_is_reported(self, repl: Environment) -> None:
        result = await repl.execute("def broken(:\n    pass", 10)
        assert result.error is not None and "SyntaxError" in result.error

    async def test_stderr_and_system_exit_are_captured(self, repl: Environment) -> None:
        result = await repl.execute("import sys\nprint('warn', file=sys.stderr)\nsys.exit(3)", 10)
        assert result.stderr == "warn\n"
        assert result.error is not None and "SystemExit: 3" in result.error
        assert (await repl.execute("print('still here')", 10)).stdout == "still here\n"

    async def test_output_is_capped_and_counted(self, repl: Environment) -> None:
        result = await repl.execute("print('x' * 5_000_000)", 30)
        assert result.stdout_chars == 5_000_001
        assert 0 < len(result.stdout) < 5_000_000

    async def test_fake_protocol_frames_in_output_are_just_output(self, repl: Environment) -> None:
        fake = 'import struct, json\nb = json.dumps({"type": "done", "cell": 99}).encode()\n'
        fake += "import sys\nsys.stdout.buffer.write(struct.pack('>I', len(b)) + b)\nprint()\n"
        result = await repl.execute(fake, 10)
        assert '"done"' in result.stdout
        assert (await repl.execute("print('next')", 10)).stdout == "next\n"

    async def test_llm_query_reaches_the_handler(self, environment: Environment) -> None:
        handler = Recorder()
        env = await self.started(environment, "ctx", handler)
        try:
            result = await env.execute("print(llm_query('hello', model='m'))", 10)
            assert result.stdout == "llm_query:hello\n"
            assert handler.requests == [SubcallRequest("llm_query", ["hello"], None, "m")]
        finally:
            await env.aclose()

    async def test_batched_answers_keep_order_and_errors_stay_in_their_slot(self, environment: Environment) -> None:
        handler = Recorder(delay=lambda p: 0.2 if p == "slow" else 0.0)
        env = await self.started(environment, "ctx", handler)
        try:
            result = await env.execute("print(llm_query_batched(['slow', 'fail', 'fast']))", 10)
            assert result.stdout.strip() == repr(
                ["llm_query_batched:slow", "[error] ProviderError: boom", "llm_query_batched:fast"]
            )
        finally:
            await env.aclose()

    async def test_rlm_query_sends_its_context(self, environment: Environment) -> None:
        handler = Recorder()
        env = await self.started(environment, "ctx", handler)
        try:
            await env.execute("rlm_query('sum', context=[1, 2])\nrlm_query_batched(['a', 'b'], ['x', {'y': 1}])", 10)
            assert handler.requests[0] == SubcallRequest("rlm_query", ["sum"], [[1, 2]], None)
            assert handler.requests[1].contexts == ["x", {"y": 1}]
        finally:
            await env.aclose()

    async def test_subcalls_from_threads_run_concurrently(self, environment: Environment) -> None:
        handler = Recorder(delay=lambda p: 0.3)
        env = await self.started(environment, "ctx", handler)
        code = (
            "from concurrent.futures import ThreadPoolExecutor\n"
            "with ThreadPoolExecutor(8) as pool:\n"
            "    out = list(pool.map(llm_query, [str(i) for i in range(8)]))\n"
            "print(out == [f'llm_query:{i}' for i in range(8)])"
        )
        try:
            result = await env.execute(code, 10)
            assert result.stdout == "True\n"
            assert result.duration < 1.5
        finally:
            await env.aclose()

    async def test_bad_subcall_arguments_raise_in_the_cell(self, repl: Environment) -> None:
        result = await repl.execute("llm_query(42)", 10)
        assert result.error is not None and "TypeError" in result.error and "must be a str" in result.error
        result = await repl.execute("llm_query_batched('not a list')", 10)
        assert result.error is not None and "list of str" in result.error

    @pytest.mark.parametrize(
        ("code", "final"),
        [
            ("FINAL('done')", "done"),
            ("x = 'from var'\nFINAL_VAR('x')", "from var"),
            ("answer['content'] = 'dict'\nanswer['ready'] = True", "dict"),
        ],
    )
    async def test_submissions(self, repl: Environment, code: str, final: str) -> None:
        result = await repl.execute(code, 10)
        assert (result.error, result.final) == (None, final)

    async def test_draft_answer_is_reported(self, repl: Environment) -> None:
        result = await repl.execute("answer['content'] = 'partial'", 10)
        assert (result.final, result.draft) == (None, "partial")

    @pytest.mark.parametrize(
        ("code", "message"),
        [
            ("FINAL(42)", "FINAL: the answer must be a str, got int"),
            ("FINAL_VAR('missing')", "no variable named 'missing'"),
            ("v = [1]\nFINAL_VAR('v')", "variable 'v' must be a str, got list"),
            ("answer['content'] = 7\nanswer['ready'] = True", "answer['content'] must be a str"),
            ("FINAL('early')\nraise ValueError('after')", "ValueError: after"),
        ],
    )
    async def test_invalid_submissions_are_errors(self, repl: Environment, code: str, message: str) -> None:
        result = await repl.execute(code, 10)
        assert result.final is None
        assert result.error is not None and message in result.error

    async def test_timeout_interrupts_and_keeps_state(self, repl: Environment) -> None:
        await repl.execute("kept = 'yes'", 10)
        result = await repl.execute("import time\nwhile True: time.sleep(0.01)", 0.5)
        assert result.timed_out and not result.restarted
        assert (await repl.execute("print(kept)", 10)).stdout == "yes\n"

    async def test_timeout_interrupts_a_waiting_subcall(self, environment: Environment) -> None:
        env = await self.started(environment, "ctx", Recorder(delay=lambda p: 30))
        try:
            result = await env.execute("llm_query('never answered')", 0.5)
            assert result.timed_out
            assert (await env.execute("print('alive')", 10)).stdout == "alive\n"
        finally:
            await env.aclose()

    async def test_cell_that_swallows_interrupts_is_replaced(self, repl: Environment) -> None:
        await repl.execute("lost = 1", 10)
        code = "import time\nwhile True:\n    try:\n        time.sleep(0.01)\n    except BaseException:\n        pass"
        result = await repl.execute(code, 0.5)
        assert result.timed_out and result.restarted
        assert result.error is not None and "variables are lost" in result.error
        after = await repl.execute("print('lost' in dir(), context)", 10)
        assert after.stdout == "False alpha beta gamma\n"

    async def test_aclose_is_idempotent(self, repl: Environment) -> None:
        await repl.aclose()
        await repl.aclose()
