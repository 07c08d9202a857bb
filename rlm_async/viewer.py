"""`rlm-async view`: a trace as one self-contained HTML page (no network): the agent tree with
usage and cost per node, each turn's reply, code, output and sub-calls, and a timeline that
shows which calls ran at the same time."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

from rlm_async.trace import Trace

PAGE = Path(__file__).with_name("viewer.html")


def render_html(trace: Trace) -> str:
    agents = []
    for agent_id in trace.agent_ids():
        own = dataclasses.asdict(trace.summary(agent_id))
        tree = trace.summary(agent_id, with_descendants=True)
        own.update(seconds=trace.summary(agent_id).seconds, tree_calls=tree.calls, tree_cost_usd=tree.cost_usd,
                   tree_tokens=tree.input_tokens + tree.output_tokens)  # fmt: skip
        agents.append(own)
    data: dict[str, Any] = {"agents": agents, "events": [event.to_dict() for event in trace.events]}
    payload = json.dumps(data, ensure_ascii=False).replace("</", "<\\/")
    return PAGE.read_text(encoding="utf-8").replace("/*TRACE*/null", payload)


def write_html(trace_path: Path, html_path: Path) -> None:
    html_path.write_text(render_html(Trace.load(trace_path)), encoding="utf-8")
