"""A bounded pool for password checks: anonymous clients cannot queue argon2 work.

Every password sign-in costs an argon2id verification (~50 ms of CPU, 64 MiB)
before anyone knows whether it is genuine. Unbounded, a flood of made-up
passwords would queue thousands of them, and a real user's sign-in would wait
behind the whole queue. So at most `threads` checks run at once and at most
`queue` more wait; a check beyond that is refused at once (`Overloaded`, a 503
with Retry-After, which pip and twine retry), costing nothing.

One pool per process, used from its event loop only: the counter needs no lock.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

import anyio
import anyio.to_thread

from packyard.errors import Overloaded

A = TypeVar("A")
R = TypeVar("R")
RETRY_AFTER = 1


class CheckPool:
    """Runs blocking checks in at most `threads` threads, with at most `queue` waiting."""

    def __init__(self, threads: int, queue: int) -> None:
        self._limiter = anyio.CapacityLimiter(threads)
        self._capacity = threads + queue
        self.admitted = 0

    async def run(self, check: Callable[[A], R], argument: A) -> R:
        """`check(argument)` in a worker thread, once a slot is free.

        Raises:
            Overloaded: every running and waiting slot is taken.
            Whatever `check` raises.
        """
        if self.admitted >= self._capacity:
            raise Overloaded(
                "The server is busy checking other sign-ins: try again in a second.",
                retry_after=RETRY_AFTER,
            )
        self.admitted += 1
        try:
            return await anyio.to_thread.run_sync(check, argument, limiter=self._limiter)
        finally:
            self.admitted -= 1
