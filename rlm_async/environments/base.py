"""The Environment contract: where model code runs, and how its sub-calls reach the host."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from rlm_async.context import Context
from rlm_async.environments.protocol import Done, Result


@dataclass(frozen=True, slots=True)
class SubcallRequest:
    """A call made by model code: `fn` is one of protocol.CALL_FUNCTIONS."""

    fn: str
    prompts: list[str]
    contexts: list[Any] | None
    model: str | None


SubcallHandler = Callable[[SubcallRequest], Awaitable[list[Result]]]
"""Serves one request; returns one Result per prompt, in order. Must not raise."""


@dataclass(frozen=True, slots=True)
class ExecResult:
    """What one cell did. `final` is the answer it submitted, if it did and raised nothing.

    `stdout_chars`/`stderr_chars` count all output, of which `stdout`/`stderr` keep the first part.
    `draft` is `answer["content"]` while not ready.
    `restarted` means the REPL had to be replaced: its variables are gone.
    """

    stdout: str = ""
    stderr: str = ""
    stdout_chars: int = 0
    stderr_chars: int = 0
    error: str | None = None
    final: str | None = None
    draft: str | None = None
    timed_out: bool = False
    restarted: bool = False
    duration: float = 0.0

    @classmethod
    def from_done(cls, done: Done, duration: float) -> ExecResult:
        """The result a runtime reported in its `done` message."""
        return cls(
            stdout=done["stdout"],
            stderr=done["stderr"],
            stdout_chars=done["stdout_chars"],
            stderr_chars=done["stderr_chars"],
            error=done["error"],
            final=done["final"],
            draft=done["draft"],
            timed_out=done["timed_out"],
            duration=duration,
        )


class Environment(ABC):
    """A REPL holding `context`. Use once: start, execute any number of cells, aclose."""

    @abstractmethod
    async def start(self, context: Context | None, handler: SubcallHandler) -> None:
        """Create the REPL and load `context` into it; `handler` serves its sub-calls."""

    @abstractmethod
    async def execute(self, code: str, timeout: float) -> ExecResult:
        """Run one cell. Model errors come back in the result; only a broken environment raises."""

    @abstractmethod
    async def aclose(self) -> None:
        """Destroy the REPL and everything it started. Idempotent; safe in a shielded scope."""

    def label(self, **labels: str) -> None:  # noqa: B027 - optional hook
        """Tags that say whose REPL this is (run and agent ids), for backends that keep them."""

    @property
    def sandbox_seconds(self) -> float:
        """Sandbox time billed so far; 0 for environments that are not billed by time."""
        return 0.0
