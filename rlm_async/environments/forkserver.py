"""ForkServer: a runtime process, imports done, that forks each new local REPL in milliseconds.

Starting a Python interpreter and importing the runtime costs ~50 ms of CPU; forking a process
that already did costs ~2 ms. One fork server per Python executable serves every event loop of
the host process. It holds no model code and no context; it exits when the host closes its
socket (or dies), and `shutdown_fork_servers()` stops it explicitly. It reaps the REPLs it
forked and tells their exit status on request.
"""

from __future__ import annotations

import atexit
import json
import os
import socket
import subprocess
import threading
from pathlib import Path
from typing import Any

import anyio

from rlm_async.errors import EnvironmentFailed

RUNTIME = Path(__file__).with_name("runtime.py")
REQUEST_TIMEOUT = 30.0


class ForkServer:
    def __init__(self, python: str) -> None:
        host_end, server_end = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        with server_end:
            self.process = subprocess.Popen(
                [python, "-I", "-u", str(RUNTIME), str(server_end.fileno())],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                pass_fds=(server_end.fileno(),),
                env={"PATH": os.environ.get("PATH", os.defpath)},
                cwd="/",
                start_new_session=True,
            )
        host_end.settimeout(REQUEST_TIMEOUT)
        self._socket = host_end
        self._lock = threading.Lock()

    @classmethod
    async def shared(cls, python: str) -> ForkServer:
        """The running fork server for `python`, started if there is none."""
        return await anyio.to_thread.run_sync(_shared, python)

    @classmethod
    def pids(cls) -> set[int]:
        return {server.process.pid for server in _servers.values()}

    def _request(self, message: dict[str, Any], fds: list[int]) -> dict[str, Any]:
        with self._lock:
            try:
                socket.send_fds(self._socket, [json.dumps(message).encode()], fds)
                reply = self._socket.recv(1 << 16)
            except OSError as exc:
                raise EnvironmentFailed(f"the fork server failed: {exc}") from exc
        if not reply:
            raise EnvironmentFailed(f"the fork server exited ({self.process.poll()})")
        result: dict[str, Any] = json.loads(reply)
        return result

    async def spawn(self, control_fd: int, *, cwd: Path, env: dict[str, str], log: Path) -> int:
        """Fork a REPL that talks on `control_fd`; return its pid (also its process group)."""
        request = {"op": "spawn", "cwd": str(cwd), "env": env, "log": str(log)}
        reply = await anyio.to_thread.run_sync(self._request, request, [control_fd])
        pid: int = reply["pid"]
        return pid

    async def exit_code(self, pid: int) -> int | None:
        """The exit code of a REPL (negative: killed by that signal), or None while it runs."""
        reply = await anyio.to_thread.run_sync(self._request, {"op": "exit_code", "pid": pid}, [])
        code: int | None = reply["exit_code"]
        return code

    def close(self) -> None:
        self._socket.close()
        try:
            self.process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


_servers: dict[str, ForkServer] = {}
_servers_lock = threading.Lock()


def _shared(python: str) -> ForkServer:
    with _servers_lock:
        server = _servers.get(python)
        if server is None or server.process.poll() is not None:
            server = _servers[python] = ForkServer(python)
        return server


def shutdown_fork_servers() -> None:
    """Stop every fork server of this process. The next local REPL starts a new one."""
    with _servers_lock:
        servers = list(_servers.values())
        _servers.clear()
    for server in servers:
        server.close()


atexit.register(shutdown_fork_servers)
