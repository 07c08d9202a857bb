"""A stand-in for an E2B sandbox that the unmodified `e2b-code-interpreter` SDK talks to in its
debug mode (E2B_DEBUG=true): the code interpreter on 127.0.0.1:49999 and envd on :49983.

Code really runs: each context is a persistent Python process ("kernel") whose output is
streamed back while the cell runs, as newline-delimited JSON, the way the real server does.
One execution per context at a time, so a call right after a client timeout waits for the
previous cell, as on the real server. A kernel that dies is replaced (its state is gone).
Files live under `root`; paths outside it are refused.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import os
import sys
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from aiohttp import web

CODE_PORT, ENVD_PORT = 49999, 49983
KEEPALIVE_SECONDS = 5.0

KERNEL = r"""
import ast, json, os, sys, traceback
out = os.fdopen(os.dup(1), "w", buffering=1)
class Stream:
    def __init__(self, name): self.name = name
    def write(self, text):
        out.write(json.dumps({"type": self.name, "text": text}) + "\n"); return len(text)
    def flush(self): out.flush()
    def isatty(self): return False
sys.stdout, sys.stderr = Stream("stdout"), Stream("stderr")
namespace = {"__name__": "__main__"}
for line in sys.stdin:
    code = json.loads(line)["code"]
    try:
        tree = ast.parse(code, "<cell>")
        last = tree.body.pop() if tree.body and isinstance(tree.body[-1], ast.Expr) else None
        exec(compile(tree, "<cell>", "exec"), namespace)
        if last is not None:
            value = eval(compile(ast.Expression(last.value), "<cell>", "eval"), namespace)
            if value is not None:
                out.write(json.dumps({"type": "result", "text": repr(value)}) + "\n")
    except BaseException as exc:
        error = {"type": "error", "name": type(exc).__name__, "value": str(exc), "traceback": traceback.format_exc()}
        out.write(json.dumps(error) + "\n")
    out.write(json.dumps({"type": "end"}) + "\n")
"""


class Kernel:
    """One context: a Python process running cells one at a time."""

    def __init__(self, context_id: str, cwd: str) -> None:
        self.id, self.cwd = context_id, cwd
        self.lock = asyncio.Lock()
        self.executions = 0
        self.process: asyncio.subprocess.Process | None = None
        self.removed = False

    async def start(self) -> None:
        self.process = await asyncio.create_subprocess_exec(
            sys.executable, "-u", "-c", KERNEL, cwd=self.cwd, env={"PATH": os.environ.get("PATH", "")},
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, limit=1 << 26,
        )  # fmt: skip

    async def stop(self) -> None:
        if self.process is not None and self.process.returncode is None:
            self.process.kill()
            await self.process.wait()

    async def restart(self) -> None:
        await self.stop()
        await self.start()

    async def run(self, code: str) -> AsyncIterator[dict[str, Any]]:
        """The cell's events as they happen, ending with "end" (or "died")."""
        assert self.process is not None and self.process.stdin and self.process.stdout
        self.process.stdin.write((json.dumps({"code": code}) + "\n").encode())
        await self.process.stdin.drain()
        while True:
            try:
                line = await asyncio.wait_for(self.process.stdout.readline(), KEEPALIVE_SECONDS)
            except TimeoutError:
                yield {"type": "keepalive"}
                continue
            if not line:
                yield {"type": "died"}
                return
            event = json.loads(line)
            yield event
            if event["type"] == "end":
                return


class FakeSandbox:
    """`code_interpreter=False` serves envd alone, beside a real code-interpreter server."""

    def __init__(self, root: Path, *, code_interpreter: bool = True) -> None:
        self.root = root.resolve()
        self.code_interpreter = code_interpreter
        self.kernels: dict[str, Kernel] = {}
        self.default: Kernel | None = None
        self.requests: list[tuple[str, str]] = []
        self._ids = itertools.count(1)
        self.disconnects = 0

    # -- code interpreter ---------------------------------------------------------------------
    async def execute(self, request: web.Request) -> web.StreamResponse:
        body = await request.json()
        if body.get("context_id") and body.get("language"):
            return web.json_response({"error": "context_id and language are exclusive"}, status=400)
        kernel = self.kernels.get(body.get("context_id") or "") if body.get("context_id") else self.default
        if kernel is None:
            return web.json_response({"error": "context not found"}, status=404)
        response = web.StreamResponse(headers={"Content-Type": "application/x-ndjson"})
        await response.prepare(request)
        async with kernel.lock:
            kernel.executions += 1
            await self._send(response, {"type": "number_of_executions", "execution_count": kernel.executions})
            async for event in kernel.run(body["code"]):
                if event["type"] == "died":
                    if not kernel.removed:
                        await kernel.restart()
                    event = {"type": "error", "name": "DeadKernelError", "value": "the kernel died", "traceback": ""}
                    await self._send(response, event)
                    break
                if event["type"] == "end":
                    break
                if event["type"] in ("stdout", "stderr"):
                    event["timestamp"] = datetime.now(UTC).isoformat()
                if event["type"] == "result":
                    event["is_main_result"] = True
                await self._send(response, event)
            await self._send(response, {"type": "end_of_execution"})
        with contextlib.suppress(ConnectionError):
            await response.write_eof()
        return response

    async def _send(self, response: web.StreamResponse, event: dict[str, Any]) -> None:
        try:
            await response.write((json.dumps(event) + "\n").encode())
        except ConnectionError:
            self.disconnects += 1  # the client gave up; the cell still runs to its end

    async def create_context(self, request: web.Request) -> web.Response:
        body = await request.json() if request.can_read_body else {}
        kernel = Kernel(f"ctx-{next(self._ids)}", body.get("cwd") or str(self.root))
        await kernel.start()
        self.kernels[kernel.id] = kernel
        return web.json_response({"id": kernel.id, "language": body.get("language") or "python", "cwd": kernel.cwd})

    async def restart_context(self, request: web.Request) -> web.Response:
        kernel = self.kernels.get(request.match_info["id"])
        if kernel is None:
            return web.json_response({"error": "not found"}, status=404)
        await kernel.restart()
        return web.json_response({})

    async def delete_context(self, request: web.Request) -> web.Response:
        kernel = self.kernels.pop(request.match_info["id"], None)
        if kernel is not None:
            kernel.removed = True
            await kernel.stop()
        return web.Response(status=204)

    async def health(self, request: web.Request) -> web.Response:
        return web.Response(status=204 if request.url.port == ENVD_PORT else 200)

    # -- envd files ---------------------------------------------------------------------------
    def _path(self, request: web.Request) -> Path:
        path = Path(request.query.get("path", "")).resolve()
        if not path.is_relative_to(self.root):
            raise web.HTTPForbidden(text=json.dumps({"code": 403, "message": f"{path} is outside the sandbox"}))
        return path

    async def read_file(self, request: web.Request) -> web.Response:
        path = self._path(request)
        if not path.is_file():
            return web.json_response({"code": 404, "message": f"{path} not found"}, status=404)
        return web.Response(body=path.read_bytes(), content_type="application/octet-stream")

    async def write_file(self, request: web.Request) -> web.Response:
        path = self._path(request)
        path.parent.mkdir(parents=True, exist_ok=True)
        if request.content_type.startswith("multipart/"):
            part: Any = await (await request.multipart()).next()
            read = part.read_chunk
        else:
            read = request.content.read
        with path.open("wb") as f:
            while chunk := await read(1 << 20):
                f.write(chunk)
        return web.json_response([{"name": path.name, "type": "file", "path": str(path)}])

    async def log(self, request: web.Request) -> web.Response:
        self.requests.append((request.method, request.path))
        return web.json_response({"code": 404, "message": f"no route {request.method} {request.path}"}, status=404)

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[FakeSandbox]:
        code = web.Application(client_max_size=1 << 30)
        code.router.add_post("/execute", self.execute)
        code.router.add_post("/contexts", self.create_context)
        code.router.add_post("/contexts/{id}/restart", self.restart_context)
        code.router.add_delete("/contexts/{id}", self.delete_context)
        code.router.add_get("/health", self.health)
        envd = web.Application(client_max_size=1 << 31)
        envd.router.add_get("/health", self.health)
        envd.router.add_get("/files", self.read_file)
        envd.router.add_post("/files", self.write_file)
        for app in (code, envd):
            app.router.add_route("*", "/{tail:.*}", self.log)
        served = [(web.AppRunner(envd), ENVD_PORT)]
        if self.code_interpreter:
            served.append((web.AppRunner(code), CODE_PORT))
            self.default = Kernel("default", str(self.root))
            await self.default.start()
        try:
            for runner, port in served:
                await runner.setup()
                await web.TCPSite(runner, "127.0.0.1", port).start()
            yield self
        finally:
            for runner, _ in served:
                await runner.cleanup()
            for kernel in [self.default, *self.kernels.values()]:
                if kernel is not None:
                    await kernel.stop()
