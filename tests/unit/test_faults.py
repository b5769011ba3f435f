"""`faults`: one line per kind of fault per interval, with a count; `storage.full`: a
full disk told apart from other write failures."""

from __future__ import annotations

import errno
import json
import logging

import pytest

from packyard.errors import StorageFull
from packyard.faults import FAULTS_LOGGER, FaultLog
from packyard.storage.full import check_room, is_full, storing


class _Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _lines(caplog: pytest.LogCaptureFixture) -> list[dict[str, object]]:
    return [json.loads(r.getMessage()) for r in caplog.records if r.name == FAULTS_LOGGER.name]


def test_a_kind_of_fault_is_written_once_per_interval_with_its_count(
    caplog: pytest.LogCaptureFixture,
) -> None:
    clock = _Clock()
    log = FaultLog(interval=10.0, clock=clock)
    caplog.set_level(logging.WARNING, FAULTS_LOGGER.name)

    written = [log.report("database-unavailable", "db", "refused")]
    for _ in range(999):
        clock.now += 0.005
        written.append(log.report("database-unavailable", "db", "refused"))
    clock.now += 10.0
    written.append(log.report("database-unavailable", "db", "refused"))

    assert written.count(True) == 2
    first, second = _lines(caplog)
    assert (first["event"], first["count"], first["reason"]) == (
        "database-unavailable",
        1,
        "refused",
    )
    assert second["count"] == 1000  # the 999 unwritten and this one
    assert second["seconds"] == pytest.approx(14.99, abs=0.01)


def test_kinds_and_keys_are_counted_apart(caplog: pytest.LogCaptureFixture) -> None:
    log = FaultLog(interval=10.0, clock=_Clock())
    caplog.set_level(logging.WARNING, FAULTS_LOGGER.name)

    log.report("storage-full", "store a", "full", store="store a")
    log.report("storage-full", "store b", "full", store="store b")
    log.report("database-unavailable", "store a", "down")

    assert [(line["event"], line.get("store")) for line in _lines(caplog)] == [
        ("storage-full", "store a"),
        ("storage-full", "store b"),
        ("database-unavailable", None),
    ]


@pytest.mark.parametrize("code", [errno.ENOSPC, errno.EDQUOT])
def test_no_space_left_becomes_storage_full_naming_the_place(code: int) -> None:
    with pytest.raises(StorageFull) as caught, storing("the blob store file:///srv", "a.whl"):
        raise OSError(code, "No space left on device")

    assert caught.value.message.startswith(
        "Insufficient storage: the blob store file:///srv is full, so a.whl could not be stored."
    )
    assert is_full(caught.value)
    assert isinstance(caught.value.__cause__, OSError)


def test_other_write_failures_pass_through() -> None:
    with pytest.raises(PermissionError), storing("the blob store file:///srv", "a.whl"):
        raise PermissionError(errno.EACCES, "Permission denied")


class _Store:
    place = "the blob store file:///small"

    def __init__(self, free: int) -> None:
        self.free = free

    def free_bytes(self) -> int:
        return self.free


def test_a_blob_that_does_not_fit_is_refused_before_it_is_written() -> None:
    check_room(_Store(100), "fits.whl", 100)
    check_room(object(), "unknown.whl", 10**12)  # a store that cannot tell passes

    with pytest.raises(StorageFull, match="the blob store file:///small is full"):
        check_room(_Store(99), "big.whl", 100)
