"""What rlm-async itself costs, with scripted models of fixed latency.

    python benchmarks/overhead.py            # prints a Markdown table (the README's figures)
    python benchmarks/overhead.py --json

Each figure is the median of --repeat runs. Targets come from the core issue.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import statistics
import threading
import time
from collections.abc import Awaitable, Callable, Sequence

import anyio
import psutil

from rlm_async import RLM, Limits
from rlm_async.environments.forkserver import ForkServer
from rlm_async.events import CodeExecuted, Event
from rlm_async.providers.base import Message
from rlm_async.testing import FunctionProvider, ScriptedProvider

SUB_LATENCY = 0.2


def repl(code: str) -> str:
    return f"```repl\n{code}\n```"


def sub_model(latency: float = SUB_LATENCY) -> FunctionProvider:
    return FunctionProvider(lambda m: "ok", name="sub", latency=latency)


async def run_seconds(rlm: RLM, context: object = "ctx") -> float:
    started = time.perf_counter()
    result = await rlm.completion("q", context)
    assert result.stop_reason == "final", result.stop_reason
    return time.perf_counter() - started


async def per_turn() -> float:
    """Seconds per turn: (21 turns − 1 turn) / 20, with an instant model and a trivial cell."""
    limits = Limits(max_iterations=30)
    one = await run_seconds(RLM(ScriptedProvider(["FINAL(x)"]), limits=limits))
    many = await run_seconds(RLM(ScriptedProvider([repl("x = 1")] * 20 + ["FINAL(x)"]), limits=limits))
    return (many - one) / 20


async def one_completion() -> float:
    """A completion whose model answers at once: set-up and teardown of a run and its REPL."""
    return await run_seconds(RLM(ScriptedProvider(["FINAL(x)"])))


async def cell_seconds(code: str, **options: object) -> float:
    """How long the one cell of a run took (the cell does the sub-calls)."""
    cells: list[CodeExecuted] = []

    def keep(event: Event) -> None:
        if isinstance(event, CodeExecuted):
            cells.append(event)

    rlm = RLM(ScriptedProvider([repl(code), "FINAL(x)"]), sub_model=sub_model(), **options)  # type: ignore[arg-type]
    await rlm.completion("q", "ctx", on_event=keep)
    return cells[0].duration


async def per_subcall() -> float:
    """Overhead of one llm_query beyond the model's latency: 20 sequential calls at 200 ms."""
    seconds = await cell_seconds("for i in range(20):\n    llm_query(str(i))")
    return (seconds - 20 * SUB_LATENCY) / 20


async def batch_64() -> float:
    """Wall time of one 64-way llm_query_batched at 200 ms with max_concurrency=64."""
    return await cell_seconds("llm_query_batched([str(i) for i in range(64)])", max_concurrency=64)


async def concurrent_completions() -> float:
    """Wall time of 8 completions at once, each fanning out 16 sub-calls of 200 ms."""

    def respond(messages: Sequence[Message]) -> str:
        return "FINAL(done)" if len(messages) > 2 else repl("llm_query_batched([str(i) for i in range(16)])")

    rlm = RLM(FunctionProvider(respond, name="root"), sub_model=sub_model())
    started = time.perf_counter()
    async with anyio.create_task_group() as tg:
        for _ in range(8):
            tg.start_soon(run_seconds, rlm)
    return time.perf_counter() - started


class PeakRss:
    """Samples the RSS of this process plus its children every 5 ms."""

    def __init__(self) -> None:
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    @staticmethod
    def total(kind: str = "rss", *, fork_server: bool = True) -> int:
        """Memory of this process and its descendants: "rss" (shared pages counted in every
        process that maps them) or "pss" (shared pages split between them: counted once).
        `fork_server=False` leaves out the fork server, leaving host + REPLs."""
        me = psutil.Process()
        skip = set() if fork_server else ForkServer.pids()
        total = 0
        for process in [me, *me.children(recursive=True)]:
            with contextlib.suppress(psutil.NoSuchProcess):
                if process.pid not in skip:
                    info = process.memory_full_info() if kind == "pss" else process.memory_info()
                    total += getattr(info, kind)
        return total

    def _sample(self) -> None:
        while not self._stop.wait(0.005):
            self.peak = max(self.peak, self.total())

    def __enter__(self) -> PeakRss:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


async def large_context(megabytes: int = 100) -> dict[str, float]:
    """Load a context of `megabytes` and regex-scan it in the REPL; time and memory."""
    size = megabytes * 2**20
    needle = "The magic number is 4217."
    text = ("lorem ipsum dolor sit amet " * (size // 27 + 1))[: size - len(needle)] + needle
    code = "import re\nFINAL(re.search(r'magic number is (\\d+)', context).group(1))"
    steady: list[tuple[int, int, int]] = []
    rss = PeakRss()

    def at_cell(event: Event) -> None:
        if isinstance(event, CodeExecuted):
            steady.append((rss.total("rss", fork_server=False), rss.total("pss"), rss.total("rss")))

    rlm = RLM(ScriptedProvider([repl(code)]))
    with rss:
        started = time.perf_counter()
        result = await rlm.completion("q", text, on_event=at_cell)
        seconds = time.perf_counter() - started
    assert result.answer == "4217"
    return {
        "seconds": seconds,
        "rss_ratio": steady[0][0] / size,
        "pss_ratio": steady[0][1] / size,
        "all_rss_ratio": steady[0][2] / size,
        "peak_rss_ratio": rss.peak / size,
    }


def median_of(repeat: int, measure: Callable[[], Awaitable[float]]) -> float:
    return statistics.median(anyio.run(measure) for _ in range(repeat))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    big = [anyio.run(large_context) for _ in range(max(1, args.repeat // 2))]
    figures = {
        "per_turn_ms": 1000 * median_of(args.repeat, per_turn),
        "per_subcall_ms": 1000 * median_of(args.repeat, per_subcall),
        "batch_64_s": median_of(args.repeat, batch_64),
        "one_completion_s": median_of(args.repeat, one_completion),
        "eight_completions_fan_out_16_s": median_of(args.repeat, concurrent_completions),
        "context_100mb_s": statistics.median(b["seconds"] for b in big),
        "context_100mb_rss_ratio": statistics.median(b["rss_ratio"] for b in big),
        "context_100mb_pss_ratio": statistics.median(b["pss_ratio"] for b in big),
        "context_100mb_all_rss_ratio": statistics.median(b["all_rss_ratio"] for b in big),
        "context_100mb_peak_rss_ratio": statistics.median(b["peak_rss_ratio"] for b in big),
    }
    if args.json:
        print(json.dumps(figures, indent=2))
        return
    rows = [
        ("Per turn, instant model (20 turns)", f"{figures['per_turn_ms']:.1f} ms", "≤ 10 ms"),
        ("Per sub-call beyond model latency (20 × 200 ms)", f"{figures['per_subcall_ms']:.1f} ms", "≤ 5 ms"),
        ("64-way llm_query_batched at 200 ms", f"{figures['batch_64_s']:.3f} s", "≤ 0.30 s"),
        ("One completion that answers at once (set-up and teardown)", f"{figures['one_completion_s']:.3f} s", "—"),
        ("8 concurrent completions × 16 sub-calls at 200 ms", f"{figures['eight_completions_fan_out_16_s']:.3f} s",
         "≤ 0.5 s"),
        ("Load + regex-scan a 100 MB context", f"{figures['context_100mb_s']:.3f} s", "≤ 1.0 s"),
        ("RSS of host + REPL after load, × context", f"{figures['context_100mb_rss_ratio']:.2f}×", "≤ 2.5×"),
        ("PSS of every process (fork server too; shared pages once), × context",
         f"{figures['context_100mb_pss_ratio']:.2f}×", "—"),
        ("RSS summed over every process (fork server too; shared pages twice), × context",
         f"{figures['context_100mb_all_rss_ratio']:.2f}×", "—"),
        ("Peak RSS summed during load, × context", f"{figures['context_100mb_peak_rss_ratio']:.2f}×", "—"),
    ]  # fmt: skip
    print("| Measure | rlm-async | Target |\n|---|---|---|")
    for row in rows:
        print("| " + " | ".join(row) + " |")


if __name__ == "__main__":
    main()
