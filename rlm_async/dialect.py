"""What the model is told, and how its replies are read.

Code: fenced blocks tagged ```repl run in the REPL. Blocks tagged ```python or ```py run too:
small models write them unasked, and refusing would waste a turn; any other fence is prose.
Finishing: `FINAL(text)` / `FINAL_VAR(name)` called in code, or written on a line of the reply
outside any fence (the paper's dialect), or `answer = {"content": ..., "ready": True}` in code.
A FINAL written beside code is checked after the code runs (see `Agent`).
"""

from __future__ import annotations

import ast
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from rlm_async.environments.base import ExecResult

CODE_TAGS = frozenset({"repl", "python", "py"})
_FENCE = re.compile(r"^[ \t]*```[ \t]*([\w+-]*)[^\n]*$", re.MULTILINE)
_FINAL_VAR = re.compile(r"^[ \t]*FINAL_VAR\(\s*[\"']?([A-Za-z_]\w*)[\"']?\s*\)", re.MULTILINE)
_FINAL = re.compile(r"^[ \t]*FINAL\((.*)\)", re.MULTILINE | re.DOTALL)

SYSTEM_PROMPT = """\
You answer a query about a context that is too large to read at once. It is loaded in a \
Python REPL as the variable `context`; you explore it by writing code, and only what your \
code prints comes back to you.

Write code in fenced blocks tagged repl:
```repl
print(len(context), context[:300])
```
Every block of a reply runs, in order, in the same persistent namespace. You see each \
block's output (long output is cut, so print summaries, not whole chunks) and then you \
write your next reply.

Functions available in the REPL:
- llm_query(prompt, model=None) -> str: ask a language model one question. It cannot see \
`context`: put the text it needs into the prompt (up to about 100,000 characters).
- llm_query_batched(prompts, model=None) -> list[str]: ask many questions concurrently; \
answers come back in order. Far faster than a loop of llm_query.
- rlm_query(prompt, context=None, model=None) -> str: {rlm_query_text}
- rlm_query_batched(prompts, contexts=None, model=None) -> list[str]: many rlm_query at once.
- SHOW_VARS() -> dict: your variables and their types.
A failed call returns a string starting with "[error]" instead of an answer: check for it.
{models_text}
When you know the answer, submit it with FINAL("the answer") or FINAL_VAR("name_of_a_str_variable") \
— in code, or alone on a line outside code — or set answer = {{"content": "...", "ready": True}} \
in code. A FINAL written beside code counts only if that code runs without error and \
its output shows the same answer; it is safer to submit in the turn after you have seen the output.

Work step by step: look at the structure of `context` first, split it into chunks, use \
sub-calls to read chunks, keep findings in variables, and check them before you answer."""

RLM_QUERY_CHILD = (
    "hand a sub-task to a child agent with a REPL of its own, holding `context` "
    "(or the prompt itself when context is None). It can explore large inputs the way you do."
)
RLM_QUERY_LEAF = "at this depth the same as llm_query (prompt, plus context if given)."

NUDGE = (
    "Your reply had no ```repl block and no final answer. Write code in a ```repl block to "
    "explore `context`, or submit with FINAL(...) / FINAL_VAR(...)."
)
UNCLOSED = "Your reply has a ```repl block that is never closed, so nothing was run. Close it with ```."
LAST_TURN = (
    "You have no turns left. Reply now with your best answer as FINAL(your answer) on a line of "
    "its own, outside any code block. Code will not run any more."
)


@dataclass(frozen=True, slots=True)
class FinalMark:
    """A FINAL written in the reply text, outside code."""

    kind: Literal["text", "var"]
    value: str


@dataclass(frozen=True, slots=True)
class ParsedReply:
    code: list[str]
    final: FinalMark | None
    unclosed: bool
    prose: str
    """The reply without its fenced blocks."""


def system_prompt(*, can_recurse: bool, model_names: Sequence[str]) -> str:
    models_text = (
        f"model= may name one of: {', '.join(repr(n) for n in model_names)}.\n" if len(model_names) > 1 else ""
    )
    return SYSTEM_PROMPT.format(
        rlm_query_text=RLM_QUERY_CHILD if can_recurse else RLM_QUERY_LEAF,
        models_text=models_text,
    )


def first_message(query: str, context_description: str, status: str) -> str:
    return f"{context_description}\n\nThe query:\n{query}\n\n{status}"


def status_line(turn: int, max_turns: int, budget: str) -> str:
    return f"[turn {turn} of {max_turns}; {budget}]"


def parse_reply(text: str) -> ParsedReply:
    """Split a reply into the code to run and a FINAL written outside code."""
    code: list[str] = []
    prose: list[str] = []
    position, unclosed = 0, False
    fences = list(_FENCE.finditer(text))
    i = 0
    while i < len(fences):
        opening = fences[i]
        closing = next((f for f in fences[i + 1 :] if not f.group(1)), None)
        prose.append(text[position : opening.start()])
        is_code = opening.group(1).lower() in CODE_TAGS
        if closing is None:
            unclosed = unclosed or is_code
            position = len(text)
            break
        if is_code:
            code.append(text[opening.end() + 1 : closing.start()])
        position = closing.end()
        i = fences.index(closing) + 1
    prose.append(text[position:])
    outside = "".join(prose)
    return ParsedReply(code, _find_final(outside), unclosed, outside.strip())


def _find_final(prose: str) -> FinalMark | None:
    if match := _FINAL_VAR.search(prose):
        return FinalMark("var", match.group(1))
    if match := _FINAL.search(prose):
        inner = match.group(1).strip()
        try:
            value = ast.literal_eval(inner)
        except (ValueError, SyntaxError, MemoryError, RecursionError):
            value = inner
        return FinalMark("text", value if isinstance(value, str) else inner)
    return None


def feedback(results: Sequence[ExecResult], max_chars: int) -> str:
    """The output of a reply's cells, cut to `max_chars` in all, saying what was cut."""
    share = max(max_chars // max(len(results), 1), 200)
    parts = []
    for number, result in enumerate(results, 1):
        lines = [f"[block {number}: ran in {result.duration:.2f} s]"]
        for label, text, total in (
            ("output", result.stdout, result.stdout_chars),
            ("stderr", result.stderr, result.stderr_chars),
        ):
            if total:
                lines.append(f"{label}:\n{_cut(text, total, share)}")
        if result.error:
            lines.append(f"error:\n{_cut(result.error, len(result.error), share)}")
        if len(lines) == 1:
            lines.append("(no output)")
        parts.append("\n".join(lines))
    return "\n\n".join(parts)


def _cut(text: str, total: int, limit: int) -> str:
    shown = text[:limit]
    hidden = total - len(shown)
    return shown if hidden <= 0 else f"{shown}\n[… {hidden:,} more characters not shown]"


def final_rejected(reason: str) -> str:
    return f"Your FINAL was not accepted: {reason}"
