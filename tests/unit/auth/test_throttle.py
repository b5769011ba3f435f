"""Failed sign-ins per account and per address, the bounded check pool, and the
memory of failed values; the counters on SQLite and PostgreSQL."""

from __future__ import annotations

import threading
from pathlib import Path

import anyio
import pytest

from packyard.auth.check_pool import CheckPool
from packyard.auth.failed_credentials import FailedCredentials
from packyard.auth.throttle import SignInThrottle
from packyard.errors import Overloaded, TooManyFailures
from packyard.settings import AuthSettings
from tests.builders import make_local_store


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


def throttles(tmp_path: Path, database_url: str, clock: Clock) -> tuple[SignInThrottle, ...]:
    """Two throttles on one database, as in two replicas."""
    settings = AuthSettings(
        max_failed_sign_ins_per_account=3,
        max_failed_sign_ins_per_address=5,
        failed_sign_in_window_seconds=60,
    )
    sessions = make_local_store(tmp_path, database_url).sessions
    return SignInThrottle(sessions, settings, clock), SignInThrottle(sessions, settings, clock)


def test_an_account_is_locked_for_the_rest_of_its_window(tmp_path: Path, database_url: str) -> None:
    clock = Clock()
    one, other = throttles(tmp_path, database_url, clock)
    keys = one.keys("Alice", "192.0.2.1")
    assert keys == ("user:alice", "addr:192.0.2.1")
    for throttle in (one, other, one):
        throttle.check(keys)
        throttle.failed(keys)

    with pytest.raises(TooManyFailures, match="for the user 'alice'") as refused:
        one.check_memory(keys)  # this process saw the limit reached
    assert refused.value.retry_after == 60
    clock.now += 45
    with pytest.raises(TooManyFailures) as shared:
        other.check(other.keys("alice", "192.0.2.99"))  # the database knows it too
    assert shared.value.retry_after == 15
    clock.now += 15
    assert one.check(keys) is False  # the window is over
    one.failed(keys)
    assert one.check(keys) is True
    one.succeeded(keys)
    assert one.check(keys) is False


def test_an_address_is_counted_over_every_name_and_ipv6_by_its_64(
    tmp_path: Path, database_url: str
) -> None:
    one, _ = throttles(tmp_path, database_url, Clock())
    for number in range(5):
        one.failed(one.keys(f"user{number}", f"2001:db8:1:2::{number + 1}"))

    with pytest.raises(TooManyFailures, match="from your address"):
        one.check(one.keys("bob", "2001:db8:1:2:ffff::1"))
    assert one.check(one.keys("bob", "2001:db8:1:3::1")) is False
    one.succeeded(one.keys("user0", "2001:db8:1:2::1"))  # a success clears no address
    with pytest.raises(TooManyFailures):
        one.check(one.keys("carol", "2001:db8:1:2::7"))


def test_limits_of_zero_count_nothing(tmp_path: Path) -> None:
    settings = AuthSettings(max_failed_sign_ins_per_account=0, max_failed_sign_ins_per_address=0)
    throttle = SignInThrottle(make_local_store(tmp_path).sessions, settings)
    assert throttle.keys("alice", "192.0.2.1") == ()


@pytest.mark.anyio
async def test_the_pool_refuses_at_once_when_running_and_waiting_slots_are_taken() -> None:
    pool = CheckPool(threads=1, queue=1)
    release = threading.Event()
    results: list[bool] = []

    async def check() -> None:
        results.append(await pool.run(lambda _: release.wait(5), None))

    async with anyio.create_task_group() as tasks:
        tasks.start_soon(check)
        tasks.start_soon(check)
        await anyio.sleep(0.05)
        assert pool.admitted == 2
        with pytest.raises(Overloaded) as busy:
            await pool.run(lambda _: True, None)
        assert busy.value.retry_after == 1
        release.set()
    assert results == [True, True]
    assert pool.admitted == 0
    assert await pool.run(lambda value: value * 2, 21) == 42


def test_failed_values_are_remembered_briefly_and_boundedly() -> None:
    clock = Clock()
    failed = FailedCredentials(ttl=30, max_entries=2, clock=clock)
    failed.put("Basic a", "wrong")
    assert failed.get("Basic a") == "wrong"
    assert failed.get("Basic b") is None
    failed.put("Basic b", "wrong")
    failed.put("Basic c", "wrong")
    assert failed.get("Basic a") is None  # the oldest went first
    clock.now += 30
    assert failed.get("Basic c") is None
    off = FailedCredentials(ttl=0)
    off.put("Basic a", "wrong")
    assert off.get("Basic a") is None
