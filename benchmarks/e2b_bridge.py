"""What the E2B bridge costs: sandbox start, a cell round trip, and a sub-call round trip.

    python benchmarks/e2b_bridge.py              # against the stand-in sandbox of tests/e2b_server.py
    python benchmarks/e2b_bridge.py --external   # against a code-interpreter server already on
                                                 # 127.0.0.1:49999 (e.g. E2B's real one); the
                                                 # stand-in then serves only envd's /files

Runs the unmodified SDK in debug mode (E2B_DEBUG=true), so nothing leaves 127.0.0.1.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import anyio

sys.path.insert(0, str(Path(__file__).parents[1]))
os.environ["E2B_DEBUG"] = "true"

from rlm_async.context import Context
from rlm_async.environments.base import SubcallRequest
from rlm_async.environments.e2b import E2BEnvironment
from rlm_async.environments.protocol import Result
from tests.e2b_server import FakeSandbox


async def instant(request: SubcallRequest) -> list[Result]:
    return [Result(ok=True, text="ok") for _ in request.prompts]


async def measure(external: bool, repeat: int) -> dict[str, float]:
    root = Path(tempfile.mkdtemp())
    async with FakeSandbox(root, code_interpreter=not external).running():
        starts, cells, subcalls, batches = [], [], [], []
        for _ in range(repeat):
            env = E2BEnvironment(workdir=str(root / "work"))
            began = time.perf_counter()
            await env.start(Context.of("lorem ipsum " * 1000), instant)
            starts.append(time.perf_counter() - began)
            cells.append((await env.execute("x = 1", 30)).duration)
            sequential = (await env.execute("for i in range(20):\n    llm_query(str(i))", 60)).duration
            subcalls.append((sequential - cells[-1]) / 20)
            batches.append((await env.execute("llm_query_batched([str(i) for i in range(16)])", 60)).duration)
            await env.aclose()
    return {
        "start_s": statistics.median(starts),
        "cell_ms": 1000 * statistics.median(cells),
        "subcall_ms": 1000 * statistics.median(subcalls),
        "batch16_ms": 1000 * statistics.median(batches),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--external", action="store_true", help="use the server already on the debug ports")
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    figures = anyio.run(measure, args.external, args.repeat)
    print("| Measure | Median |\n|---|---|")
    print(f"| Sandbox start: create, upload context, load runtime | {figures['start_s']:.3f} s |")
    print(f"| Cell round trip (trivial cell) | {figures['cell_ms']:.1f} ms |")
    print(f"| Sub-call round trip beyond the model (20 sequential `llm_query`) | {figures['subcall_ms']:.1f} ms |")
    print(f"| 16-way `llm_query_batched`, instant model | {figures['batch16_ms']:.1f} ms |")


if __name__ == "__main__":
    main()
