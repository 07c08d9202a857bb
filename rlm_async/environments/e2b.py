"""E2BEnvironment: the REPL runtime inside an E2B cloud sandbox (`pip install rlm-async[e2b]`).

VM isolation: model code runs in a sandbox that holds no API key and opens no port. The
shared runtime.py is sent once as a prelude; the context is uploaded as a file. A sub-call
leaves the running cell as one tagged line on its stdout (the tag carries a per-sandbox
nonce); the SDK's `on_stdout` callback only reassembles lines and starts a task, which asks
the host's handler and writes the answer back with `files.write`, where the cell polls for it.

A cell's time limit is enforced inside the sandbox (SIGALRM) and, as a backstop, by the SDK
and by the host. After a timeout the kernel may still be busy (the next call would hang), so
its code context is restarted: state is lost, the context is reloaded and the model is told.
"""

from __future__ import annotations

import contextlib
import json
import secrets
import tempfile
import time
from pathlib import Path
from typing import Any

import anyio
import anyio.abc
from e2b import SandboxException, TimeoutException
from e2b_code_interpreter import AsyncSandbox
from e2b_code_interpreter.models import Context as CodeContext
from e2b_code_interpreter.models import OutputMessage

from rlm_async.context import Context
from rlm_async.environments.base import Environment, ExecResult, SubcallHandler, SubcallRequest
from rlm_async.environments.protocol import Done
from rlm_async.errors import EnvironmentFailed

HERE = Path(__file__).parent
CLOSE_TIMEOUT = 10.0


class CreationRate:
    """Spaces sandbox creations at least `1 / per_second` apart; share one per E2B account."""

    def __init__(self, per_second: float) -> None:
        self.interval = 1.0 / per_second
        self._next = 0.0
        self._lock = anyio.Lock()

    async def wait(self) -> None:
        async with self._lock:
            now = anyio.current_time()
            if self._next > now:
                await anyio.sleep(self._next - now)
            self._next = max(now, self._next) + self.interval


class E2BEnvironment(Environment):
    """A REPL in an E2B sandbox.

    `template` picks the sandbox image (default: E2B's code interpreter). The sandbox lives
    `lifetime` seconds past its last use and is killed on close. `creation_rate` (shared
    between environments) spaces out creations; the number of live sandboxes is capped by
    the run's `max_environments`. `metadata` tags the sandbox (the agent adds run and agent ids).
    """

    def __init__(
        self,
        *,
        template: str | None = None,
        api_key: str | None = None,
        lifetime: int = 600,
        workdir: str = "/home/user/.rlm-async",
        output_limit_chars: int = 1_000_000,
        interrupt_grace: float = 5.0,
        creation_rate: CreationRate | None = None,
        metadata: dict[str, str] | None = None,
    ) -> None:
        self.template = template
        self.api_key = api_key
        self.lifetime = lifetime
        self.workdir = workdir.rstrip("/")
        self.output_limit_chars = output_limit_chars
        self.interrupt_grace = interrupt_grace
        self.creation_rate = creation_rate
        self.metadata = dict(metadata or {})
        self.tag = f"@@rlm-async-{secrets.token_hex(8)}@@"
        self.reply_dir = f"{self.workdir}/replies-{self.tag[12:-2]}"
        self.sandbox: AsyncSandbox | None = None
        self._code_context: CodeContext | None = None
        self._handler: SubcallHandler | None = None
        self._local_context: Path | None = None
        self._context_kind: str | None = None
        self._cells = 0
        self._created_at = 0.0
        self._extended_at = 0.0
        self._closed_at = 0.0
        self.closed = False

    def label(self, **labels: str) -> None:
        self.metadata.update(labels)

    @property
    def sandbox_seconds(self) -> float:
        """How long the sandbox has been alive (what E2B bills)."""
        if not self._created_at:
            return 0.0
        return (self._closed_at or time.monotonic()) - self._created_at

    async def start(self, context: Context | None, handler: SubcallHandler) -> None:
        if self.sandbox is not None:
            raise RuntimeError("an E2BEnvironment can be started once")
        self._handler = handler
        if context is not None:
            self._context_kind = context.kind
            self._local_context = Path(tempfile.mkdtemp(prefix="rlm-async-e2b-")) / "context"
            await anyio.to_thread.run_sync(context.write, self._local_context)
        if self.creation_rate is not None:
            await self.creation_rate.wait()
        try:
            self.sandbox = await AsyncSandbox.create(
                template=self.template, timeout=self.lifetime, metadata=self.metadata, envs={}, api_key=self.api_key
            )
        except Exception as exc:
            raise EnvironmentFailed(f"could not create an E2B sandbox: {type(exc).__name__}: {exc}") from exc
        self._created_at = self._extended_at = time.monotonic()
        if self._local_context is not None:
            with self._local_context.open("rb") as data:
                await self.sandbox.files.write(self._remote_context, data)
        await self._load_repl()

    @property
    def _remote_context(self) -> str:
        return f"{self.workdir}/context.{'txt' if self._context_kind == 'str' else 'json'}"

    async def _load_repl(self) -> None:
        """Make a fresh code context and run the prelude: runtime, then `context`."""
        assert self.sandbox is not None
        self._code_context = await self.sandbox.create_code_context()
        context_path = self._remote_context if self._local_context is not None else None
        execution = await self.sandbox.run_code(
            _prelude(self.workdir, self.tag, self.reply_dir, self.output_limit_chars, context_path, self._context_kind),
            context=self._code_context,
        )
        if execution.error is not None:
            raise EnvironmentFailed(f"the sandbox REPL did not start: {execution.error.name}: {execution.error.value}")

    async def execute(self, code: str, timeout: float) -> ExecResult:
        if self.sandbox is None or self.closed:
            raise EnvironmentFailed("execute() on an environment that is not running")
        await self._keep_alive()
        self._cells += 1
        cell, started = self._cells, time.perf_counter()
        driver = f"__rlm_async_repl__.run_and_report({cell}, {code!r}, {timeout!r})"
        done: Done | None = None
        failure = "the cell did not finish"
        async with anyio.create_task_group() as calls:
            lines = _Lines()

            def on_stdout(message: OutputMessage) -> None:
                nonlocal done
                for line in lines.feed(message.line):
                    if line.startswith(self.tag):
                        payload = json.loads(line[len(self.tag) :])
                        if payload["type"] == "call":
                            calls.start_soon(self._serve, payload)
                        elif payload["type"] == "done" and payload["cell"] == cell:
                            done = payload

            with anyio.move_on_after(timeout + 2 * self.interrupt_grace) as backstop:
                try:
                    execution = await self.sandbox.run_code(
                        driver, context=self._code_context, on_stdout=on_stdout, timeout=timeout + self.interrupt_grace
                    )
                    if execution.error is not None:
                        failure = (
                            f"the sandbox's Python process failed ({execution.error.name}: {execution.error.value})"
                        )
                except TimeoutException:
                    failure = f"the cell ran past its {timeout:g} s limit and did not stop"
                except Exception as exc:  # the SDK raises its own errors and its HTTP client's
                    failure = f"the sandbox failed ({type(exc).__name__}: {exc})"
            if backstop.cancelled_caught:
                failure = f"the cell ran past its {timeout:g} s limit and did not stop"
            calls.cancel_scope.cancel()
        duration = time.perf_counter() - started
        if done is not None:
            return ExecResult.from_done(done, duration)
        try:
            await self._restart()
        except Exception as exc:
            raise EnvironmentFailed(f"{failure}, and the REPL could not be restarted: {exc}") from exc
        error = f"{failure}; the REPL was restarted: all variables are lost, `context` was reloaded"
        return ExecResult(error=error, timed_out="limit" in failure, restarted=True, duration=duration)

    async def _restart(self) -> None:
        """A busy or dead kernel is replaced by a fresh code context."""
        assert self.sandbox is not None
        if self._code_context is not None:
            try:
                with anyio.fail_after(CLOSE_TIMEOUT):
                    await self.sandbox.remove_code_context(self._code_context)
            except (SandboxException, TimeoutError):
                pass  # a stuck kernel may not go quietly; a new context does not need it gone
        await self._load_repl()

    async def _serve(self, payload: dict[str, Any]) -> None:
        assert self._handler is not None and self.sandbox is not None
        request = SubcallRequest(payload["fn"], payload["prompts"], payload["contexts"], payload["model"])
        results = await self._handler(request)
        reply = json.dumps({"results": results}, ensure_ascii=False)
        await self.sandbox.files.write(f"{self.reply_dir}/{payload['id']}.json", reply)

    async def _keep_alive(self) -> None:
        """Push the sandbox's end back while the run is using it."""
        assert self.sandbox is not None
        if time.monotonic() - self._extended_at > self.lifetime / 3:
            await self.sandbox.set_timeout(self.lifetime)
            self._extended_at = time.monotonic()

    async def aclose(self) -> None:
        if self.closed:
            return
        self.closed = True
        self._closed_at = time.monotonic()
        with anyio.CancelScope(shield=True), anyio.move_on_after(CLOSE_TIMEOUT):
            if self.sandbox is not None:
                with contextlib.suppress(SandboxException):  # already gone
                    await self.sandbox.kill()
        if self._local_context is not None:
            self._local_context.unlink(missing_ok=True)
            self._local_context.parent.rmdir()


class _Lines:
    """Reassembles lines from stdout messages that may split or join them."""

    def __init__(self) -> None:
        self._pending = ""

    def feed(self, text: str) -> list[str]:
        *lines, self._pending = (self._pending + text).split("\n")
        return lines


def _prelude(workdir: str, tag: str, reply_dir: str, limit: int, context_path: str | None, kind: str | None) -> str:
    """Code that enters `workdir`, loads protocol.py and runtime.py as modules, then makes the REPL."""
    sources = {name: (HERE / f"{name}.py").read_text() for name in ("protocol", "runtime")}
    return (
        "import os as _os, sys as _sys, types as _types\n"
        f"_os.makedirs({workdir!r}, exist_ok=True)\n"
        f"_os.chdir({workdir!r})\n"
        "def _rlm_async_module(name, source):\n"
        "    module = _types.ModuleType(name)\n"
        "    _sys.modules[name] = module\n"
        "    exec(compile(source, name, 'exec'), module.__dict__)\n"
        "    return module\n"
        f"_rlm_async_module('rlm_async_protocol', {sources['protocol']!r})\n"
        f"__rlm_async_repl__ = _rlm_async_module('rlm_async_runtime', {sources['runtime']!r}).sandbox_repl(\n"
        f"    {tag!r}, {reply_dir!r}, {limit!r}, {context_path!r}, {kind!r})\n"
    )
