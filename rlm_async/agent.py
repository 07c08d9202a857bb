"""Agent: one model with one REPL, looping ask → parse → execute → feedback until it answers.

Sub-calls from its code are served here: `llm_query` is one provider call, `rlm_query` a
child Agent one level deeper in the same Run (same budget), all concurrent on the event loop.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any

import anyio

from rlm_async import dialect
from rlm_async.context import Context
from rlm_async.environments.base import Environment, ExecResult, SubcallRequest
from rlm_async.environments.protocol import Result
from rlm_async.errors import BudgetExceeded, LimitReached, RLMError
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
    clip,
)
from rlm_async.providers.base import Message, Provider
from rlm_async.run import ModelReply, Run

ANSWERED = frozenset({"final", "max_iterations"})


@dataclass(frozen=True, slots=True)
class AgentOutcome:
    """How an agent ended: `stop_reason` is "final", "max_iterations" or the limit that stopped it."""

    answer: str | None
    stop_reason: str
    turns: int


class Agent:
    def __init__(
        self,
        run: Run,
        *,
        query: str,
        context: Context | None,
        provider: Provider,
        depth: int,
        parent_id: str | None,
    ) -> None:
        self.run, self.query, self.context, self.provider = run, query, context, provider
        self.depth, self.parent_id = depth, parent_id
        self.id = run.new_agent_id()
        self.turns = 0
        self.partial: str | None = None  # the best answer so far, if the run is cut short

    async def run_to_end(self) -> AgentOutcome:
        self.emit(AgentStarted, query=clip(self.query), model=self.provider.name)
        try:
            outcome = await self._run_in_environment()
        except BudgetExceeded as exc:
            self.emit(BudgetRefused, limit=exc.limit, message=str(exc))
            outcome = AgentOutcome(self.partial, exc.limit, self.turns)
        except BaseException:
            self.emit(AgentFinished, answer=self.partial, stop_reason="aborted", turns=self.turns)
            raise
        self.emit(AgentFinished, answer=outcome.answer, stop_reason=outcome.stop_reason, turns=outcome.turns)
        return outcome

    async def _run_in_environment(self) -> AgentOutcome:
        levels_below = self.run.limits.max_depth - 1 - self.depth
        async with self.run.environment_slots.hold(levels_below):
            env = self.run.new_environment()
            env.label(rlm_run_id=self.run.id, rlm_agent_id=self.id)
            try:
                await env.start(self.context, self.serve)
                return await self._loop(env)
            finally:
                with anyio.CancelScope(shield=True):
                    await env.aclose()
                self.run.budget.usage.sandbox_seconds += env.sandbox_seconds

    async def _loop(self, env: Environment) -> AgentOutcome:
        limits, budget = self.run.limits, self.run.budget
        can_recurse = self.depth + 1 < limits.max_depth
        system = dialect.system_prompt(can_recurse=can_recurse, model_names=list(self.run.models.by_name))
        context_text = self.context.describe() if self.context else "There is no `context`."
        status = dialect.status_line(1, limits.max_iterations, budget.describe_remaining())
        messages = [Message("system", system), Message("user", dialect.first_message(self.query, context_text, status))]
        for turn in range(1, limits.max_iterations + 1):
            self.turns = turn
            reply = await self._ask(messages, turn)
            answer, feedback = await self._act(env, dialect.parse_reply(reply), turn)
            if answer is not None:
                return AgentOutcome(answer, "final", turn)
            status = dialect.status_line(turn + 1, limits.max_iterations, budget.describe_remaining())
            messages += [Message("assistant", reply), Message("user", f"{feedback}\n\n{status}")]
        self.emit(LimitHit, limit="max_iterations")
        return await self._last_turn(env, messages)

    async def _last_turn(self, env: Environment, messages: list[Message]) -> AgentOutcome:
        """Out of turns: ask once more for an answer, and take the best one there is."""
        turn = self.run.limits.max_iterations + 1
        messages[-1] = Message("user", f"{messages[-1].content}\n\n{dialect.LAST_TURN}")
        parsed = dialect.parse_reply(await self._ask(messages, turn))
        if parsed.final is not None and parsed.final.kind == "var":
            resolved = await self._execute(env, f"FINAL_VAR({parsed.final.value!r})", turn)
            return AgentOutcome(resolved.final or self.partial, "max_iterations", self.turns)
        if parsed.final is not None:
            return AgentOutcome(parsed.final.value, "max_iterations", self.turns)
        # A text reply answers the request for an answer; beside code, prose is commentary.
        answer = (self.partial or parsed.prose) if parsed.code else (parsed.prose or self.partial)
        return AgentOutcome(answer or None, "max_iterations", self.turns)

    async def _act(self, env: Environment, parsed: dialect.ParsedReply, turn: int) -> tuple[str | None, str]:
        """Run the reply's code; return (the accepted answer or None, the feedback for the model)."""
        if parsed.unclosed:
            return None, dialect.UNCLOSED
        if not parsed.code and parsed.final is None:
            return None, dialect.NUDGE
        results: list[ExecResult] = []
        for code in parsed.code:
            result = await self._execute(env, code, turn)
            results.append(result)
            self.partial = result.draft or self.partial
            if result.final is not None:
                return result.final, ""
        output = dialect.feedback(results, self.run.limits.max_output_chars) + "\n\n" if results else ""
        final = parsed.final
        if final is None:
            return None, output.rstrip()
        if any(r.error for r in results):
            return None, output + dialect.final_rejected("the code beside it raised an error.")
        if final.kind == "var":
            resolved = await self._execute(env, f"FINAL_VAR({final.value!r})", turn)
            return resolved.final, output + dialect.final_rejected(resolved.error or "")
        self.partial = final.value
        if results and not any(final.value in r.stdout for r in results):
            reason = (
                "you wrote it before seeing the output above, which does not show it. Submit it again if it stands."
            )
            return None, output + dialect.final_rejected(reason)
        return final.value, ""

    async def _ask(self, messages: list[Message], turn: int) -> str:
        reply = await self.run.call_model(self.provider, messages, self.depth)
        self._emit_model_called(reply, turn)
        return reply.completion.text

    async def _execute(self, env: Environment, code: str, turn: int) -> ExecResult:
        result = await env.execute(code, self.run.limits.cell_timeout)
        self.emit(
            CodeExecuted,
            turn=turn,
            code=clip(code),
            stdout=clip(result.stdout),
            stderr=clip(result.stderr),
            error=result.error,
            duration=result.duration,
            timed_out=result.timed_out,
            restarted=result.restarted,
        )
        return result

    # -- sub-calls from model code ----------------------------------------------------------
    async def serve(self, request: SubcallRequest) -> list[Result]:
        """Answer every prompt of a request concurrently; a failure becomes an "[error] …" string."""
        count = len(request.prompts)
        contexts = request.contexts or [None] * count
        results = [Result(ok=False, text="[error] not answered")] * count
        started, subcall_id = time.perf_counter(), next(self.run.subcall_ids)
        self.emit(SubcallStarted, subcall_id=subcall_id, fn=request.fn, count=count, model=request.model)

        async def answer(i: int) -> None:
            try:
                text = await self._subcall(request.fn, request.prompts[i], contexts[i], request.model)
                results[i] = Result(ok=True, text=text)
            except RLMError as exc:
                results[i] = Result(ok=False, text=f"[error] {type(exc).__name__}: {exc}")

        async with anyio.create_task_group() as tg:
            for i in range(count):
                tg.start_soon(answer, i)
        errors = sum(not r["ok"] for r in results)
        self.emit(
            SubcallFinished, subcall_id=subcall_id, fn=request.fn, count=count, errors=errors,
            duration=time.perf_counter() - started,
        )  # fmt: skip
        return results

    async def _subcall(self, fn: str, prompt: str, context: object, model: str | None) -> str:
        models, depth = self.run.models, self.depth + 1
        if fn.startswith("rlm_") and depth < self.run.limits.max_depth:
            child = Agent(
                self.run,
                query=prompt,
                context=Context.of(prompt if context is None else context),
                provider=models.pick(model, models.child),
                depth=depth,
                parent_id=self.id,
            )
            outcome = await child.run_to_end()
            if outcome.stop_reason in ANSWERED and outcome.answer is not None:
                return outcome.answer
            draft = f"; its draft answer: {outcome.answer}" if outcome.answer else ""
            raise LimitReached(
                outcome.stop_reason, f"the sub-agent stopped ({outcome.stop_reason}) before answering{draft}"
            )
        if context is not None:
            text = context if isinstance(context, str) else json.dumps(context, ensure_ascii=False)
            prompt = f"{prompt}\n\n{text}"
        reply = await self.run.call_model(models.pick(model, models.sub), [Message("user", prompt)], depth)
        self._emit_model_called(reply, turn=0)
        return reply.completion.text

    # -- events -----------------------------------------------------------------------------
    def _emit_model_called(self, reply: ModelReply, turn: int) -> None:
        usage = reply.completion.usage
        self.emit(
            ModelCalled,
            turn=turn,
            model=reply.completion.model,
            input_tokens=usage.input_tokens,
            output_tokens=usage.output_tokens,
            cost_usd=reply.cost_usd,
            duration=reply.duration,
            reply=clip(reply.completion.text),
        )

    def emit(self, event_type: type[Event], **fields: Any) -> None:
        """Emit an event of this agent."""
        self.run.emit(
            event_type(run_id=self.run.id, agent_id=self.id, parent_id=self.parent_id, depth=self.depth, **fields)
        )
