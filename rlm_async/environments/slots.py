"""EnvironmentSlots: caps live environments without deadlocking a deep recursion tree.

An agent holds its environment while its children run, so a plain semaphore deadlocks as
soon as every slot is held by a parent waiting for a child. Here an agent at `levels_below`
REPL levels from the bottom may take a slot only if that leaves `levels_below` slots free:
one complete chain down to a leaf can then always start, and leaves never wait on anyone,
so some agent can always make progress. One instance may be shared by many runs.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import anyio

from rlm_async.errors import ConfigurationError


class EnvironmentSlots:
    def __init__(self, total: int) -> None:
        if isinstance(total, bool) or not isinstance(total, int) or total < 1:
            raise ConfigurationError(f"max_environments must be a positive int, got {total!r}")
        self.total = total
        self.in_use = 0
        self._released = anyio.Event()

    @asynccontextmanager
    async def hold(self, levels_below: int) -> AsyncIterator[None]:
        """Wait for a slot that leaves room for `levels_below` deeper environments; hold it."""
        if levels_below >= self.total:
            raise ConfigurationError(f"max_environments={self.total} cannot hold a chain of {levels_below + 1} REPLs")
        while self.total - self.in_use - 1 < levels_below:
            await self._released.wait()
        self.in_use += 1
        try:
            yield
        finally:
            self.in_use -= 1
            self._released.set()
            self._released = anyio.Event()
