"""The REPL runtime. It runs INSIDE an environment, so it uses the standard library only.

Model code sees `context`, `llm_query`, `llm_query_batched`, `rlm_query`, `rlm_query_batched`,
`FINAL`, `FINAL_VAR`, `answer` and `SHOW_VARS`. Sub-calls travel to the host as `call`
messages (see protocol.py); the cell blocks until the host replies.

Output: fds 1 and 2 are pipes read by capture threads in this process, so `print`, writes to
the raw fds and child processes all land in the cell's output, capped at `output_limit`
characters. The control channel is a separate socket, which model output cannot reach.

Time: the cell's timeout is enforced here with SIGALRM; the host sends SIGINT as a backstop.
Both raise `CellInterrupted` in the cell, never in the middle of a protocol write.

Locally this file runs as a fork server (`serve_forks`): one process with everything imported
forks each new REPL, which then calls `serve_repl` with its own control socket.
"""

from __future__ import annotations

import ast
import codecs
import errno
import importlib.util
import io
import itertools
import json
import linecache
import mmap
import os
import queue
import signal
import socket
import sys
import threading
import time
import traceback
from pathlib import Path
from types import FrameType, ModuleType
from typing import Any


def _load_protocol() -> ModuleType:
    loaded = sys.modules.get("rlm_async_protocol")
    if loaded is not None:
        return loaded
    spec = importlib.util.spec_from_file_location("rlm_async_protocol", Path(__file__).with_name("protocol.py"))
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["rlm_async_protocol"] = module
    spec.loader.exec_module(module)
    return module


protocol = _load_protocol()

RESERVED_NAMES = frozenset(
    {
        "context",
        "llm_query",
        "llm_query_batched",
        "rlm_query",
        "rlm_query_batched",
        "FINAL",
        "FINAL_VAR",
        "SHOW_VARS",
        "answer",
    }
)


class CellInterrupted(BaseException):
    """Raised in a running cell when its time is up. BaseException: `except Exception` won't eat it."""


class Interrupts:
    """Turns SIGALRM/SIGINT into CellInterrupted, but only inside a cell and outside protocol writes."""

    def __init__(self) -> None:
        self.in_cell = False
        self.critical = 0
        self.pending = False
        signal.signal(signal.SIGALRM, self._on_signal)
        signal.signal(signal.SIGINT, self._on_signal)

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        if not self.in_cell:
            return
        if self.critical:
            self.pending = True
            return
        raise CellInterrupted

    def __enter__(self) -> None:
        self.critical += 1

    def __exit__(self, *exc: object) -> None:
        self.critical -= 1
        if not self.critical and self.pending and self.in_cell:
            self.pending = False
            raise CellInterrupted


class FdCapture:
    """Local REPLs: fd 1 or 2 is a pipe read by a thread here, so `print`, raw fd writes and child
    processes all land in the cell's output. Keeps the first `limit` characters, counts all."""

    def __init__(self, fd: int, limit: int, marker: bytes) -> None:
        self._read_fd, self.write_fd = os.pipe()
        self.fd = fd
        self.name = "stdout" if fd == 1 else "stderr"
        self.limit = limit
        self.marker = marker
        self._lock = threading.Lock()
        self._seen_marker = threading.Event()
        self._reset()
        os.dup2(self.write_fd, fd)
        threading.Thread(target=self._pump, daemon=True).start()

    def _reset(self) -> None:
        self._decoder = codecs.getincrementaldecoder("utf-8")("replace")
        self._parts: list[str] = []
        self._kept = 0
        self.total = 0

    def _append(self, data: bytes) -> None:
        text = self._decoder.decode(data)
        self.total += len(text)
        if self._kept < self.limit:
            text = text[: self.limit - self._kept]
            self._parts.append(text)
            self._kept += len(text)

    def _pump(self) -> None:
        pending = b""
        keep = len(self.marker) - 1
        while chunk := os.read(self._read_fd, 1 << 16):
            pending += chunk
            with self._lock:
                while (at := pending.find(self.marker)) >= 0:
                    self._append(pending[:at])
                    pending = pending[at + len(self.marker) :]
                    self._seen_marker.set()
                if len(pending) > keep:
                    self._append(pending[: len(pending) - keep])
                    pending = pending[len(pending) - keep :]

    def begin(self) -> None:
        """Undo what model code may have done: replaced sys.stdout, closed or redirected the fd."""
        setattr(sys, self.name, getattr(sys, f"__{self.name}__"))  # first: dropping a stray file may close the fd
        os.dup2(self.write_fd, self.fd)

    def take(self) -> tuple[str, int]:
        """Everything written so far (waits until the pipe is drained); then start afresh."""
        self._seen_marker.clear()
        try:
            os.write(self.fd, self.marker)
            self._seen_marker.wait(timeout=5)
        except OSError:
            pass
        with self._lock:
            text, total = "".join(self._parts), self.total
            self._reset()
        return text, total


class TextCapture(io.TextIOBase):
    """Sandboxed REPLs: sys.stdout or sys.stderr itself is replaced for the cell, so the
    sandbox's own output stream only carries our tagged protocol lines."""

    def __init__(self, name: str, limit: int) -> None:
        self.name, self.limit = name, limit
        self._saved: Any = None
        self._parts: list[str] = []
        self._kept = self.total = 0

    def begin(self) -> None:
        self._saved = getattr(sys, self.name)
        setattr(sys, self.name, self)

    def write(self, text: str) -> int:
        self.total += len(text)
        if self._kept < self.limit:
            part = text[: self.limit - self._kept]
            self._parts.append(part)
            self._kept += len(part)
        return len(text)

    @property
    def buffer(self) -> _BinaryWriter:
        """Bytes written here are decoded as UTF-8, like a text stream's binary buffer."""
        return _BinaryWriter(self)

    def take(self) -> tuple[str, int]:
        setattr(sys, self.name, self._saved)
        text, total = "".join(self._parts), self.total
        self._parts, self._kept, self.total = [], 0, 0
        return text, total


class _BinaryWriter:
    def __init__(self, text: TextCapture) -> None:
        self._text = text

    def write(self, data: bytes) -> int:
        self._text.write(bytes(data).decode("utf-8", "replace"))
        return len(data)

    def flush(self) -> None:
        pass


class SocketChannel:
    """Local REPLs: the control socket; one reader thread, thread-safe sends, calls matched to replies."""

    def __init__(self, sock: socket.socket, interrupts: Interrupts) -> None:
        self._sock = sock
        self._interrupts = interrupts
        self._send_lock = threading.Lock()
        self._ids = itertools.count(1)
        self._waiting: dict[int, tuple[threading.Event, list[Any]]] = {}
        self.inbox: queue.Queue[dict[str, Any]] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def send(self, message: dict[str, Any]) -> None:
        frame = protocol.encode_frame(message)
        with self._interrupts, self._send_lock:
            self._sock.sendall(frame)

    def _read(self) -> None:
        decoder = protocol.FrameDecoder()
        while data := self._sock.recv(1 << 20):
            for message in decoder.feed(data):
                if message["type"] == "reply":
                    waiter = self._waiting.get(message["id"])
                    if waiter is not None:  # else: a reply to a call the cell gave up on
                        waiter[1].append(message["results"])
                        waiter[0].set()
                else:
                    self.inbox.put(message)
        os.killpg(0, signal.SIGKILL)  # the host is gone: take down everything this REPL started

    def call(self, fn: str, prompts: list[str], contexts: list[Any] | None, model: str | None) -> list[str]:
        call_id = next(self._ids)
        done, box = threading.Event(), list[Any]()
        self._waiting[call_id] = (done, box)
        try:
            self.send(
                {"type": "call", "id": call_id, "fn": fn, "prompts": prompts, "contexts": contexts, "model": model}
            )
            done.wait()
        finally:
            del self._waiting[call_id]
        return [result["text"] for result in box[0]]


class FileChannel:
    """Sandboxed REPLs, which cannot reach the host: a call goes out as one tagged line on the
    sandbox's stdout; the host writes the reply to `<reply_dir>/<id>.json`. A JSON object
    parses only once it is whole, so a file caught half-written is simply read again."""

    def __init__(self, out: Any, tag: str, reply_dir: str, interrupts: Interrupts) -> None:
        self.out, self.tag, self.reply_dir, self._interrupts = out, tag, reply_dir, interrupts
        self._send_lock = threading.Lock()
        self._ids = itertools.count(1)
        os.makedirs(reply_dir, exist_ok=True)

    def send(self, message: dict[str, Any]) -> None:
        line = f"{self.tag}{json.dumps(message, ensure_ascii=False)}\n"
        with self._interrupts, self._send_lock:
            self.out.write(line)
            self.out.flush()

    def call(self, fn: str, prompts: list[str], contexts: list[Any] | None, model: str | None) -> list[str]:
        call_id = next(self._ids)
        self.send({"type": "call", "id": call_id, "fn": fn, "prompts": prompts, "contexts": contexts, "model": model})
        path = os.path.join(self.reply_dir, f"{call_id}.json")
        delay = 0.0005
        while (reply := _read_json(path)) is None:
            time.sleep(delay)
            delay = min(delay * 1.5, 0.005)
        os.remove(path)
        return [result["text"] for result in reply["results"]]


def _read_json(path: str) -> Any:
    """The JSON in `path`, or None while the file is missing or not yet whole."""
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except (FileNotFoundError, ValueError):
        return None


Channel = SocketChannel | FileChannel
Capture = FdCapture | TextCapture


def _check_str(fn: str, what: str, value: object) -> None:
    if not isinstance(value, str):
        raise TypeError(f"{fn}: {what} must be a str, got {type(value).__name__}")


def _check_list(fn: str, prompts: object) -> list[str]:
    if not isinstance(prompts, (list, tuple)):
        raise TypeError(f"{fn}: prompts must be a list of str, got {type(prompts).__name__}")
    for i, prompt in enumerate(prompts):
        _check_str(fn, f"prompts[{i}]", prompt)
    return list(prompts)


class Repl:
    """The namespace model code runs in, and the cell runner."""

    def __init__(self, channel: Channel, interrupts: Interrupts, stdout: Capture, stderr: Capture) -> None:
        self.channel = channel
        self.interrupts = interrupts
        self.stdout, self.stderr = stdout, stderr
        self.final: str | None = None
        self.cells = 0
        self.namespace: dict[str, Any] = {"__name__": "__main__", "__builtins__": __builtins__}
        self.namespace.update(
            llm_query=self.llm_query,
            llm_query_batched=self.llm_query_batched,
            rlm_query=self.rlm_query,
            rlm_query_batched=self.rlm_query_batched,
            FINAL=self.FINAL,
            FINAL_VAR=self.FINAL_VAR,
            SHOW_VARS=self.SHOW_VARS,
            answer={"content": "", "ready": False},
        )

    # -- what model code calls --------------------------------------------------------------
    def llm_query(self, prompt: str, model: str | None = None) -> str:
        """Ask a sub-model one question; returns its answer (or a string starting with "[error]")."""
        _check_str("llm_query", "prompt", prompt)
        return self.channel.call("llm_query", [prompt], None, model)[0]

    def llm_query_batched(self, prompts: list[str], model: str | None = None) -> list[str]:
        """Ask many questions concurrently; answers come back in the same order."""
        return self.channel.call("llm_query_batched", _check_list("llm_query_batched", prompts), None, model)

    def rlm_query(self, prompt: str, context: Any = None, model: str | None = None) -> str:
        """Hand a sub-task to a child RLM with its own REPL (its `context` defaults to the prompt)."""
        _check_str("rlm_query", "prompt", prompt)
        return self.channel.call("rlm_query", [prompt], [context], model)[0]

    def rlm_query_batched(
        self, prompts: list[str], contexts: list[Any] | None = None, model: str | None = None
    ) -> list[str]:
        """Run child RLMs concurrently; answers come back in the same order."""
        prompts = _check_list("rlm_query_batched", prompts)
        if contexts is not None and (not isinstance(contexts, (list, tuple)) or len(contexts) != len(prompts)):
            raise TypeError("rlm_query_batched: contexts must be a list as long as prompts")
        return self.channel.call("rlm_query_batched", prompts, list(contexts) if contexts else None, model)

    def FINAL(self, text: str) -> None:
        """Submit `text` as the final answer."""
        _check_str("FINAL", "the answer", text)
        self.final = text

    def FINAL_VAR(self, name: str) -> None:
        """Submit the value of the REPL variable `name` as the final answer."""
        _check_str("FINAL_VAR", "the variable name", name)
        if name not in self.namespace:
            raise NameError(f"FINAL_VAR: no variable named {name!r}; defined: {self.user_names()}")
        _check_str("FINAL_VAR", f"variable {name!r}", self.namespace[name])
        self.final = self.namespace[name]

    def SHOW_VARS(self) -> dict[str, str]:
        """Your variables and their types."""
        return {name: type(self.namespace[name]).__name__ for name in self.user_names()}

    def user_names(self) -> list[str]:
        return [n for n in self.namespace if not n.startswith("_") and n not in RESERVED_NAMES]

    # -- running cells ----------------------------------------------------------------------
    def run_cell(self, cell: int, code: str, timeout: float) -> dict[str, Any]:
        self.final, error, timed_out = None, None, False
        self.stdout.begin()
        self.stderr.begin()
        filename = f"<cell {cell}>"
        linecache.cache[filename] = (len(code), None, code.splitlines(True), filename)
        try:
            self.interrupts.in_cell = True
            signal.setitimer(signal.ITIMER_REAL, timeout)
            self._exec(code, filename)
        except CellInterrupted:
            timed_out = True
            error = f"TimeoutError: the cell ran longer than {timeout:g} s and was interrupted"
        except BaseException as exc:  # model code may raise anything, SystemExit included
            error = self._format_error(exc, filename)
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
            self.interrupts.in_cell = False
            self.interrupts.pending = False
        final = None if error else self._submitted()
        if isinstance(final, Exception):
            final, error = None, f"{type(final).__name__}: {final}"
        for stream in (sys.stdout, sys.stderr):
            try:
                if stream is not None:
                    stream.flush()
            except (OSError, ValueError):
                pass
        stdout, stdout_chars = self.stdout.take()
        stderr, stderr_chars = self.stderr.take()
        return {
            "type": "done",
            "cell": cell,
            "stdout": stdout,
            "stderr": stderr,
            "stdout_chars": stdout_chars,
            "stderr_chars": stderr_chars,
            "error": error,
            "final": final,
            "draft": self._draft(),
            "timed_out": timed_out,
        }

    def run_and_report(self, cell: int, code: str, timeout: float) -> None:
        self.channel.send(self.run_cell(cell, code, timeout))

    def _exec(self, code: str, filename: str) -> None:
        """Run `code`; like a notebook, show the value of a final bare expression."""
        tree = ast.parse(code, filename)
        last = tree.body.pop() if tree.body and isinstance(tree.body[-1], ast.Expr) else None
        exec(compile(tree, filename, "exec"), self.namespace)
        if isinstance(last, ast.Expr):
            value = eval(compile(ast.Expression(last.value), filename, "eval"), self.namespace)
            if value is not None:
                print(repr(value))

    def _submitted(self) -> str | Exception | None:
        """The answer this cell submitted: FINAL/FINAL_VAR, or `answer` with ready=True."""
        if self.final is not None:
            return self.final
        answer = self.namespace.get("answer")
        if isinstance(answer, dict) and answer.get("ready") is True:
            content = answer.get("content")
            if not isinstance(content, str):
                return TypeError(f"answer['content'] must be a str, got {type(content).__name__}")
            return content
        return None

    def _draft(self) -> str | None:
        """`answer["content"]` while not ready: the best answer so far if the run is cut short."""
        answer = self.namespace.get("answer")
        content = answer.get("content") if isinstance(answer, dict) else None
        return content if isinstance(content, str) and content else None

    @staticmethod
    def _format_error(exc: BaseException, filename: str) -> str:
        frames = [f for f in traceback.extract_tb(exc.__traceback__) if f.filename == filename]
        lines = traceback.format_list(frames) if frames else []
        detail = "".join(traceback.format_exception_only(type(exc), exc))
        return ("Traceback (most recent call last):\n" + "".join(lines) if lines else "") + detail


def _apply_rlimits(limits: dict[str, int]) -> None:
    import resource

    for name, value in limits.items():
        resource.setrlimit(getattr(resource, f"RLIMIT_{name}"), (value, value))


def _load_context(path: str | None, kind: str | None) -> Any:
    if path is None:
        return None
    if kind != "str":
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    with open(path, "rb") as f:
        if os.fstat(f.fileno()).st_size == 0:
            return ""
        # Decoding straight from the page cache skips a bytes copy of the whole file.
        with mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as mapped:
            return str(mapped, "utf-8")


def serve_repl(control_fd: int) -> None:
    """Be a REPL: load the context named by the `init` message, then run cells until the host leaves."""
    interrupts = Interrupts()
    channel = SocketChannel(socket.socket(fileno=control_fd), interrupts)
    init = channel.inbox.get()
    marker = b"\x00\x01rlm-async-output-end-" + os.urandom(8).hex().encode() + b"\x01\x00"
    stdout = FdCapture(1, init["output_limit"], marker)
    stderr = FdCapture(2, init["output_limit"], marker)
    repl = Repl(channel, interrupts, stdout, stderr)
    try:
        _apply_rlimits(init["rlimits"])
        started = time.perf_counter()
        repl.namespace["context"] = _load_context(init["context_path"], init["context_kind"])
        channel.send({"type": "ready", "error": None, "load_seconds": time.perf_counter() - started})
    except BaseException as exc:
        error = f"{type(exc).__name__}: {exc}"
        if isinstance(exc, MemoryError) or getattr(exc, "errno", None) == errno.ENOMEM:
            error = f"MemoryError: the context does not fit in the memory limit ({init['rlimits']['AS']:,} bytes)"
        channel.send({"type": "ready", "error": error})
        return
    while True:
        message = channel.inbox.get()
        repl.run_and_report(message["cell"], message["code"], message["timeout"])


def sandbox_repl(tag: str, reply_dir: str, output_limit: int, context_path: str | None, kind: str | None) -> Repl:
    """Be a REPL inside a sandbox's Python kernel: the host then runs `run_and_report` per cell."""
    interrupts = Interrupts()
    channel = FileChannel(sys.stdout, tag, reply_dir, interrupts)
    repl = Repl(channel, interrupts, TextCapture("stdout", output_limit), TextCapture("stderr", output_limit))
    repl.namespace["context"] = _load_context(context_path, kind)
    return repl


def serve_forks(server_fd: int) -> None:
    """Be the fork server: with everything imported already, fork a new REPL per request.

    Requests (one datagram each) are JSON: {"op": "spawn", "cwd", "env", "log"} with the
    REPL's control socket attached as a file descriptor, answered {"pid"}; or
    {"op": "exit_code", "pid"}, answered {"exit_code"}: None while it runs, negative for a signal.
    """
    server = socket.socket(fileno=server_fd)
    exited: dict[int, int] = {}

    def reap(signum: int, frame: FrameType | None) -> None:
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            exited[pid] = os.waitstatus_to_exitcode(status)

    signal.signal(signal.SIGCHLD, reap)
    while True:
        data, fds, _, _ = socket.recv_fds(server, 1 << 16, 1)
        if not data:
            os._exit(0)  # the host is gone
        request = json.loads(data)
        if request["op"] == "exit_code":
            reply = {"exit_code": exited.pop(request["pid"], None)}
        else:
            pid = os.fork()
            if pid == 0:
                server.close()
                signal.signal(signal.SIGCHLD, signal.SIG_DFL)
                _become_repl(request, fds[0])
            os.close(fds[0])
            reply = {"pid": pid}
        server.send(json.dumps(reply).encode())


def _become_repl(request: dict[str, Any], control_fd: int) -> None:
    """In a freshly forked child: a session, directory, environment and stderr of its own."""
    try:
        os.setsid()
        os.chdir(request["cwd"])
        os.environ.clear()
        os.environ.update(request["env"])
        log = os.open(request["log"], os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        os.dup2(log, 2)
        os.close(log)
        serve_repl(control_fd)
    except BaseException:
        traceback.print_exc()
    finally:
        os._exit(0)


if __name__ == "__main__":
    serve_forks(int(sys.argv[1]))
