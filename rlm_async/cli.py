"""The `rlm-async` command."""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import anyio

from rlm_async.budget import Limits, Usage, UsageTotals
from rlm_async.errors import ConfigurationError, ContextError, RLMError
from rlm_async.progress import LiveTree, PlainLines
from rlm_async.rlm import RLM, RLMResult
from rlm_async.run import EventCallback
from rlm_async.viewer import write_html

EXIT_ANSWERED, EXIT_ERROR, EXIT_USAGE, EXIT_LIMIT, EXIT_INTERRUPTED = 0, 1, 2, 3, 130

RUN_EPILOG = """\
models:
  openai:MODEL                  api.openai.com; key from $OPENAI_API_KEY
  anthropic:MODEL               api.anthropic.com; key from $ANTHROPIC_API_KEY
  openai:MODEL@BASE_URL         any OpenAI-compatible server, e.g.
                                openai:qwen2.5-coder@http://127.0.0.1:8080/v1 (llama.cpp),
                                openai:llama3.1@http://127.0.0.1:11434/v1 (Ollama)
  anthropic:MODEL@BASE_URL      any Anthropic-compatible server

exit codes:
  0  the model submitted an answer
  1  the run failed (model API, environment)
  2  bad arguments, settings or context
  3  a limit stopped the run; the best draft answer, if any, is printed
  130 interrupted
"""


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    return int(args.handler(args))


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="rlm-async", description="Recursive Language Models: answer queries over contexts of any size."
    )
    commands = parser.add_subparsers(required=True, metavar="COMMAND")
    run = commands.add_parser(
        "run",
        help="answer a query over a context file",
        description="Answer QUERY about the context in FILE with a Recursive Language Model.",
        epilog=RUN_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    run.set_defaults(handler=_run)
    view = commands.add_parser(
        "view",
        help="turn a saved trace into one HTML page",
        description="Write TRACE (saved with run --trace) as a self-contained HTML page: the agent tree, each "
        "turn's reply, code and output, usage per node, and a timeline of concurrent calls.",
    )
    view.set_defaults(handler=_view)
    view.add_argument("trace", type=Path, metavar="TRACE", help="a trace file (JSON Lines)")
    view.add_argument("-o", "--output", type=Path, metavar="HTML", help="where to write (default: TRACE.html)")
    run.add_argument("--query", "-q", required=True, help="the question to answer")
    source = run.add_mutually_exclusive_group(required=True)
    source.add_argument("--context", "-c", type=Path, metavar="FILE", help="a UTF-8 text file; - reads stdin")
    source.add_argument("--context-json", type=Path, metavar="FILE", help="a JSON file: a list of str or an object")
    run.add_argument("--model", "-m", required=True, help="the root model (see 'models' below)")
    run.add_argument("--sub-model", help="the model behind llm_query (default: --model)")
    run.add_argument("--child-model", help="the model of child agents made by rlm_query (default: --model)")
    run.add_argument(
        "--env",
        choices=["local", "e2b"],
        default="local",
        help="where model code runs: a local subprocess "
        "(default) or an E2B sandbox (needs rlm-async[e2b] and $E2B_API_KEY)",
    )
    run.add_argument("--max-cost", type=float, metavar="USD", help="dollar limit for the whole run")
    run.add_argument("--max-seconds", type=float, metavar="S", help="wall-clock limit for the whole run")
    run.add_argument("--max-calls", type=int, metavar="N", help="limit on model calls in the whole run")
    run.add_argument("--max-tokens", type=int, metavar="N", help="limit on input + output tokens in the whole run")
    run.add_argument("--max-depth", type=int, default=1, metavar="N", help="REPL levels; 1: only the root (default)")
    run.add_argument("--max-iterations", type=int, default=30, metavar="N", help="turns per agent (default: 30)")
    run.add_argument("--max-concurrency", type=int, default=16, metavar="N", help="model calls in flight (default: 16)")
    run.add_argument("--trace", type=Path, metavar="FILE", help="save the run's trace as JSON Lines")
    run.add_argument("--json", action="store_true", help="print one JSON object instead of text")
    run.add_argument(
        "--quiet", action="store_true", help="no progress on stderr (default: a live tree on a terminal, else lines)"
    )
    return parser


def _view(args: argparse.Namespace) -> int:
    output = args.output or args.trace.with_suffix(".html")
    try:
        write_html(args.trace, output)
    except (OSError, ValueError, KeyError, TypeError) as exc:
        print(f"rlm-async: {args.trace} is not a readable trace: {exc}", file=sys.stderr)
        return EXIT_USAGE
    print(output)
    return EXIT_ANSWERED


def _run(args: argparse.Namespace) -> int:
    try:
        context = _read_context(args)
        limits = Limits(
            max_cost_usd=args.max_cost,
            max_seconds=args.max_seconds,
            max_calls=args.max_calls,
            max_tokens=args.max_tokens,
            max_depth=args.max_depth,
            max_iterations=args.max_iterations,
        )
        rlm = RLM(
            args.model,
            sub_model=args.sub_model,
            child_model=args.child_model,
            environment=args.env,
            limits=limits,
            max_concurrency=args.max_concurrency,
            max_environments=max(16, args.max_depth),
        )
    except (ConfigurationError, ContextError, OSError) as exc:
        print(f"rlm-async: {exc}", file=sys.stderr)
        return EXIT_USAGE
    progress = _progress(args.quiet)
    try:
        with progress if isinstance(progress, LiveTree) else contextlib.nullcontext():
            result = anyio.run(_complete, rlm, args.query, context, progress)
    except KeyboardInterrupt:
        print("rlm-async: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except RLMError as exc:
        print(f"rlm-async: {type(exc).__name__}: {exc}", file=sys.stderr)
        if exc.usage is not None:
            print(_summary("error", exc.usage, None), file=sys.stderr)
        if args.trace and exc.trace is not None:
            exc.trace.save(args.trace)
        return EXIT_USAGE if isinstance(exc, (ConfigurationError, ContextError)) else EXIT_ERROR
    if args.trace:
        result.trace.save(args.trace)
    _print_result(result, as_json=args.json, summary=not args.quiet)
    return EXIT_ANSWERED if result.stop_reason == "final" else EXIT_LIMIT


async def _complete(rlm: RLM, query: str, context: object, on_event: EventCallback | None) -> RLMResult:
    async with rlm:
        return await rlm.completion(query, context, on_event=on_event)


def _progress(quiet: bool) -> LiveTree | PlainLines | None:
    if quiet:
        return None
    return LiveTree(sys.stderr) if sys.stderr.isatty() else PlainLines(sys.stderr)


def _read_context(args: argparse.Namespace) -> object:
    if args.context_json is not None:
        try:
            return json.loads(args.context_json.read_text(encoding="utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise ContextError(f"{args.context_json}: not UTF-8 JSON: {exc}") from exc
    data = sys.stdin.buffer.read() if str(args.context) == "-" else args.context.read_bytes()
    return data  # bytes: validated and decoded as UTF-8 by Context


def _print_result(result: RLMResult, *, as_json: bool, summary: bool) -> None:
    if as_json:
        print(json.dumps(_result_json(result), ensure_ascii=False))
        return
    print(result.answer if result.answer is not None else "")
    if summary:
        print(_summary(result.stop_reason, result.usage, result.seconds), file=sys.stderr)


def _summary(stop_reason: str, usage: Usage, seconds: float | None) -> str:
    cost = "$ unknown" if usage.cost_usd is None else f"${usage.cost_usd:.4f}"
    parts = [
        f"stop: {stop_reason}",
        f"{usage.calls} model calls",
        f"{usage.total_tokens:,} tokens ({usage.input_tokens:,} in, {usage.output_tokens:,} out)",
        cost,
    ]
    if seconds is not None:
        parts.append(f"{seconds:.1f} s")
    return " · ".join(parts)


def _result_json(result: RLMResult) -> dict[str, Any]:
    usage = result.usage
    return {
        "answer": result.answer,
        "stop_reason": result.stop_reason,
        "cost_usd": usage.cost_usd,
        "seconds": round(result.seconds, 3),
        "run_id": result.run_id,
        "usage": {
            "calls": usage.calls,
            "input_tokens": usage.input_tokens,
            "output_tokens": usage.output_tokens,
            "cached_input_tokens": usage.cached_input_tokens,
            "by_model": {name: _totals(t) for name, t in usage.by_model.items()},
            "by_depth": {str(depth): _totals(t) for depth, t in usage.by_depth.items()},
        },
    }


def _totals(totals: UsageTotals) -> dict[str, Any]:
    return {
        "calls": totals.calls,
        "input_tokens": totals.input_tokens,
        "output_tokens": totals.output_tokens,
        "cost_usd": totals.cost_usd,
    }


if __name__ == "__main__":
    sys.exit(main())
