"""The upload API's messages in the HTTP status line's reason phrase, as PyPI sends them.

twine, pdm and hatch print the status line of a refused upload (`400 Bad
Request`), not its body; Warehouse therefore puts its message in the reason
phrase (`resp.status = f"{code} {message}"`, STANDARDS §2.2). ASGI has no
field for a reason phrase, so the upload route hands its message to the
server in a private response header, `REASON_HEADER`, and packyard's HTTP
protocol (`http_protocol.py`) takes it out and writes it into the status
line, for `/legacy/` only. The body is left as the route sent it (HTTP/2
has no reason phrase at all: clients that read the body find it there).

Downloads too: pip and uv print a refused download's status line, not its
body, so a file the advisory policy denies (a 403 from `/files/…`, also
under `/snapshot/…`) names its advisories there (`PREFIXES`).

A reason phrase is `*( HTAB / SP / VCHAR / obs-text )` (RFC 9112 §4), read
as latin-1 by most clients: `reason_phrase` makes the message one line of
printable ASCII, at most `MAX_REASON_BYTES` long.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Callable
from http import HTTPStatus
from typing import Any

REASON_HEADER = b"x-packyard-reason-phrase"
"""The header that carries a route's reason phrase to the protocol (never sent)."""
PATHS = frozenset({"/legacy/", "/legacy"})
"""The upload API's paths (`routes/upload.py`), whose reason phrases are set."""
PREFIXES = ("/files/", "/snapshot/")
"""The file routes' path prefixes (`routes/files.py`), whose reason phrases are set."""
MAX_REASON_BYTES = 512
_TYPOGRAPHY = str.maketrans(
    {"‘": "'", "’": "'", "“": '"', "”": '"', "–": "-", "—": "-", "…": "...", "→": "->"}
)


def reason_phrase(message: str, limit: int = MAX_REASON_BYTES) -> bytes:
    """`message` as a reason phrase: one line of printable ASCII of at most `limit` bytes.

    Typographic quotes and dashes become their ASCII forms, accents are
    dropped (`é` is `e`), other characters are escaped (`\\u0430`), runs of
    white space (line breaks too) become one space, and a longer message is
    cut, ending in `...`.
    """
    text = unicodedata.normalize("NFKD", message.translate(_TYPOGRAPHY))
    text = "".join(char for char in text if not unicodedata.combining(char))
    text = " ".join(text.split())
    phrase = "".join(char if " " <= char <= "~" else _escaped(char) for char in text)
    if len(phrase) > limit:
        phrase = phrase[: limit - 3].rstrip() + "..."
    return phrase.encode("ascii")


def _escaped(char: str) -> str:
    """`char` as Python writes it in a string literal: `\\x00`, `\\u0430`, `\\U0001f600`."""
    code = ord(char)
    if code < 0x100:
        return f"\\x{code:02x}"
    return f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}"


def status_line(status: int, phrase: bytes) -> bytes:
    """`HTTP/1.1 <status> <phrase>\\r\\n`; the standard phrase if `phrase` is empty."""
    if not phrase:
        try:
            phrase = HTTPStatus(status).phrase.encode()
        except ValueError:
            phrase = b""
    return b"HTTP/1.1 %d %s\r\n" % (status, phrase)


class ReasonPhraseSend:
    """A request cycle's `send`, for a path whose messages go into the status line.

    uvicorn writes a response's head in one `transport.write`, starting with
    its fixed status line; while that head is written, the cycle's transport
    is a `_StatusLineRewriter` that puts the route's phrase in its place.

    Args:
        cycle: uvicorn's `RequestResponseCycle` of the request (its `send`
            and `transport` are used; its own `send` must not be this object).
        standard_line: the status line uvicorn writes for a status
            (`STATUS_LINE[status]`).
    """

    def __init__(self, cycle: Any, standard_line: Callable[[int], bytes]) -> None:
        self._cycle = cycle
        self._send = cycle.send
        self._standard_line = standard_line

    async def __call__(self, message: Any) -> None:
        if message["type"] != "http.response.start":
            await self._send(message)
            return
        headers = list(message.get("headers", ()))
        carried = [value for name, value in headers if name.lower() == REASON_HEADER]
        if not carried:
            await self._send(message)
            return
        status = int(message["status"])
        message = {**message, "headers": [h for h in headers if h[0].lower() != REASON_HEADER]}
        phrase = reason_phrase(bytes(carried[-1]).decode("utf-8", "replace"))
        cycle = self._cycle
        transport = cycle.transport
        cycle.transport = _StatusLineRewriter(
            transport, self._standard_line(status), status_line(status, phrase)
        )
        try:
            await self._send(message)
        finally:
            cycle.transport = transport


class _StatusLineRewriter:
    """A transport whose writes starting with `standard` start with `custom` instead."""

    def __init__(self, transport: Any, standard: bytes, custom: bytes) -> None:
        self._transport = transport
        self._standard = standard
        self._custom = custom

    def write(self, data: bytes) -> None:
        if data.startswith(self._standard):
            data = self._custom + data[len(self._standard) :]
        self._transport.write(data)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)
