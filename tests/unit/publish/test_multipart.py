"""`read_multipart`: fields collected, the file streamed into the blob store, limits
enforced while streaming, and nothing left behind by a refused or broken body.

Also home of the helpers the other upload tests share: `twine_form` (the exact
fields twine sends for a file, built by twine's own code), `encode` (a
multipart body) and `receiver` (an ASGI `receive` channel that hands the body
over in chunks).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import httpx
import pytest
from starlette.types import Message, Receive
from twine.package import PackageFile
from twine.repository import Repository

from packyard.errors import InvalidDistribution, InvalidRequest
from packyard.publish.multipart import (
    ClientDisconnected,
    FileTooLarge,
    FormLimits,
    MultipartForm,
    read_multipart,
)
from packyard.storage.filesystem import FilesystemBlobStore
from tests.builders import build_wheel

Fields = Sequence[tuple[str, str]]
FileSpec = tuple[str, bytes, str | None]


def twine_form(path: Path, **changes: str | None) -> list[tuple[str, str]]:
    """The form fields twine sends for `path` (twine's own code), with `changes`
    applied: a value replaces the field, None removes it."""
    package = PackageFile.from_filename(str(path), comment=None)
    fields = Repository._convert_metadata_to_list_of_tuples(package.metadata_dictionary())
    fields += [(":action", "file_upload"), ("protocol_version", "1")]
    for key, value in changes.items():
        fields = [(k, v) for k, v in fields if k != key]
        if value is not None:
            fields.append((key, value))
    return [(str(k), str(v)) for k, v in fields]


BOUNDARY = b"packyard-test-boundary-7d3f"


def encode(fields: Fields, file: FileSpec | None) -> tuple[bytes, bytes]:
    """(Content-Type header, body) of a multipart/form-data body (RFC 7578) with
    `file` as the `content` part; a part type of None is left out, as uv does."""
    parts = [
        b'--%s\r\nContent-Disposition: form-data; name="%s"\r\n\r\n%s\r\n'
        % (BOUNDARY, key.encode(), value.encode())
        for key, value in fields
    ]
    if file is not None:
        filename, data, part_type = file
        type_line = b"Content-Type: %s\r\n" % part_type.encode() if part_type else b""
        parts.append(
            b'--%s\r\nContent-Disposition: form-data; name="content"; filename="%s"\r\n'
            b"%s\r\n%s\r\n" % (BOUNDARY, filename.encode(), type_line, data)
        )
    body = b"".join(parts) + b"--%s--\r\n" % BOUNDARY
    return b"multipart/form-data; boundary=" + BOUNDARY, body


def receiver(
    body: bytes,
    chunk_size: int = 64 * 1024,
    *,
    stop_at: int | None = None,
    disconnect: bool = False,
) -> Receive:
    """An ASGI `receive` giving `body` in chunks; `stop_at` ends it there (with
    `more_body` False, or a disconnect if `disconnect`)."""
    end = len(body) if stop_at is None else stop_at
    chunks = [body[i : i + chunk_size] for i in range(0, end, chunk_size)] or [b""]
    messages: list[Message] = [
        {"type": "http.request", "body": chunk, "more_body": True} for chunk in chunks
    ]
    if disconnect:
        messages.append({"type": "http.disconnect"})
    else:
        messages[-1]["more_body"] = False

    async def receive() -> Message:
        return messages.pop(0) if messages else {"type": "http.disconnect"}

    return receive


@pytest.fixture
def store(tmp_path: Path) -> FilesystemBlobStore:
    return FilesystemBlobStore(tmp_path / "files")


def stored_files(store: FilesystemBlobStore) -> list[Path]:
    return sorted(p for p in store.root.rglob("*") if p.is_file())


LIMITS = FormLimits(max_file_size=1024 * 1024, max_field_bytes=64 * 1024, max_parts=50)
FIELDS = [("name", "acme-core"), ("classifiers", "A"), ("classifiers", "B"), ("summary", "ünï")]


async def read(
    store: FilesystemBlobStore, fields: Fields, file: FileSpec | None, chunk_size: int = 65536
) -> MultipartForm:
    """Read the form and commit its file (if any); return the form."""
    content_type, body = encode(fields, file)
    async with read_multipart(content_type, receiver(body, chunk_size), store, LIMITS) as form:
        if form.file is not None:
            await form.file.writer.commit()
        return form


@pytest.mark.anyio
@pytest.mark.parametrize("chunk_size", [1, 7, 64 * 1024])
async def test_fields_are_lists_and_the_file_is_streamed_into_the_store(
    store: FilesystemBlobStore, tmp_path: Path, chunk_size: int
) -> None:
    data = build_wheel(tmp_path, "acme-core", "1.0").read_bytes()

    form = await read(
        store,
        FIELDS,
        ("acme_core-1.0-py3-none-any.whl", data, "application/octet-stream"),
        chunk_size=chunk_size,
    )

    assert form.fields == {"name": ["acme-core"], "classifiers": ["A", "B"], "summary": ["ünï"]}
    assert form.file is not None
    assert (form.file.filename, form.file.content_type) == (
        "acme_core-1.0-py3-none-any.whl",
        "application/octet-stream",
    )
    [path] = stored_files(store)
    assert path.read_bytes() == data
    assert path.name == "acme_core-1.0-py3-none-any.whl"


@pytest.mark.anyio
async def test_a_file_part_without_content_type_is_accepted(store: FilesystemBlobStore) -> None:
    form = await read(store, FIELDS, ("a-1.0.tar.gz", b"bytes", None))

    assert form.file is not None
    assert form.file.content_type is None
    assert [p.read_bytes() for p in stored_files(store)] == [b"bytes"]


@pytest.mark.anyio
async def test_leaving_without_commit_leaves_nothing(store: FilesystemBlobStore) -> None:
    content_type, body = encode(FIELDS, ("a-1.0.tar.gz", b"x" * 5000, "application/octet-stream"))

    async with read_multipart(content_type, receiver(body), store, LIMITS) as form:
        assert form.file is not None
        assert form.file.writer.size == 5000

    assert stored_files(store) == []


@pytest.mark.anyio
async def test_a_file_over_the_limit_is_refused_while_streaming(
    store: FilesystemBlobStore,
) -> None:
    big = b"x" * (LIMITS.max_file_size + 1)
    with pytest.raises(
        FileTooLarge, match=r"^File too large. Limit for project 'acme-core' is 1 MB"
    ):
        await read(store, FIELDS, ("a-1.0.tar.gz", big, "application/octet-stream"))

    assert stored_files(store) == []


@pytest.mark.anyio
async def test_a_file_of_exactly_the_limit_is_accepted(store: FilesystemBlobStore) -> None:
    exact = b"x" * LIMITS.max_file_size
    form = await read(store, FIELDS, ("a-1.0.tar.gz", exact, "application/octet-stream"))

    assert form.file is not None
    assert form.file.writer.size == LIMITS.max_file_size


@pytest.mark.anyio
@pytest.mark.parametrize("disconnect", [False, True])
async def test_an_interrupted_body_stores_nothing(
    store: FilesystemBlobStore, disconnect: bool
) -> None:
    content_type, body = encode(FIELDS, ("a-1.0.tar.gz", b"x" * 300_000, "application/x-tar"))
    receive = receiver(body, 4096, stop_at=len(body) // 2, disconnect=disconnect)
    error = ClientDisconnected if disconnect else InvalidRequest

    with pytest.raises(error):
        async with read_multipart(content_type, receive, store, LIMITS):
            pytest.fail("an incomplete form must not be handed over")

    assert stored_files(store) == []


@pytest.mark.anyio
async def test_an_image_part_is_not_a_distribution(store: FilesystemBlobStore) -> None:
    with pytest.raises(InvalidDistribution, match=r"^Invalid distribution file\.$"):
        await read(store, FIELDS, ("a-1.0.tar.gz", b"GIF89a", "image/gif"))

    assert stored_files(store) == []


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("fields", "file", "message"),
    [
        (FIELDS, ("../a-1.0.tar.gz", b"x", "application/octet-stream"), "'/' or '\\\\'"),
        (FIELDS, ("a\x01-1.0.tar.gz", b"x", "application/octet-stream"), "control characters"),
        (FIELDS, ("..", b"x", "application/octet-stream"), "Invalid filename"),
        ([("summary", "x" * 70_000)], None, "larger than the 0.0625 MiB limit"),
        ([("summary", "a\x00b")], None, "Null bytes are not allowed"),
        ([(f"f{i}", "v") for i in range(60)], None, "more than 50 parts"),
    ],
)
async def test_bad_forms_are_refused(
    store: FilesystemBlobStore, fields: Fields, file: FileSpec | None, message: str
) -> None:
    with pytest.raises(InvalidRequest, match=message):
        await read(store, fields, file)

    assert stored_files(store) == []


def multipart_request(files: list[tuple[str, tuple[str, bytes, str]]]) -> tuple[bytes, bytes]:
    request = httpx.Request("POST", "http://test/legacy/", files=files)
    return request.headers["content-type"].encode(), request.read()


@pytest.mark.anyio
async def test_a_gpg_signature_file_is_ignored(store: FilesystemBlobStore) -> None:
    content_type, body = multipart_request(
        [
            ("gpg_signature", ("a.asc", b"sig", "text/plain")),
            ("content", ("a-1.0.tar.gz", b"x", "application/x-tar")),
        ]
    )
    async with read_multipart(content_type, receiver(body), store, LIMITS) as form:
        assert form.fields == {}
        assert form.file is not None
        assert form.file.filename == "a-1.0.tar.gz"


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("files", "message"),
    [
        ([("summary", ("s.txt", b"s", "text/plain"))], "^summary: Should not be a tuple"),
        (
            [
                ("content", ("a-1.0.tar.gz", b"x", "application/x-tar")),
                ("content", ("b-1.0.tar.gz", b"y", "application/x-tar")),
            ],
            "^Only one file may be uploaded",
        ),
    ],
)
async def test_unexpected_file_parts_are_refused(
    store: FilesystemBlobStore, files: list[tuple[str, tuple[str, bytes, str]]], message: str
) -> None:
    content_type, body = multipart_request(files)
    with pytest.raises(InvalidRequest, match=message):
        async with read_multipart(content_type, receiver(body), store, LIMITS):
            pytest.fail("the form must be refused")

    assert stored_files(store) == []


@pytest.mark.anyio
@pytest.mark.parametrize(
    "content_type", [None, b"application/x-www-form-urlencoded", b"multipart/form-data"]
)
async def test_a_body_that_is_not_multipart_is_refused(
    store: FilesystemBlobStore, content_type: bytes | None
) -> None:
    with pytest.raises(InvalidRequest, match="multipart/form-data"):
        async with read_multipart(content_type, receiver(b"a=b"), store, LIMITS):
            pytest.fail("the form must be refused")
