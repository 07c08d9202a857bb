"""`rlm-async run` as a user runs it: a real process, against a wire server on 127.0.0.1."""

from __future__ import annotations

import contextlib
import json
import os
import pty
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import anyio
import pytest

from tests.wire_servers import Error, OpenAIServer, Reply

CONTEXT = "filler " * 2000 + "The magic number is 4217. " + "filler " * 2000


def reply_for(body: dict[str, Any]) -> Reply:
    last = body["messages"][-1]["content"]
    if "output:" in last:
        return Reply("FINAL(4217)")
    return Reply("```repl\nimport re\nprint(re.search(r'number is (\\d+)', context).group(1))\n```")


@pytest.fixture
async def server() -> AsyncIterator[tuple[str, OpenAIServer]]:
    fake = OpenAIServer(default=reply_for)
    async with fake.running() as url:
        yield f"openai:tiny@{url}/v1", fake


async def cli(*args: str, stdin: bytes | None = None) -> tuple[int, str, str]:
    result = await anyio.run_process([sys.executable, "-m", "rlm_async.cli", *args], input=stdin, check=False)
    return result.returncode, result.stdout.decode(), result.stderr.decode()


@pytest.fixture
def context_file(tmp_path: Path) -> Path:
    path = tmp_path / "context.txt"
    path.write_text(CONTEXT)
    return path


async def test_help_is_complete() -> None:
    code, out, _ = await cli("run", "--help")
    assert code == 0
    for option in ("--query", "--context", "--model", "--sub-model", "--env", "--max-cost", "--max-seconds",
                   "--json", "exit codes", "openai:MODEL@BASE_URL", "anthropic:MODEL"):  # fmt: skip
        assert option in out
    code, out, _ = await cli("--help")
    assert code == 0 and "run" in out


async def test_answer_and_summary(server: tuple[str, OpenAIServer], context_file: Path, tmp_path: Path) -> None:
    model, fake = server
    trace = tmp_path / "trace.jsonl"
    code, out, err = await cli("run", "-q", "What is the magic number?", "-c", str(context_file), "-m", model,
                               "--trace", str(trace))  # fmt: skip
    assert (code, out) == (0, "4217\n")
    assert "stop: final · 2 model calls" in err and "$ unknown" in err
    assert len(fake.requests) == 2 and trace.read_text().count("\n") > 3


async def test_json_output_and_stdin(server: tuple[str, OpenAIServer]) -> None:
    model, _ = server
    code, out, _ = await cli("run", "-q", "magic?", "-c", "-", "-m", model, "--json", stdin=CONTEXT.encode())
    data = json.loads(out)
    assert code == 0 and data["answer"] == "4217" and data["stop_reason"] == "final"
    assert data["usage"]["calls"] == 2 and data["usage"]["by_depth"]["0"]["calls"] == 2


async def test_a_limit_stop_exits_3(context_file: Path) -> None:
    fake = OpenAIServer(default=lambda body: Reply("```repl\nanswer['content'] = 'draft'\n```"))
    async with fake.running() as url:
        code, out, err = await cli("run", "-q", "q", "-c", str(context_file), "-m", f"openai:tiny@{url}/v1",
                                   "--max-calls", "2")  # fmt: skip
    assert (code, out) == (3, "draft\n") and "stop: max_calls" in err


async def test_provider_failure_exits_1(context_file: Path) -> None:
    fake = OpenAIServer([Error(401, "invalid_api_key")])
    async with fake.running() as url:
        code, _, err = await cli("run", "-q", "q", "-c", str(context_file), "-m", f"openai:tiny@{url}/v1")
    assert code == 1 and "ProviderAuthError" in err and "401" in err


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["-m", "gpt-5"], "is not KIND:MODEL"),
        (["-m", "openai:x@http://127.0.0.1:1/v1", "--max-cost", "1"], "no known price"),
        (["-m", "openai:x@http://127.0.0.1:1/v1", "--max-calls", "0"], "max_calls must be positive"),
    ],
)
async def test_bad_settings_exit_2(args: list[str], message: str, context_file: Path) -> None:
    code, _, err = await cli("run", "-q", "q", "-c", str(context_file), *args)
    assert code == 2 and message in err


async def test_bad_context_exits_2(tmp_path: Path) -> None:
    binary = tmp_path / "blob.bin"
    binary.write_bytes(b"\xff\xfe\x00bad")
    model = "openai:x@http://127.0.0.1:1/v1"
    code, _, err = await cli("run", "-q", "q", "-c", str(binary), "-m", model)
    assert code == 2 and "not valid UTF-8" in err
    code, _, err = await cli("run", "-q", "q", "-c", str(tmp_path / "missing.txt"), "-m", model)
    assert code == 2 and "No such file" in err


async def test_the_readme_example(tmp_path: Path) -> None:
    """The README's main command, with a model that counts the way a good one would."""
    code = (
        "import re, collections\n"
        "fails = collections.Counter(m.group(1) for m in re.finditer(r'^(\\S+) .*\" 401 ', context, re.M))\n"
        "ip, n = fails.most_common(1)[0]\nresult = f'{ip} with {n} failed logins'\nprint(result)"
    )

    def respond(body: dict[str, Any]) -> Reply:
        return Reply("FINAL_VAR(result)" if "output:" in body["messages"][-1]["content"] else f"```repl\n{code}\n```")

    fake = OpenAIServer(default=respond)
    log = Path(__file__).parents[1] / "examples" / "access.log"
    question = "Which client IP has the most failed logins (HTTP 401), and how many?"
    async with fake.running() as url:
        status, out, _ = await cli("run", "--context", str(log), "--query", question, "--model", f"openai:m@{url}/v1")
    assert (status, out) == (0, "216.85.191.62 with 243 failed logins\n")


async def test_progress_lines_when_stderr_is_not_a_terminal(
    server: tuple[str, OpenAIServer], context_file: Path
) -> None:
    model, _ = server
    code, _, err = await cli("run", "-q", "magic?", "-c", str(context_file), "-m", model)
    assert code == 0
    for line in ("started (depth 0, tiny)", "turn 1: tiny", "cell ran", "finished: final after 2 turns"):
        assert line in err


async def test_quiet_prints_only_the_answer(server: tuple[str, OpenAIServer], context_file: Path) -> None:
    model, _ = server
    assert await cli("run", "-q", "magic?", "-c", str(context_file), "-m", model, "--quiet") == (0, "4217\n", "")


async def test_live_tree_on_a_terminal(server: tuple[str, OpenAIServer], context_file: Path) -> None:
    model, _ = server
    controller, terminal = pty.openpty()
    command = [sys.executable, "-m", "rlm_async.cli", "run", "-q", "magic?", "-c", str(context_file), "-m", model]
    process = await anyio.open_process(command, stdout=subprocess.PIPE, stderr=terminal)
    os.close(terminal)

    def read_all() -> bytes:
        chunks = []
        with contextlib.suppress(OSError):  # EIO once the process closed the terminal
            while chunk := os.read(controller, 65536):
                chunks.append(chunk)
        return b"".join(chunks)

    screen = (await anyio.to_thread.run_sync(read_all)).decode(errors="replace")
    assert await process.wait() == 0
    os.close(controller)
    assert "rlm-async run" in screen and "depth 0 tiny" in screen and "done: final" in screen
    assert "\x1b[" in screen  # drawn with terminal control sequences, not plain lines
