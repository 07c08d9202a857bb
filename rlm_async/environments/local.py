"""LocalEnvironment: the REPL runtime in a real Python subprocess on this machine.

Each REPL is forked by the fork server (forkserver.py), so starting one takes milliseconds.

Process isolation, not a security boundary: the child runs in its own session and temporary
working directory, with an allow-listed environment (no API keys), rlimits on memory, file
size and open files, and a socketpair as its control channel, apart from its output.
A cell that overruns is interrupted (state kept); one that will not stop, or a child that
dies, is killed with its whole process group and replaced (state lost, context reloaded).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import anyio
import anyio.abc

from rlm_async.context import Context
from rlm_async.environments.base import Environment, ExecResult, SubcallHandler, SubcallRequest
from rlm_async.environments.forkserver import ForkServer
from rlm_async.environments.protocol import Done, FrameDecoder, Message, Result, encode_frame
from rlm_async.errors import EnvironmentFailed

PASSED_ENV = ("PATH", "LANG", "LANGUAGE", "LC_ALL", "LC_CTYPE", "TZ", "SYSTEMROOT")
CLOSE_TIMEOUT = 5.0


class LocalEnvironment(Environment):
    """A REPL in a subprocess.

    `memory_limit_mb` caps the child's address space (default: 2 GiB plus four times the
    context). `extra_env` adds variables to the child's otherwise minimal environment.
    `interrupt_grace` is how long an overrunning cell gets to stop before it is killed.
    """

    def __init__(
        self,
        *,
        memory_limit_mb: int | None = None,
        max_file_mb: int = 4096,
        max_open_files: int = 1024,
        output_limit_chars: int = 1_000_000,
        interrupt_grace: float = 2.0,
        start_timeout: float = 60.0,
        extra_env: dict[str, str] | None = None,
        python: str = sys.executable,
    ) -> None:
        self.memory_limit_mb = memory_limit_mb
        self.max_file_mb = max_file_mb
        self.max_open_files = max_open_files
        self.output_limit_chars = output_limit_chars
        self.interrupt_grace = interrupt_grace
        self.start_timeout = start_timeout
        self.extra_env = dict(extra_env or {})
        self.python = python
        self._dir: Path | None = None
        self._context_path: Path | None = None
        self._context_kind: str | None = None
        self._handler: SubcallHandler | None = None
        self._server: ForkServer | None = None
        self._pid: int | None = None
        self._exit_code: int | None = None
        self._stream: anyio.abc.SocketStream | None = None
        self._decoder = FrameDecoder()
        self._received: list[Message] = []
        self._eof = False
        self._send_lock = anyio.Lock()
        self._cells = 0
        self.closed = False

    @property
    def pid(self) -> int | None:
        """The REPL's process id, which is also its process group id."""
        return self._pid

    async def start(self, context: Context | None, handler: SubcallHandler) -> None:
        if self._dir is not None:
            raise RuntimeError("a LocalEnvironment can be started once")
        self._handler = handler
        self._dir = Path(tempfile.mkdtemp(prefix="rlm-async-"))
        if context is not None:
            self._context_kind = context.kind
            self._context_path = self._dir / f"context.{'txt' if context.kind == 'str' else 'json'}"
            await anyio.to_thread.run_sync(context.write, self._context_path)
        await self._spawn()

    async def _spawn(self) -> None:
        assert self._dir is not None
        self._server = await ForkServer.shared(self.python)
        host_end, child_end = socket.socketpair()
        try:
            with child_end:
                self._pid = await self._server.spawn(
                    child_end.fileno(), cwd=self._dir, env=self._child_env(), log=self._dir / ".runtime.log"
                )
        except BaseException:
            host_end.close()
            raise
        self._exit_code = None
        self._stream = await anyio.abc.UNIXSocketStream.from_socket(host_end)
        self._decoder, self._received, self._eof = FrameDecoder(), [], False
        await self._send(
            {
                "type": "init",
                "context_path": self._context_path and str(self._context_path),
                "context_kind": self._context_kind,
                "output_limit": self.output_limit_chars,
                "rlimits": self._rlimits(),
            }
        )
        with anyio.move_on_after(self.start_timeout):
            ready = await self._receive()
            if ready is not None and ready.get("error") is None:
                return
            reason = ready["error"] if ready else f"it exited ({await self._exit_description()})"
            await self._kill()
            raise EnvironmentFailed(f"the REPL could not load its context: {reason}{self._log_tail()}")
        await self._kill()
        raise EnvironmentFailed(f"the REPL did not start within {self.start_timeout:g} s")

    def _child_env(self) -> dict[str, str]:
        assert self._dir is not None
        env = {name: os.environ[name] for name in PASSED_ENV if name in os.environ}
        env.update(HOME=str(self._dir), TMPDIR=str(self._dir))
        env.update(self.extra_env)
        return env

    def _rlimits(self) -> dict[str, int]:
        context_bytes = self._context_path.stat().st_size if self._context_path else 0
        memory = self.memory_limit_mb * 2**20 if self.memory_limit_mb else 2**31 + 4 * context_bytes
        return {"AS": memory, "FSIZE": self.max_file_mb * 2**20, "NOFILE": self.max_open_files}

    async def execute(self, code: str, timeout: float) -> ExecResult:
        if self._pid is None or self.closed:
            raise EnvironmentFailed("execute() on an environment that is not running")
        self._cells += 1
        cell, started = self._cells, time.perf_counter()
        await self._send({"type": "exec", "cell": cell, "code": code, "timeout": timeout})
        done = None
        async with anyio.create_task_group() as calls:
            with anyio.move_on_after(timeout + self.interrupt_grace):
                done = await self._until_done(cell, calls)
            calls.cancel_scope.cancel()
        if done is None and not self._eof:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self._pid, signal.SIGINT)
            with anyio.move_on_after(self.interrupt_grace):
                done = await self._until_done(cell, None)
        if done is not None:
            return ExecResult.from_done(done, time.perf_counter() - started)
        return await self._replace(timeout, time.perf_counter() - started)

    async def _replace(self, timeout: float, duration: float) -> ExecResult:
        """Kill the child that died or would not stop, start a fresh one, and say what happened."""
        if not self._eof:
            what, timed_out = f"the cell ran past its {timeout:g} s limit and did not stop", True
        else:
            what, timed_out = f"the REPL process died ({await self._exit_description()})", False
        await self._kill()
        await self._spawn()
        error = f"{what}; the REPL was restarted: all variables are lost, `context` was reloaded"
        return ExecResult(error=error, timed_out=timed_out, restarted=True, duration=duration)

    async def _until_done(self, cell: int, calls: anyio.abc.TaskGroup | None) -> Done | None:
        """Read messages until the cell's `done`; serve calls in `calls` (or refuse them if None)."""
        while (message := await self._receive()) is not None:
            if message["type"] == "done" and message["cell"] == cell:
                return message  # type: ignore[return-value]
            if message["type"] == "call":
                if calls is not None:
                    calls.start_soon(self._serve, message)
                else:
                    results = [Result(ok=False, text="[error] the cell was interrupted")]
                    await self._send({"type": "reply", "id": message["id"], "results": results})
        return None

    async def _serve(self, message: Message) -> None:
        assert self._handler is not None
        request = SubcallRequest(message["fn"], message["prompts"], message["contexts"], message["model"])
        results = await self._handler(request)
        with contextlib.suppress(anyio.BrokenResourceError, anyio.ClosedResourceError):
            # if the child died meanwhile, execute() reports that
            await self._send({"type": "reply", "id": message["id"], "results": results})

    async def _send(self, message: dict[str, Any]) -> None:
        assert self._stream is not None
        frame = encode_frame(message)
        async with self._send_lock:
            await self._stream.send(frame)

    async def _receive(self) -> Message | None:
        """The next message from the child, or None once it has closed the channel."""
        assert self._stream is not None
        while not self._received:
            try:
                data = await self._stream.receive(1 << 20)
            except (anyio.EndOfStream, anyio.BrokenResourceError, anyio.ClosedResourceError):
                self._eof = True
                return None
            self._received = self._decoder.feed(data)
        return self._received.pop(0)

    async def _wait_exit(self, timeout: float) -> int | None:
        """The REPL's exit code, waiting up to `timeout` seconds for it to end."""
        assert self._server is not None and self._pid is not None
        with anyio.move_on_after(timeout):
            delay = 0.001
            while self._exit_code is None:
                try:
                    self._exit_code = await self._server.exit_code(self._pid)
                except EnvironmentFailed:  # the fork server is gone; nobody can tell the status
                    break
                if self._exit_code is None:
                    await anyio.sleep(delay)
                    delay = min(delay * 2, 0.05)
        return self._exit_code

    async def _exit_description(self) -> str:
        code = await self._wait_exit(1.0)
        if code is None:
            return "still running"
        if code < 0:
            return f"killed by {signal.Signals(-code).name}"
        return f"exit code {code}"

    def _log_tail(self) -> str:
        assert self._dir is not None
        log = self._dir / ".runtime.log"
        tail = log.read_text(errors="replace")[-2000:].strip() if log.exists() else ""
        return f"\n{tail}" if tail else ""

    async def _kill(self) -> None:
        """Kill the REPL's whole process group and wait for the REPL to be reaped."""
        if self._stream is not None:
            await self._stream.aclose()
        if self._pid is None:
            return
        with anyio.CancelScope(shield=True):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self._pid, signal.SIGKILL)
            await self._wait_exit(CLOSE_TIMEOUT)

    async def aclose(self) -> None:
        if self.closed:
            return
        self.closed = True
        with anyio.CancelScope(shield=True):
            await self._kill()
            if self._dir is not None:
                await anyio.to_thread.run_sync(shutil.rmtree, self._dir, True)
