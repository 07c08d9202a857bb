"""OpenTelemetry spans for runs, following the GenAI semantic conventions (`rlm-async[otel]`).

    from rlm_async.otel import OpenTelemetry
    result = await rlm.completion(query, context, on_event=OpenTelemetry())

Spans are built from the run's events, so they nest by agent ids even across concurrent
children: `invoke_agent` per agent, a `turn` span per turn, `chat` per model call (with
`gen_ai.usage.*`), `execute_tool repl` per cell, and `subcall` spans while code waits on
`llm_query`/`rlm_query`. A child agent and an `llm_query` call nest under the sub-call of
their parent that was opened last (with concurrent sub-calls of one agent, that is a guess).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from opentelemetry import trace
from opentelemetry.trace import Span, Status, StatusCode

from rlm_async.events import (
    AgentFinished,
    AgentStarted,
    BudgetRefused,
    CodeExecuted,
    Event,
    ModelCalled,
    SubcallFinished,
    SubcallStarted,
)


def _ns(seconds: float) -> int:
    return int(seconds * 1e9)


@dataclass
class _Agent:
    span: Span
    turn: Span | None = None
    subcalls: dict[int, Span] = field(default_factory=dict)

    def innermost(self) -> Span:
        """Where a nested call or child agent belongs: the newest open sub-call, else the turn."""
        if self.subcalls:
            return list(self.subcalls.values())[-1]
        return self.turn or self.span


class OpenTelemetry:
    """An `on_event` callback that turns events into spans on `tracer_provider` (default: global)."""

    def __init__(self, tracer_provider: trace.TracerProvider | None = None) -> None:
        self.tracer = trace.get_tracer("rlm_async", tracer_provider=tracer_provider)
        self._agents: dict[str, _Agent] = {}

    def __call__(self, event: Event) -> None:
        if isinstance(event, AgentStarted):
            self._agent_started(event)
            return
        agent = self._agents.get(event.agent_id)
        if agent is None:
            return
        if isinstance(event, ModelCalled):
            self._model_called(agent, event)
        elif isinstance(event, CodeExecuted):
            span = self._span("execute_tool repl", agent.turn or agent.span, event.time - event.duration, {
                "gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": "repl",
                "rlm.cell.timed_out": event.timed_out, "rlm.cell.restarted": event.restarted,
            })  # fmt: skip
            if event.error:
                span.set_status(Status(StatusCode.ERROR, event.error.splitlines()[-1]))
            span.end(_ns(event.time))
        elif isinstance(event, SubcallStarted):
            agent.subcalls[event.subcall_id] = self._span(
                f"subcall {event.fn}", agent.turn or agent.span, event.time, {"rlm.subcall.count": event.count}
            )
        elif isinstance(event, SubcallFinished) and event.subcall_id in agent.subcalls:
            span = agent.subcalls.pop(event.subcall_id)
            span.set_attribute("rlm.subcall.errors", event.errors)
            span.end(_ns(event.time))
        elif isinstance(event, BudgetRefused):
            agent.span.add_event("budget_refused", {"rlm.limit": event.limit}, _ns(event.time))
        elif isinstance(event, AgentFinished):
            self._agent_finished(event)

    def _span(self, name: str, parent: Span, start: float, attributes: dict[str, Any]) -> Span:
        context = trace.set_span_in_context(parent)
        return self.tracer.start_span(name, context=context, start_time=_ns(start), attributes=attributes)

    def _agent_started(self, event: AgentStarted) -> None:
        parent = self._agents.get(event.parent_id or "")
        attributes: dict[str, Any] = {
            "gen_ai.operation.name": "invoke_agent", "gen_ai.agent.id": event.agent_id,
            "gen_ai.agent.name": f"rlm depth {event.depth}", "gen_ai.request.model": event.model,
            "rlm.run_id": event.run_id, "rlm.depth": event.depth,
        }  # fmt: skip
        name = f"invoke_agent rlm depth {event.depth}"
        if parent is None:
            span = self.tracer.start_span(name, start_time=_ns(event.time), attributes=attributes)
        else:
            span = self._span(name, parent.innermost(), event.time, attributes)
        self._agents[event.agent_id] = _Agent(span)

    def _model_called(self, agent: _Agent, event: ModelCalled) -> None:
        start = event.time - event.duration
        if event.turn:  # the agent's own turn: a new turn span begins with its model call
            if agent.turn is not None:
                agent.turn.end(_ns(start))
            agent.turn = self._span(f"turn {event.turn}", agent.span, start, {"rlm.turn": event.turn})
        parent = agent.turn if event.turn else agent.innermost()
        span = self._span(f"chat {event.model}", parent or agent.span, start, {
            "gen_ai.operation.name": "chat", "gen_ai.request.model": event.model,
            "gen_ai.response.model": event.model, "gen_ai.usage.input_tokens": event.input_tokens,
            "gen_ai.usage.output_tokens": event.output_tokens,
        })  # fmt: skip
        if event.cost_usd is not None:
            span.set_attribute("rlm.cost_usd", event.cost_usd)
        span.end(_ns(event.time))

    def _agent_finished(self, event: AgentFinished) -> None:
        agent = self._agents.pop(event.agent_id)
        end = _ns(event.time)
        for open_span in [*agent.subcalls.values(), *([agent.turn] if agent.turn else [])]:
            open_span.end(end)
        agent.span.set_attribute("rlm.stop_reason", event.stop_reason)
        agent.span.set_attribute("rlm.turns", event.turns)
        if event.stop_reason == "aborted":
            agent.span.set_status(Status(StatusCode.ERROR, "aborted"))
        agent.span.end(end)
