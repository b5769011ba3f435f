"""A database that does not answer: the engine raises `DatabaseUnavailable` (reported
once per interval), and a serial watcher that read the serial before keeps it."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from sqlalchemy import Engine, text
from sqlalchemy.exc import IntegrityError

from packyard.db.engine import create_database_engine, schema_problem
from packyard.db.freshness import PollingSerialWatcher
from packyard.errors import DatabaseUnavailable
from packyard.faults import FAULTS_LOGGER
from tests.e2e.servers import free_port


@pytest.fixture
def unreachable() -> Engine:
    """An engine of a PostgreSQL server that is not there (a port nobody listens on)."""
    return create_database_engine(f"postgresql+psycopg://packyard@127.0.0.1:{free_port()}/db")


def test_an_unreachable_database_raises_the_domain_error(
    unreachable: Engine, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, FAULTS_LOGGER.name)

    with pytest.raises(DatabaseUnavailable) as caught, unreachable.connect() as connection:
        connection.execute(text("SELECT 1"))

    assert "connect" in caught.value.reason  # the driver's words, for the log
    assert "retry in a few seconds" in caught.value.message
    assert any("database-unavailable" in record.getMessage() for record in caplog.records)
    assert (schema_problem(unreachable, "0001") or "").startswith(
        "the database cannot be reached: "
    )


def test_other_database_errors_are_left_alone(tmp_path: Path) -> None:
    engine = create_database_engine(f"sqlite:///{tmp_path / 'db.sqlite'}")
    with engine.begin() as connection:
        connection.execute(text("CREATE TABLE t (id INTEGER PRIMARY KEY)"))
        connection.execute(text("INSERT INTO t VALUES (1)"))

    with pytest.raises(IntegrityError), engine.begin() as connection:
        connection.execute(text("INSERT INTO t VALUES (1)"))


@pytest.mark.anyio
async def test_a_watcher_keeps_the_serial_it_read_while_the_database_is_down(
    unreachable: Engine,
) -> None:
    watcher = PollingSerialWatcher(unreachable, interval=0.0)
    watcher.saw(41)

    assert await watcher.current() == 41
    assert await watcher.current() == 41


@pytest.mark.anyio
async def test_a_watcher_that_never_read_the_serial_says_so(unreachable: Engine) -> None:
    with pytest.raises(DatabaseUnavailable):
        await PollingSerialWatcher(unreachable).current()
