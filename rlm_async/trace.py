"""Trace: the events of one run, as a tree of agents, saved and loaded as JSON Lines."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from rlm_async.events import AgentFinished, AgentStarted, Event, event_from_dict


@dataclass
class Trace:
    events: list[Event] = field(default_factory=list)

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
