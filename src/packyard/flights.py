"""`Flights`: one run of an async job per key, whatever the number of callers.

A cold cache is asked for the same thing by many requests at once: a CI
fleet's first `pip install`, or the ten requests uv sends in parallel to a
server that has just started. Each such job (an upstream fetch, a reload
from the database after the serial moved) runs once per key; every
concurrent caller with that key waits for it and gets its result, or its
exception.

If the caller running the job is cancelled (its client went away), the
waiters are woken without a result and the next of them runs the job again,
so one impatient client never fails the others.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Hashable
from typing import Generic, TypeVar

import anyio

K = TypeVar("K", bound=Hashable)
T = TypeVar("T")


class _Flight(Generic[T]):
    """One running job: its outcome, once `done` is set."""

    def __init__(self) -> None:
        self.done = anyio.Event()
        self.result: tuple[T] | None = None
        self.error: Exception | None = None


class Flights(Generic[K, T]):
    """The running jobs, by key."""

    def __init__(self) -> None:
        self._running: dict[K, _Flight[T]] = {}

    def __contains__(self, key: K) -> bool:
        return key in self._running

    async def run(self, key: K, job: Callable[[], Awaitable[T]]) -> T:
        """`job()`'s result, from the run already under way for `key` if there is one.

        Raises:
            whatever `job` raises, to every caller that waited for that run.
        """
        while (flight := self._running.get(key)) is not None:
            await flight.done.wait()
            if flight.error is not None:
                raise flight.error
            if flight.result is not None:
                return flight.result[0]
            # The caller running it was cancelled: the next one runs it.
        mine: _Flight[T] = _Flight()
        self._running[key] = mine
        try:
            result = await job()
            mine.result = (result,)
            return result
        except Exception as exc:
            mine.error = exc
            raise
        finally:
            del self._running[key]
            mine.done.set()
