"""rlm-async from Python: the README's main job, in code.

OPENAI_API_KEY=... python examples/quickstart.py
python examples/quickstart.py "openai:qwen2.5-coder@http://127.0.0.1:8080/v1"   # a local server
"""

from __future__ import annotations

import sys
from pathlib import Path

import anyio

from rlm_async import RLM, Limits


async def main(model: str) -> None:
    context = Path(__file__).with_name("access.log").read_text()
    limits = Limits(max_iterations=20, max_calls=200, max_seconds=600, max_cost_usd=1.0 if "@" not in model else None)
    async with RLM(model, limits=limits) as rlm:
        result = await rlm.completion("Which client IP has the most failed logins (HTTP 401), and how many?", context)
    print(result.answer)
    print(f"{result.stop_reason}: {result.usage.calls} calls, {result.usage.total_tokens:,} tokens, ${result.cost_usd}")


if __name__ == "__main__":
    anyio.run(main, sys.argv[1] if len(sys.argv) > 1 else "openai:gpt-5-mini")
