"""Typed events. Every step of a run emits one; traces, progress views and web apps consume them."""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass, field
from typing import Any, ClassVar

TEXT_LIMIT = 20_000
"""Replies, code and outputs kept in an event are cut to this many characters."""


def clip(text: str, limit: int = TEXT_LIMIT) -> str:
    return text if len(text) <= limit else text[:limit] + f"[… {len(text) - limit:,} more characters]"


@dataclass(frozen=True, kw_only=True)
class Event:
    kind: ClassVar[str] = "event"
    run_id: str
    agent_id: str
    parent_id: str | None
    depth: int
    time: float = field(default_factory=time.time)

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, **dataclasses.asdict(self)}


@dataclass(frozen=True, kw_only=True)
class RunStarted(Event):
    kind: ClassVar[str] = "run_started"
    query: str
    model: str
    limits: dict[str, Any]


@dataclass(frozen=True, kw_only=True)
class RunFinished(Event):
    kind: ClassVar[str] = "run_finished"
    answer: str | None
    stop_reason: str
    calls: int
    input_tokens: int
    output_tokens: int
    cost_usd: float | None
    seconds: float


@dataclass(frozen=True, kw_only=True)
class LimitHit(Event):
    """A limit ended an agent (max_iterations) or the run (max_seconds, or a budget refusal at the root)."""

    kind: ClassVar[str] = "limit_hit"
    limit: str


@dataclass(frozen=True, kw_only=True)
class EventsDropped(Event):
    """`rlm.stream()` only: this many events were dropped because the consumer fell behind."""

    kind: ClassVar[str] = "events_dropped"
    count: int


@dataclass(frozen=True, kw_only=True)
class AgentStarted(Event):
    kind: ClassVar[str] = "agent_started"
    query: str
    model: str


@dataclass(frozen=True, kw_only=True)
class ModelCalled(Event):
    kind: ClassVar[str] = "model_called"
    turn: int
    model: str
    input_tokens: int
    output_tokens: int
    cost_usd: float | None
    duration: float
    reply: str


@dataclass(frozen=True, kw_only=True)
class CodeExecuted(Event):
    kind: ClassVar[str] = "code_executed"
    turn: int
    code: str
    stdout: str
    stderr: str
    error: str | None
    duration: float
    timed_out: bool
    restarted: bool


@dataclass(frozen=True, kw_only=True)
class SubcallStarted(Event):
    kind: ClassVar[str] = "subcall_started"
    subcall_id: int
    fn: str
    count: int
    model: str | None


@dataclass(frozen=True, kw_only=True)
class SubcallFinished(Event):
    kind: ClassVar[str] = "subcall_finished"
    subcall_id: int
    fn: str
    count: int
    errors: int
    duration: float


@dataclass(frozen=True, kw_only=True)
class BudgetRefused(Event):
    kind: ClassVar[str] = "budget_refused"
    limit: str
    message: str


@dataclass(frozen=True, kw_only=True)
class AgentFinished(Event):
    kind: ClassVar[str] = "agent_finished"
    answer: str | None
    stop_reason: str
    turns: int


EVENT_TYPES: dict[str, type[Event]] = {
    cls.kind: cls
    for cls in (
        RunStarted,
        RunFinished,
        LimitHit,
        EventsDropped,
        AgentStarted,
        ModelCalled,
        CodeExecuted,
        SubcallStarted,
        SubcallFinished,
        BudgetRefused,
        AgentFinished,
    )
}


def event_from_dict(data: dict[str, Any]) -> Event:
    data = dict(data)
    return EVENT_TYPES[data.pop("kind")](**data)
