"""`Flights`: one run per key for any number of concurrent callers."""

from __future__ import annotations

import anyio
import pytest

from packyard.flights import Flights

pytestmark = pytest.mark.anyio


class Job:
    """A job that counts its runs and waits until released."""

    def __init__(self, result: str = "done", error: Exception | None = None) -> None:
        self.result, self.error = result, error
        self.runs = 0
        self.release = anyio.Event()

    async def __call__(self) -> str:
        self.runs += 1
        await self.release.wait()
        if self.error is not None:
            raise self.error
        return self.result


async def test_concurrent_callers_share_one_run() -> None:
    flights: Flights[str, str] = Flights()
    job = Job()
    results: list[str] = []

    async def call() -> None:
        results.append(await flights.run("k", job))

    async with anyio.create_task_group() as group:
        for _ in range(10):
            group.start_soon(call)
        await anyio.wait_all_tasks_blocked()
        assert "k" in flights
        job.release.set()
    assert job.runs == 1
    assert results == ["done"] * 10
    assert "k" not in flights


async def test_other_keys_run_on_their_own() -> None:
    flights: Flights[int, str] = Flights()
    first, second = Job("one"), Job("two")
    results: dict[int, str] = {}

    async def call(key: int, job: Job) -> None:
        results[key] = await flights.run(key, job)

    async with anyio.create_task_group() as group:
        group.start_soon(call, 1, first)
        group.start_soon(call, 2, second)
        await anyio.wait_all_tasks_blocked()
        first.release.set()
        second.release.set()
    assert results == {1: "one", 2: "two"}
    assert (first.runs, second.runs) == (1, 1)


async def test_every_waiter_gets_the_error_and_the_next_call_runs_again() -> None:
    flights: Flights[str, str] = Flights()
    failing = Job(error=LookupError("gone"))
    errors: list[BaseException] = []

    async def call() -> None:
        try:
            await flights.run("k", failing)
        except LookupError as exc:
            errors.append(exc)

    async with anyio.create_task_group() as group:
        for _ in range(3):
            group.start_soon(call)
        await anyio.wait_all_tasks_blocked()
        failing.release.set()
    assert len(errors) == 3
    assert failing.runs == 1
    retry = Job("back")
    retry.release.set()
    assert await flights.run("k", retry) == "back"


async def test_a_cancelled_runner_hands_the_job_to_a_waiter() -> None:
    flights: Flights[str, str] = Flights()
    job = Job()
    results: list[str] = []
    runner_scope = anyio.CancelScope()

    async def runner() -> None:
        with runner_scope:
            results.append("runner: " + await flights.run("k", job))

    async def waiter() -> None:
        results.append(await flights.run("k", job))

    async with anyio.create_task_group() as group:
        group.start_soon(runner)
        await anyio.wait_all_tasks_blocked()
        group.start_soon(waiter)
        await anyio.wait_all_tasks_blocked()
        runner_scope.cancel()  # its client went away
        await anyio.wait_all_tasks_blocked()
        assert job.runs == 2  # the waiter runs the job again
        job.release.set()
    assert results == ["done"]
