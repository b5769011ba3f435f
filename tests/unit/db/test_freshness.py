"""Serial watchers: cheap checks that still see every other process's commit at once."""

from __future__ import annotations

import time
from pathlib import Path

import anyio
import anyio.from_thread
import anyio.lowlevel
import pytest
from sqlalchemy import create_engine

from packyard.db.engine import create_database_engine, migrate, session_factory_for
from packyard.db.freshness import (
    LISTENER_NAME,
    ListeningSerialWatcher,
    PerSerial,
    PollingSerialWatcher,
    SqliteSerialWatcher,
    open_serial_watcher,
)
from packyard.db.serial import bump_serial, follow_commits
from packyard.errors import DatabaseUnavailable
from tests.builders import LocalStore, make_local_store


def bump_from_another_engine(local: LocalStore) -> None:
    """A write through a separate engine: what another process's commit looks like."""
    other = create_database_engine(local.engine.url.render_as_string(hide_password=False))
    with session_factory_for(other).begin() as session:
        bump_serial(session)
    other.dispose()


@pytest.mark.anyio
async def test_sqlite_watcher_sees_another_connections_commit_at_once(tmp_path: Path) -> None:
    local = make_local_store(tmp_path)
    watcher = open_serial_watcher(local.engine)
    assert isinstance(watcher, SqliteSerialWatcher)
    try:
        assert await watcher.current() == 0
        bump_from_another_engine(local)
        await next_turn()
        assert await watcher.current() == 1
        with local.sessions.begin() as session:
            bump_serial(session)
        await next_turn()
        assert await watcher.current() == 2
    finally:
        watcher.close()


async def next_turn() -> None:
    """Let the event loop run one turn: the next request is handled in a new one."""
    await anyio.lowlevel.checkpoint()


@pytest.mark.anyio
async def test_one_check_serves_every_request_of_a_loop_turn(tmp_path: Path) -> None:
    local = make_local_store(tmp_path)
    watcher = SqliteSerialWatcher(str(tmp_path / "packyard.db"))
    try:
        assert await watcher.current() == 0
        bump_from_another_engine(local)
        # Same turn: concurrent with the commit, the request may see either state.
        assert await watcher.current() == 0
        await next_turn()
        assert await watcher.current() == 1
    finally:
        watcher.close()


@pytest.mark.anyio
async def test_sqlite_watcher_reads_the_serial_only_when_the_database_changed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    local = make_local_store(tmp_path)
    watcher = SqliteSerialWatcher(str(tmp_path / "packyard.db"))
    reads = 0
    read = watcher._read_serial

    def counting_read() -> int:
        nonlocal reads
        reads += 1
        return read()

    monkeypatch.setattr(watcher, "_read_serial", counting_read)
    try:
        for _ in range(5):
            assert await watcher.current() == 0
            await next_turn()
        assert reads == 1
        bump_from_another_engine(local)
        await next_turn()
        assert await watcher.current() == 1
        assert reads == 2
    finally:
        watcher.close()


@pytest.mark.anyio
async def test_sqlite_check_costs_microseconds(tmp_path: Path) -> None:
    make_local_store(tmp_path)
    watcher = SqliteSerialWatcher(str(tmp_path / "packyard.db"))
    try:
        await watcher.current()
        rounds = 2000
        started = time.perf_counter()
        for _ in range(rounds):
            await watcher.current()
        per_check = (time.perf_counter() - started) / rounds
    finally:
        watcher.close()
    # The target is a few microseconds; the bound leaves room for slow CI machines.
    assert per_check < 200e-6


@pytest.mark.anyio
async def test_polling_watcher_rereads_after_its_interval(
    tmp_path: Path, database_url: str
) -> None:
    local = make_local_store(tmp_path, database_url)
    slow = PollingSerialWatcher(local.engine, interval=3600)
    eager = PollingSerialWatcher(local.engine, interval=0)
    assert await slow.current() == 0
    assert await eager.current() == 0
    bump_from_another_engine(local)
    assert await slow.current() == 0  # within the interval: the remembered value
    assert await eager.current() == 1


@pytest.mark.anyio
async def test_a_process_reads_its_own_write_on_the_next_request(
    tmp_path: Path, database_url: str
) -> None:
    """Read-your-writes: even a watcher that would not poll for an hour sees
    the commit of its own process's sessions before `commit()` returns."""
    local = make_local_store(tmp_path, database_url)
    watcher = PollingSerialWatcher(local.engine, interval=3600)
    follow_commits(local.sessions, watcher.saw)
    assert await watcher.current() == 0
    with local.sessions.begin() as session:
        bump_serial(session)
    assert await watcher.current() == 1


@pytest.mark.anyio
async def test_a_rolled_back_write_is_not_seen(tmp_path: Path, database_url: str) -> None:
    local = make_local_store(tmp_path, database_url)
    watcher = PollingSerialWatcher(local.engine, interval=3600)
    follow_commits(local.sessions, watcher.saw)
    assert await watcher.current() == 0

    def failing_write() -> None:
        with local.sessions.begin() as session:
            bump_serial(session)
            raise RuntimeError("the write fails after the bump")

    with pytest.raises(RuntimeError):
        failing_write()
    with local.sessions.begin() as session:
        session.info["unrelated"] = True  # a later commit that bumped nothing
    assert await watcher.current() == 0


def postgresql_only(database_url: str) -> None:
    if not database_url.startswith("postgresql"):
        pytest.skip("LISTEN/NOTIFY is PostgreSQL's")


async def serial_within(watcher: ListeningSerialWatcher, expected: int, seconds: float) -> float:
    """How long the watcher took to report `expected` (fails past `seconds`)."""
    started = time.monotonic()
    while await watcher.current() != expected:
        assert time.monotonic() - started < seconds, f"serial {expected} not seen in {seconds} s"
        await anyio.sleep(0.005)
    return time.monotonic() - started


@pytest.mark.anyio
async def test_listening_watcher_hears_another_process_commit(
    tmp_path: Path, database_url: str
) -> None:
    postgresql_only(database_url)
    local = make_local_store(tmp_path, database_url)
    watcher = open_serial_watcher(local.engine)
    assert isinstance(watcher, ListeningSerialWatcher)
    try:
        await serial_within(watcher, 0, 10)
        await listening(watcher)
        bump_from_another_engine(local)
        # Notified: far sooner than any poll or heartbeat would have noticed.
        await serial_within(watcher, 1, 1.0)
    finally:
        watcher.close()


async def listening(watcher: ListeningSerialWatcher) -> None:
    for _ in range(1000):
        if watcher.listening:
            return
        await anyio.sleep(0.01)
    raise AssertionError("the watcher never started listening")


@pytest.mark.anyio
async def test_listener_catches_up_on_what_it_missed_while_disconnected(
    tmp_path: Path, database_url: str
) -> None:
    """Notifications sent while a listener is away are lost: the serial is
    re-read on reconnect, and polled meanwhile."""
    postgresql_only(database_url)
    local = make_local_store(tmp_path, database_url)
    watcher = ListeningSerialWatcher(local.engine, poll_interval=3600)
    try:
        await listening(watcher)
        with local.engine.connect() as conn:
            conn.exec_driver_sql(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE application_name = %s",
                (LISTENER_NAME,),
            )
        bump_from_another_engine(local)
        bump_from_another_engine(local)
        await serial_within(watcher, 2, 10)
    finally:
        watcher.close()


def test_memory_databases_and_other_dialects_are_polled() -> None:
    engine = create_engine("sqlite://")
    migrate(engine)
    assert isinstance(open_serial_watcher(engine), PollingSerialWatcher)


class FakeWatcher:
    """A serial the test sets: `PerSerial` asks nothing else of its watcher."""

    def __init__(self) -> None:
        self.serial = 1

    async def current(self) -> int:
        return self.serial

    def saw(self, serial: int) -> None:
        self.serial = max(self.serial, serial)

    def close(self) -> None:
        return


@pytest.mark.anyio
async def test_a_value_is_loaded_once_per_serial_and_reused_while_unchanged() -> None:
    watcher, loads = FakeWatcher(), []

    def load() -> list[str]:
        loads.append(watcher.serial)
        return ["same"]

    values = PerSerial(watcher, load, reuse=lambda kept, fresh: kept if kept == fresh else fresh)
    first = await values.current()
    assert await values.current() is first
    watcher.serial = 2
    assert await values.current() is first  # reloaded, equal: the kept object
    assert loads == [1, 2]


@pytest.mark.anyio
async def test_a_load_that_lands_late_never_replaces_a_newer_value() -> None:
    watcher = FakeWatcher()
    slow = anyio.Event()
    results: dict[int, str] = {}

    def load() -> str:
        serial = watcher.serial
        if serial == 1:
            anyio.from_thread.run(slow.wait)
        return f"as of {serial}"

    values = PerSerial(watcher, load)

    async def ask(serial: int) -> None:
        results[serial] = await values.current()

    async with anyio.create_task_group() as group:
        group.start_soon(ask, 1)
        await anyio.wait_all_tasks_blocked()
        watcher.serial = 2
        await ask(2)  # the newer load lands first
        slow.set()
    assert results == {1: "as of 2", 2: "as of 2"}
    assert await values.current() == "as of 2"


@pytest.mark.anyio
async def test_while_the_database_is_down_the_value_loaded_last_is_served() -> None:
    watcher, down = FakeWatcher(), False

    def load() -> str:
        if down:
            raise DatabaseUnavailable("connection refused")
        return f"as of {watcher.serial}"

    values = PerSerial(watcher, load)
    assert await values.current() == "as of 1"
    watcher.serial, down = 2, True  # a write, then the outage before this reader reloaded

    assert await values.current() == "as of 1"
    down = False
    assert await values.current() == "as of 2"  # back: the write is read


@pytest.mark.anyio
async def test_a_value_never_loaded_cannot_be_served_while_the_database_is_down() -> None:
    def load() -> str:
        raise DatabaseUnavailable("connection refused")

    with pytest.raises(DatabaseUnavailable):
        await PerSerial(FakeWatcher(), load).current()
