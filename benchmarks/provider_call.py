"""What one model call costs through each official SDK, apart from the model: a request to a
wire-format server on 127.0.0.1 that answers at once (tests/wire_servers.py).

    python benchmarks/provider_call.py
"""

from __future__ import annotations

import statistics
import sys
import time
from pathlib import Path

import anyio

sys.path.insert(0, str(Path(__file__).parents[1]))

from rlm_async.providers.anthropic import AnthropicProvider
from rlm_async.providers.base import Message
from rlm_async.providers.openai import OpenAIProvider
from tests.wire_servers import AnthropicServer, OpenAIServer, Reply, WireServer

MESSAGES = [Message("system", "x" * 3000), Message("user", "hi")]


async def per_call_ms(server: WireServer, kind: str, calls: int = 50) -> float:
    async with server.running() as url:
        provider = (
            OpenAIProvider("m", base_url=f"{url}/v1") if kind == "openai" else AnthropicProvider("m", base_url=url)
        )
        for _ in range(5):
            await provider.complete(MESSAGES, max_output_tokens=5)
        samples = []
        for _ in range(calls):
            began = time.perf_counter()
            await provider.complete(MESSAGES, max_output_tokens=5)
            samples.append(time.perf_counter() - began)
        await provider.aclose()
    return 1000 * statistics.median(samples)


async def main() -> None:
    print("| One call to a server on 127.0.0.1 that answers at once | Median |\n|---|---|")
    for kind, server in (("openai", OpenAIServer(default=lambda b: Reply("ok"))),
                         ("anthropic", AnthropicServer(default=lambda b: Reply("ok")))):  # fmt: skip
        print(f"| {kind} SDK | {await per_call_ms(server, kind):.1f} ms |")


if __name__ == "__main__":
    anyio.run(main)
