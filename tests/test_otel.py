"""OpenTelemetry spans, checked with the SDK's in-memory exporter."""

from __future__ import annotations

from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from rlm_async import RLM, Limits
from rlm_async.otel import OpenTelemetry
from tests.test_events import tree_model


def parent_of(span: ReadableSpan, spans: list[ReadableSpan]) -> ReadableSpan | None:
    return next((s for s in spans if span.parent is not None and s.context.span_id == span.parent.span_id), None)


async def test_spans_follow_the_genai_conventions_and_nest_across_concurrent_children() -> None:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    result = await RLM(tree_model(), limits=Limits(max_depth=2)).completion(
        "q", "ctx", on_event=OpenTelemetry(provider)
    )
    spans = list(exporter.get_finished_spans())
    agents = [s for s in spans if s.attributes and s.attributes.get("gen_ai.operation.name") == "invoke_agent"]
    root = next(s for s in agents if s.parent is None)
    children = [s for s in agents if s is not root]
    assert len(children) == 2 and all(s.context.trace_id == root.context.trace_id for s in spans)
    for child in children:  # each child sits under the root's rlm_query_batched sub-call, inside a turn
        subcall = parent_of(child, spans)
        assert subcall is not None and subcall.name == "subcall rlm_query_batched"
        turn = parent_of(subcall, spans)
        assert turn is not None and turn.name == "turn 1" and parent_of(turn, spans) is root
    a, b = children
    assert a.start_time < b.end_time and b.start_time < a.end_time  # the children ran concurrently
    chats = [s for s in spans if s.name.startswith("chat ")]
    assert len(chats) == result.usage.calls
    assert sum(s.attributes["gen_ai.usage.input_tokens"] for s in chats) == result.usage.input_tokens  # type: ignore[index, misc]
    assert {s.attributes["gen_ai.request.model"] for s in chats} == {"m"}  # type: ignore[index]
    cells = [s for s in spans if s.name == "execute_tool repl"]
    assert len(cells) == 3 and all(parent_of(c, spans).name.startswith("turn ") for c in cells)  # type: ignore[union-attr]
    assert root.attributes["rlm.stop_reason"] == "final"  # type: ignore[index]
    assert all(s.end_time is not None and s.start_time <= s.end_time for s in spans)
