"""Trace: the events of one run, as a tree of agents, saved and loaded as JSON Lines."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from rlm_async.events import AgentFinished, AgentStarted, Event, ModelCalled, event_from_dict


@dataclass(frozen=True, slots=True)
class AgentSummary:
    """One agent's node of the tree: who, how it ended, and what its model calls used
    (its own turns and its `llm_query` calls; with descendants when asked)."""

    agent_id: str
    parent_id: str | None
    depth: int
    model: str
    started: float
    finished: float | None
    stop_reason: str | None
    turns: int
    calls: int
    input_tokens: int
    output_tokens: int
    cost_usd: float | None

    @property
    def seconds(self) -> float | None:
        return None if self.finished is None else self.finished - self.started


@dataclass
class Trace:
    events: list[Event] = field(default_factory=list)

    def summary(self, agent_id: str, *, with_descendants: bool = False) -> AgentSummary:
        """Usage, cost, time and outcome of one agent, or of its whole subtree."""
        ids = {agent_id, *self.descendants(agent_id)} if with_descendants else {agent_id}
        started = next(e for e in self.events if isinstance(e, AgentStarted) and e.agent_id == agent_id)
        outcome = self.outcome(agent_id)
        calls = [e for e in self.events if isinstance(e, ModelCalled) and e.agent_id in ids]
        costs = [c.cost_usd for c in calls]
        return AgentSummary(
            agent_id=agent_id,
            parent_id=started.parent_id,
            depth=started.depth,
            model=started.model,
            started=started.time,
            finished=None if outcome is None else outcome.time,
            stop_reason=None if outcome is None else outcome.stop_reason,
            turns=0 if outcome is None else outcome.turns,
            calls=len(calls),
            input_tokens=sum(c.input_tokens for c in calls),
            output_tokens=sum(c.output_tokens for c in calls),
            cost_usd=None if None in costs else sum(c for c in costs if c is not None),
        )

    def descendants(self, agent_id: str) -> list[str]:
        found = []
        for child in self.children(agent_id):
            found += [child, *self.descendants(child)]
        return found

    def agent_ids(self) -> list[str]:
        return [e.agent_id for e in self.events if isinstance(e, AgentStarted)]

    def children(self, agent_id: str | None) -> list[str]:
        """Agents started by `agent_id` (None: the root), in start order."""
        return [e.agent_id for e in self.events if isinstance(e, AgentStarted) and e.parent_id == agent_id]

    def events_of(self, agent_id: str) -> list[Event]:
        return [e for e in self.events if e.agent_id == agent_id]

    def outcome(self, agent_id: str) -> AgentFinished | None:
        return next((e for e in self.events_of(agent_id) if isinstance(e, AgentFinished)), None)

    def save(self, path: str | Path) -> None:
        with Path(path).open("w", encoding="utf-8") as f:
            for event in self.events:
                f.write(json.dumps(event.to_dict(), ensure_ascii=False) + "\n")

    @classmethod
    def load(cls, path: str | Path) -> Trace:
        with Path(path).open(encoding="utf-8") as f:
            return cls([event_from_dict(json.loads(line)) for line in f if line.strip()])
