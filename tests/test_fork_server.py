"""The fork server: shared, replaceable, and never the cause of a stray process."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time

import anyio
import psutil

from rlm_async.context import Context
from rlm_async.environments.forkserver import ForkServer, shutdown_fork_servers
from rlm_async.environments.local import LocalEnvironment
from tests.environment_contract import Recorder


def gone(pid: int) -> bool:
    """Dead, or a zombie left to an init that does not reap (as in some containers)."""
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


async def started() -> LocalEnvironment:
    env = LocalEnvironment()
    await env.start(Context.of("ctx"), Recorder())
    return env


async def test_repls_are_forked_by_one_shared_server() -> None:
    first, second = await started(), await started()
    try:
        assert first.pid is not None and second.pid is not None
        parents = {psutil.Process(first.pid).ppid(), psutil.Process(second.pid).ppid()}
        assert parents == ForkServer.pids() and len(parents) == 1
    finally:
        await first.aclose()
        await second.aclose()


async def test_shutdown_stops_the_server_and_the_next_repl_starts_a_new_one() -> None:
    env = await started()
    await env.aclose()
    (old,) = ForkServer.pids()
    shutdown_fork_servers()
    assert not psutil.pid_exists(old) and ForkServer.pids() == set()
    env = await started()
    try:
        assert (await env.execute("print(1)", 10)).stdout == "1\n"
        assert ForkServer.pids() != {old}
    finally:
        await env.aclose()


async def test_a_killed_server_is_replaced_and_its_repls_still_close() -> None:
    env = await started()
    (server,) = ForkServer.pids()
    os.kill(server, signal.SIGKILL)
    psutil.Process(server).wait(5)
    try:
        assert (await env.execute("print('orphan works')", 10)).stdout == "orphan works\n"
        fresh = await started()
        assert (await fresh.execute("print('new')", 10)).stdout == "new\n"
        await fresh.aclose()
    finally:
        repl = env.pid
        await env.aclose()
    assert repl is not None
    deadline = time.monotonic() + 5  # with its server gone, nobody reports the REPL's end: it is killed, not awaited
    while not gone(repl) and time.monotonic() < deadline:  # noqa: ASYNC110 - no event tells us; we poll
        await anyio.sleep(0.02)
    assert gone(repl)


def test_a_dying_host_leaves_no_process_behind() -> None:
    host = textwrap.dedent(
        """
        import anyio, os, sys
        from rlm_async.context import Context
        from rlm_async.environments.forkserver import ForkServer
        from rlm_async.environments.local import LocalEnvironment

        async def handler(request):
            return []

        async def main():
            env = LocalEnvironment()
            await env.start(Context.of("ctx"), handler)
            result = await env.execute("import subprocess; print(subprocess.Popen(['sleep', '300']).pid)", 10)
            print(env.pid, *ForkServer.pids(), result.stdout.strip(), flush=True)
            await anyio.sleep(300)

        anyio.run(main)
        """
    )
    process = subprocess.Popen([sys.executable, "-c", host], stdout=subprocess.PIPE, text=True)
    assert process.stdout is not None
    pids = [int(p) for p in process.stdout.readline().split()]
    assert len(pids) == 3
    process.kill()
    process.wait()
    deadline = time.monotonic() + 10
    while not all(gone(p) for p in pids) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert all(gone(p) for p in pids)
