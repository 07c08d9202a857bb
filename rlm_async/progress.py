"""What `rlm-async run` shows while a run goes on: a live tree of agents on a terminal, plain
lines otherwise. Both are `on_event` callbacks fed by the run's events."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, TextIO

from rlm_async.events import (
    AgentFinished,
    AgentStarted,
    BudgetRefused,
    CodeExecuted,
    Event,
    LimitHit,
    ModelCalled,
    SubcallFinished,
    SubcallStarted,
)


@dataclass
class AgentRow:
    depth: int
    parent_id: str | None
    model: str
    started: float
    state: str = "asking the model"
    turn: int = 1
    in_flight: int = 0
    tokens: int = 0
    cost_usd: float | None = 0.0
    finished: float | None = None

    def line(self, now: float) -> str:
        cost = "$?" if self.cost_usd is None else f"${self.cost_usd:.4f}"
        seconds = (self.finished or now) - self.started
        flight = f" · {self.in_flight} sub-calls in flight" if self.in_flight else ""
        return (
            f"depth {self.depth} {self.model} · {self.state} · turn {self.turn}{flight}"
            f" · {self.tokens:,} tokens · {cost} · {seconds:.1f} s"
        )


class RunState:
    """Every agent's row, kept current from events."""

    def __init__(self) -> None:
        self.rows: dict[str, AgentRow] = {}

    def update(self, event: Event) -> None:
        if isinstance(event, AgentStarted):
            self.rows[event.agent_id] = AgentRow(event.depth, event.parent_id, event.model, event.time)
            return
        row = self.rows.get(event.agent_id)
        if row is None:
            return
        if isinstance(event, ModelCalled):
            row.tokens += event.input_tokens + event.output_tokens
            row.cost_usd = None if row.cost_usd is None or event.cost_usd is None else row.cost_usd + event.cost_usd
            if event.turn:
                row.turn, row.state = event.turn, "running code"
        elif isinstance(event, CodeExecuted):
            row.state = "asking the model"
        elif isinstance(event, SubcallStarted):
            row.in_flight += event.count
            row.state = "waiting on sub-calls"
        elif isinstance(event, SubcallFinished):
            row.in_flight -= event.count
            row.state = "running code"
        elif isinstance(event, AgentFinished):
            row.state, row.finished = f"done: {event.stop_reason}", event.time


class LiveTree:
    """A rich Live tree of agents on a terminal, redrawn a few times a second."""

    def __init__(self, stream: TextIO) -> None:
        from rich.console import Console
        from rich.live import Live

        self.state = RunState()
        self.live = Live(console=Console(file=stream), refresh_per_second=4, get_renderable=self._render)

    def __call__(self, event: Event) -> None:
        self.state.update(event)

    def _render(self) -> Any:
        from rich.tree import Tree

        now, rows = time.time(), self.state.rows
        tree = Tree("rlm-async run")
        nodes: dict[str | None, Any] = {None: tree}
        for agent_id, row in rows.items():  # parents start before their children
            nodes[agent_id] = nodes.get(row.parent_id, tree).add(row.line(now))
        return tree

    def __enter__(self) -> LiveTree:
        self.live.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.live.stop()


class PlainLines:
    """One line per notable event, for logs and pipes."""

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream
        self.started = time.time()

    def __call__(self, event: Event) -> None:
        text = self._describe(event)
        if text:
            print(f"[{event.time - self.started:7.2f}s] {event.agent_id} {text}", file=self.stream, flush=True)

    @staticmethod
    def _describe(event: Event) -> str | None:
        if isinstance(event, AgentStarted):
            return f"started (depth {event.depth}, {event.model})"
        if isinstance(event, ModelCalled):
            what = f"turn {event.turn}" if event.turn else "sub-call"
            cost = "" if event.cost_usd is None else f", ${event.cost_usd:.4f}"
            return f"{what}: {event.model} {event.input_tokens:,} in / {event.output_tokens:,} out{cost}"
        if isinstance(event, CodeExecuted):
            outcome = "timed out" if event.timed_out else ("error" if event.error else "ok")
            return f"cell ran {event.duration:.2f} s: {outcome}"
        if isinstance(event, SubcallStarted):
            return f"{event.fn} × {event.count}"
        if isinstance(event, (BudgetRefused, LimitHit)):
            return f"limit reached: {event.limit}"
        if isinstance(event, AgentFinished):
            return f"finished: {event.stop_reason} after {event.turns} turns"
        return None
