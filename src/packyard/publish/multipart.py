"""Streaming a multipart/form-data upload body into the blob store.

The body comes from the ASGI `receive` channel and goes through
`python-multipart`'s push parser chunk by chunk. Small fields are collected
into a dict of lists (a repeated key is a multi-use metadata field, STANDARDS
§2.6); the `content` part goes straight into a blob-store writer, which
hashes it on the way. Memory stays flat whatever the file size: at most one
received chunk plus `FLUSH_SIZE` bytes waiting for the writer.

`read_multipart` is an async context manager: inside it the file's bytes are
written but not committed, so the caller can check the upload and commit the
writer or just leave, and leaving aborts the writer (DESIGN §3: nothing half
stored). A body that stops early (the client disconnected, or the body ended
before the closing boundary) raises, and nothing is left behind.

Limits: `max_file_size` is enforced while streaming (STANDARDS §2.13, with
Warehouse's message); field bytes and part counts are capped so that a
client can't make the server hold an unbounded form in memory.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from python_multipart.exceptions import FormParserError
from python_multipart.multipart import MultipartParser, parse_options_header
from starlette.types import Receive

from packyard.errors import InvalidDistribution, InvalidRequest
from packyard.publish.validation import check_filename_characters, description_too_large
from packyard.storage.base import BlobStore, BlobWriter, InvalidBlobKey

if TYPE_CHECKING:
    from python_multipart.multipart import MultipartCallbacks

MIB = 1024 * 1024
FLUSH_SIZE = MIB  # file bytes gathered before one write to the blob store
DRAIN_LIMIT = 128 * MIB  # bytes read and dropped after a refusal, so the client reads the answer
FILE_FIELD = "content"
IGNORED_FILE_FIELDS = frozenset({"gpg_signature"})  # §2.8: accepted and ignored


class ClientDisconnected(Exception):
    """The client went away before the whole body arrived; there is nobody to answer."""


class FileTooLarge(InvalidRequest):
    """The `content` part is larger than `upload.max_file_size` (400, §2.13)."""


@dataclass(frozen=True, slots=True)
class FormLimits:
    """How much a form may hold: the file, all other fields together, and parts."""

    max_file_size: int
    max_field_bytes: int = 4 * MIB
    max_parts: int = 2000
    # The `description` field alone (`upload.max_description_bytes`).
    max_description_bytes: int = 4 * MIB


@dataclass(frozen=True, slots=True)
class UploadedFile:
    """The `content` part: its filename, part type (None: not given, as uv sends it)
    and the writer holding its bytes, written and hashed but not committed."""

    filename: str
    content_type: str | None
    writer: BlobWriter


@dataclass(slots=True)
class MultipartForm:
    """The fields of the form (name -> values in order) and the file part, if any."""

    fields: dict[str, list[str]] = field(default_factory=dict)
    file: UploadedFile | None = None


@asynccontextmanager
async def read_multipart(
    content_type: bytes | None, receive: Receive, store: BlobStore, limits: FormLimits
) -> AsyncIterator[MultipartForm]:
    """Read the whole body; yield the form with the file written but not committed.

    The file's writer is aborted when the context exits, unless the caller
    committed it. After an error the rest of the body (up to `DRAIN_LIMIT`)
    is read and dropped before the error propagates, so that the client,
    which is still sending, gets to read the answer.

    Raises:
        InvalidRequest: not multipart/form-data, a malformed or truncated body,
            a field that is not UTF-8 or holds a NUL, too many or too large
            fields, a second file, a file part under another name, a hostile filename.
        FileTooLarge: the file is larger than `limits.max_file_size`.
        InvalidDistribution: the file part's type is `image/*` (§2.7).
        ClientDisconnected: the client closed the connection first.
        OSError: the blob store failed.
    """
    async with AsyncExitStack() as stack:
        reader = _FormReader(_boundary(content_type), store, limits, stack)
        try:
            await reader.read(receive)
        except ClientDisconnected:
            raise
        except BaseException:
            if not reader.body_done:
                await discard_body(receive)
            raise
        yield reader.form


async def discard_body(receive: Receive, limit: int = DRAIN_LIMIT) -> None:
    """Read and drop what is left of a request body, at most `limit` bytes.

    Call it only while the body is not yet finished: past its end, `receive`
    waits for the disconnect. A client sending more than `limit` bytes after
    a refusal is cut off (uvicorn closes the connection).
    """
    dropped = 0
    while dropped <= limit:
        message = await receive()
        if message["type"] == "http.disconnect":
            return
        dropped += len(message.get("body", b""))
        if not message.get("more_body", False):
            return


def _boundary(content_type: bytes | None) -> bytes:
    kind, options = parse_options_header(content_type or b"")
    boundary = options.get(b"boundary")
    if kind != b"multipart/form-data" or not boundary:
        raise InvalidRequest("An upload must be sent as multipart/form-data with a boundary.")
    return boundary


class _FormReader:
    """Feeds the body to the parser; its callbacks fill the form, the file bytes
    wait in `_pending` until `_flush` hands them to the writer (callbacks are
    synchronous, writes are not)."""

    def __init__(
        self, boundary: bytes, store: BlobStore, limits: FormLimits, stack: AsyncExitStack
    ) -> None:
        self.form = MultipartForm()
        self.body_done = False
        self._store, self._limits, self._stack = store, limits, stack
        try:
            self._parser = MultipartParser(boundary, self._callbacks())
        except FormParserError as exc:
            raise InvalidRequest(f"The multipart boundary is not valid: {exc}") from exc
        self._complete = False
        self._parts = 0
        self._field_bytes = 0
        self._header_name = bytearray()
        self._header_value = bytearray()
        self._headers: dict[str, str] = {}
        self._kind = ""  # "field", "file" or "skip" for the current part
        self._name = ""
        self._filename = ""
        self._value = bytearray()
        self._opening: tuple[str, str | None] | None = None  # the file part to open a writer for
        self._pending = bytearray()
        self._file_size = 0
        self._writer: BlobWriter | None = None

    async def read(self, receive: Receive) -> None:
        while not self.body_done:
            message = await receive()
            if message["type"] == "http.disconnect":
                raise ClientDisconnected("the client closed the connection during the upload")
            self.body_done = not message.get("more_body", False)
            if body := message.get("body", b""):
                try:
                    self._parser.write(body)
                except FormParserError as exc:
                    raise InvalidRequest(f"The multipart body is malformed: {exc}") from exc
                await self._flush()
        if not self._complete:
            raise InvalidRequest("The request body ended before the multipart form was complete.")
        await self._flush()

    async def _flush(self) -> None:
        if self._opening is not None:
            filename, content_type = self._opening
            self._opening = None
            try:
                writer = await self._stack.enter_async_context(self._store.writer(filename))
            except InvalidBlobKey as exc:
                raise InvalidRequest(f"Invalid filename {filename!r}.") from exc
            self._writer = writer
            self.form.file = UploadedFile(filename, content_type, writer)
        if self._writer is not None and (len(self._pending) >= FLUSH_SIZE or self._complete):
            await self._writer.write(bytes(self._pending))
            self._pending.clear()

    def _callbacks(self) -> MultipartCallbacks:
        return {
            "on_part_begin": self._on_part_begin,
            "on_header_field": self._on_header_field,
            "on_header_value": self._on_header_value,
            "on_header_end": self._on_header_end,
            "on_headers_finished": self._on_headers_finished,
            "on_part_data": self._on_part_data,
            "on_part_end": self._on_part_end,
            "on_end": self._on_end,
        }

    def _on_part_begin(self) -> None:
        self._parts += 1
        if self._parts > self._limits.max_parts:
            raise InvalidRequest(f"The form has more than {self._limits.max_parts} parts.")
        self._headers = {}

    def _on_header_field(self, data: bytes, start: int, end: int) -> None:
        self._header_name += data[start:end]

    def _on_header_value(self, data: bytes, start: int, end: int) -> None:
        self._header_value += data[start:end]

    def _on_header_end(self) -> None:
        # Header bytes are kept as latin-1 text, so parse_options_header gets the
        # original bytes back; values are decoded as UTF-8 below.
        self._headers[self._header_name.decode("latin-1").lower()] = self._header_value.decode(
            "latin-1"
        )
        self._header_name.clear()
        self._header_value.clear()

    def _on_headers_finished(self) -> None:
        _, options = parse_options_header(self._headers.get("content-disposition", ""))
        name = _utf8(options.get(b"name"), "a part name")
        filename = options.get(b"filename")
        if not name:
            raise InvalidRequest("Every part of the form needs a name.")
        self._name, self._value = name, bytearray()
        if name == FILE_FIELD:
            self._begin_file(_utf8(filename, "the filename") if filename is not None else None)
        elif filename is None:
            self._kind = "field"
        elif name in IGNORED_FILE_FIELDS:
            self._kind = "skip"
        else:
            raise InvalidRequest(f"{name}: Should not be a tuple.")

    def _begin_file(self, filename: str | None) -> None:
        if filename is None:
            raise InvalidRequest("Upload payload does not have a file.")
        if self.form.file is not None or self._opening is not None:
            raise InvalidRequest("Only one file may be uploaded per request.")
        content_type = self._headers.get("content-type") or None
        # Warehouse #4086: an image is never a distribution. No type at all is
        # fine: uv sends none (§2.20).
        if content_type is not None and content_type.strip().lower().startswith("image/"):
            raise InvalidDistribution("Invalid distribution file.")
        check_filename_characters(filename)
        self._kind, self._filename = "file", filename
        self._opening = (filename, content_type)

    def _on_part_data(self, data: bytes, start: int, end: int) -> None:
        if self._kind == "file":
            self._file_size += end - start
            if self._file_size > self._limits.max_file_size:
                raise self._too_large()
            self._pending += data[start:end]
            return
        self._field_bytes += end - start
        if self._field_bytes > self._limits.max_field_bytes:
            limit = self._limits.max_field_bytes / MIB
            raise InvalidRequest(f"The form fields are larger than the {limit:g} MiB limit.")
        if self._kind == "field":
            self._value += data[start:end]
            if (
                self._name == "description"
                and len(self._value) > self._limits.max_description_bytes
            ):
                limit = self._limits.max_description_bytes
                raise InvalidRequest(description_too_large(None, limit))

    def _on_part_end(self) -> None:
        if self._kind == "field":
            value = _utf8(bytes(self._value), self._name)
            if "\x00" in value:
                raise InvalidRequest(f"{self._name}: Null bytes are not allowed.")
            self.form.fields.setdefault(self._name, []).append(value)
        self._kind = ""

    def _on_end(self) -> None:
        self._complete = True

    def _too_large(self) -> FileTooLarge:
        names = self.form.fields.get("name") or [self._filename]
        return file_too_large(names[0], self._limits.max_file_size)


def file_too_large(project: str, max_file_size: int) -> FileTooLarge:
    """The refusal of a file over `upload.max_file_size` (uploads and `packyard import`)."""
    return FileTooLarge(
        f"File too large. Limit for project {project!r} is {max_file_size / MIB:g} MB. "
        "An administrator can raise it with the upload.max_file_size setting."
    )


def _utf8(value: bytes | None, what: str) -> str:
    try:
        return (value or b"").decode("utf-8")
    except UnicodeDecodeError:
        raise InvalidRequest(f"{what}: not valid UTF-8.") from None
