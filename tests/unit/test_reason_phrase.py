"""`reason_phrase`: a message made one line of printable ASCII, and written into the
status line in place of uvicorn's fixed one."""

from __future__ import annotations

from typing import Any

import anyio
import pytest
from uvicorn.protocols.http.httptools_impl import STATUS_LINE

from packyard.reason_phrase import (
    PATHS,
    REASON_HEADER,
    ReasonPhraseSend,
    reason_phrase,
    status_line,
)
from packyard.routes.upload import UPLOAD_PATH


@pytest.mark.parametrize(
    ("message", "phrase"),
    [
        ("File already exists.", b"File already exists."),
        ("two\nlines\r\n\tand  tabs", b"two lines and tabs"),
        ("it’s “quoted” — and… done", b'it\'s "quoted" - and... done'),
        ("café naïve", b"cafe naive"),
        ("'аcme' is too similar", b"'\\u0430cme' is too similar"),
        ("NUL\x00 and DEL\x7f", b"NUL\\x00 and DEL\\x7f"),
        ("", b""),
    ],
)
def test_a_message_becomes_one_line_of_printable_ascii(message: str, phrase: bytes) -> None:
    assert reason_phrase(message) == phrase


def test_a_long_message_is_cut_to_the_limit() -> None:
    phrase = reason_phrase("word " * 500, limit=100)

    assert len(phrase) == 100
    assert phrase.endswith(b"...")


def test_an_empty_phrase_gives_the_standard_status_line() -> None:
    assert status_line(400, b"") == STATUS_LINE[400]
    assert status_line(507, b"Full") == b"HTTP/1.1 507 Full\r\n"


def test_the_paths_are_the_upload_apis() -> None:
    assert frozenset({UPLOAD_PATH, UPLOAD_PATH.rstrip("/")}) == PATHS


class _Transport:
    def __init__(self) -> None:
        self.written: list[bytes] = []

    def write(self, data: bytes) -> None:
        self.written.append(data)

    def is_closing(self) -> bool:
        return False


class _Cycle:
    """What `ReasonPhraseSend` uses of uvicorn's cycle: `send` writes a head
    through `transport`, as `RequestResponseCycle.send` does."""

    def __init__(self) -> None:
        self.transport: Any = _Transport()
        self.heads: list[list[tuple[bytes, bytes]]] = []

    async def send(self, message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            self.heads.append(list(message["headers"]))
            head = [STATUS_LINE[message["status"]]]
            head += [name + b": " + value + b"\r\n" for name, value in message["headers"]]
            self.transport.write(b"".join([*head, b"\r\n"]))
        else:
            self.transport.write(message["body"])


def test_the_carried_phrase_replaces_the_status_line_and_the_header_is_not_sent() -> None:
    cycle = _Cycle()
    transport = cycle.transport
    send = ReasonPhraseSend(cycle, STATUS_LINE.__getitem__)
    headers = [(b"content-type", b"text/plain"), (REASON_HEADER, b"Nope:\nnot here")]

    async def respond() -> None:
        await send({"type": "http.response.start", "status": 400, "headers": headers})
        await send({"type": "http.response.body", "body": b"Nope:\nnot here\n"})

    anyio.run(respond)

    assert transport.written == [
        b"HTTP/1.1 400 Nope: not here\r\ncontent-type: text/plain\r\n\r\n",
        b"Nope:\nnot here\n",
    ]
    assert cycle.transport is transport  # put back once the head is written
    assert cycle.heads == [[(b"content-type", b"text/plain")]]


def test_a_response_without_the_header_keeps_uvicorns_status_line() -> None:
    cycle = _Cycle()
    send = ReasonPhraseSend(cycle, STATUS_LINE.__getitem__)

    anyio.run(send, {"type": "http.response.start", "status": 200, "headers": []})

    assert cycle.transport.written == [STATUS_LINE[200] + b"\r\n"]
