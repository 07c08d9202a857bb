"""LocalEnvironment: the contract, plus what only a local subprocess can show."""

from __future__ import annotations

import os
import time
from pathlib import Path

import anyio
import psutil
import pytest

from rlm_async.context import Context
from rlm_async.environments.local import LocalEnvironment
from rlm_async.errors import ContextError, EnvironmentFailed
from tests.environment_contract import EnvironmentContract, Recorder


class TestLocalContract(EnvironmentContract):
    @pytest.fixture
    def environment(self) -> LocalEnvironment:
        return LocalEnvironment(interrupt_grace=0.5)


async def started(context: object = "ctx", **options: object) -> LocalEnvironment:
    env = LocalEnvironment(interrupt_grace=0.5, **options)  # type: ignore[arg-type]
    await env.start(Context.of(context), Recorder())
    return env


async def test_api_keys_in_the_host_are_invisible(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-host-secret")
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-secret")
    monkeypatch.setenv("E2B_API_KEY", "e2b-secret")
    env = await started()
    try:
        code = (
            "import os, subprocess\nprint(sorted(os.environ))\n"
            "print(subprocess.run(['env'], capture_output=True, text=True).stdout)"
        )
        result = await env.execute(code, 10)
        assert "secret" not in result.stdout and "API_KEY" not in result.stdout
    finally:
        await env.aclose()


async def test_extra_env_is_passed() -> None:
    env = await started(extra_env={"MY_FLAG": "on"})
    try:
        assert (await env.execute("import os; print(os.environ['MY_FLAG'])", 10)).stdout == "on\n"
    finally:
        await env.aclose()


async def test_raw_fd_writes_and_child_processes_are_captured_in_order() -> None:
    env = await started()
    try:
        code = (
            "import os, subprocess\nprint('one')\nos.write(1, b'two\\n')\n"
            "subprocess.run(['echo', 'three'])\n_ = os.write(2, b'err\\n')"
        )
        result = await env.execute(code, 10)
        assert (result.stdout, result.stderr) == ("one\ntwo\nthree\n", "err\n")
        closed = await env.execute("import os, sys\nos.close(1)\nsys.stdout = open(os.devnull, 'w')", 10)
        assert closed.error is None
        assert (await env.execute("print('back')", 10)).stdout == "back\n"
    finally:
        await env.aclose()


async def test_working_directory_is_private_and_removed() -> None:
    env = await started()
    result = await env.execute("import os; open('f.txt', 'w').write('x'); print(os.getcwd())", 10)
    workdir = Path(result.stdout.strip())
    assert workdir.name.startswith("rlm-async-") and (workdir / "f.txt").exists()
    await env.aclose()
    assert not workdir.exists()  # noqa: ASYNC240


@pytest.mark.parametrize(
    ("code", "died"),
    [
        ("import os; os._exit(7)", "exit code 7"),
        ("import ctypes; ctypes.string_at(0)", "SIGSEGV"),
        ("import os, signal; os.kill(os.getpid(), signal.SIGKILL)", "SIGKILL"),
    ],
)
async def test_a_dying_child_is_replaced(code: str, died: str) -> None:
    env = await started("the context")
    try:
        await env.execute("x = 1", 10)
        result = await env.execute(code, 10)
        assert result.restarted and not result.timed_out
        assert result.error is not None and died in result.error and "variables are lost" in result.error
        assert (await env.execute("print('x' in dir(), context)", 10)).stdout == "False the context\n"
    finally:
        await env.aclose()


async def test_memory_cap_gives_memory_error_and_the_repl_survives() -> None:
    env = await started(memory_limit_mb=400)
    try:
        result = await env.execute("block = bytearray(600 * 2**20)", 10)
        assert result.error is not None and "MemoryError" in result.error
        assert not result.restarted
        assert (await env.execute("small = bytearray(50 * 2**20); print(len(small))", 10)).stdout == "52428800\n"
    finally:
        await env.aclose()


async def test_file_size_cap() -> None:
    env = await started(max_file_mb=1)
    try:
        result = await env.execute("open('big', 'wb').write(b'x' * 2 * 2**20)", 10)
        assert result.error is not None and "File too large" in result.error
    finally:
        await env.aclose()


async def test_close_kills_the_whole_process_group() -> None:
    env = await started()
    result = await env.execute("import subprocess\np = subprocess.Popen(['sleep', '300'])\nprint(p.pid)", 10)
    grandchild = int(result.stdout)
    runtime_pid = env.pid
    assert psutil.pid_exists(grandchild)
    await env.aclose()
    for pid in (grandchild, runtime_pid):
        assert pid is not None
        assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE


async def test_cancelling_a_running_cell_leaves_nothing_behind() -> None:
    env = await started()
    runtime_pid = env.pid
    try:
        with anyio.move_on_after(0.5):
            await env.execute("import subprocess, time\nsubprocess.Popen(['sleep', '300'])\ntime.sleep(60)", 120)
    finally:
        await env.aclose()
    assert runtime_pid is not None and not psutil.pid_exists(runtime_pid)


async def test_host_interrupt_is_the_backstop_for_the_runtime_timer() -> None:
    env = await started()
    try:
        # The cell disables the runtime's own timer; the host's SIGINT must still stop it.
        code = (
            "import signal, time\nsignal.setitimer(signal.ITIMER_REAL, 0)\n"
            "signal.signal(signal.SIGALRM, signal.SIG_IGN)\ntime.sleep(30)"
        )
        started_at = time.monotonic()
        result = await env.execute(code, 0.3)
        assert result.timed_out and not result.restarted
        assert time.monotonic() - started_at < 5
    finally:
        await env.aclose()


async def test_context_that_is_not_unicode_fails_typed() -> None:
    env = LocalEnvironment()
    with pytest.raises(ContextError, match="not valid Unicode"):
        await env.start(Context.of("bad \ud800 surrogate"), Recorder())
    await env.aclose()


async def test_a_context_too_big_for_the_memory_cap_fails_typed() -> None:
    env = LocalEnvironment(memory_limit_mb=200)
    with pytest.raises(EnvironmentFailed, match="MemoryError"):
        await env.start(Context.of("x" * 300 * 2**20), Recorder())
    await env.aclose()


async def test_one_gigabyte_context_arrives_without_a_host_copy() -> None:
    text = "0123456789abcdef" * (2**30 // 16)
    host = psutil.Process()
    before = host.memory_info().rss
    env = LocalEnvironment()
    try:
        await env.start(Context.of(text), Recorder())
        assert host.memory_info().rss - before < 100 * 2**20
        result = await env.execute("print(len(context), context[-16:])", 60)
        assert result.stdout == f"{2**30} 0123456789abcdef\n"
    finally:
        await env.aclose()


async def test_the_repl_runs_in_its_own_session() -> None:
    env = await started()
    try:
        assert env.pid is not None
        assert os.getsid(env.pid) == env.pid != os.getsid(0)
    finally:
        await env.aclose()
