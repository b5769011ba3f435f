"""A wheel's METADATA read from a zip that is somewhere else, a few byte ranges at a time.

PEP 658 asks an index to serve `<wheel>.metadata`; for a wheel of an upstream
that does not, packyard reads the one member from the wheel with range
requests instead of downloading it (DESIGN §2). The reads follow the zip
format (PKWARE APPNOTE.TXT 6.3.10, cited by section):

1. the tail of the file: the End Of Central Directory record (4.3.16), with
   the ZIP64 locator (4.3.15) and record (4.3.14) when there is one;
2. the central directory (4.3.12), or only its end: the `.dist-info` files are
   written last in a wheel (PEP 427), so in a 190 MB wheel with 12,000 members
   the entry sought is in the tail already read, and the rest is never asked;
3. the local file header (4.3.7) and the compressed data of METADATA.

A typical wheel costs two or three reads totalling well under 1 MB; a small
one, a single read. Everything read comes from outside and is checked:
offsets inside the file, signatures, sizes under `MAX_METADATA_SIZE` (the
limit `dists/metadata.py` applies to local files), a bounded inflate, and
the CRC-32. A broken or hostile archive raises `InvalidDistribution`.
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from packaging.utils import canonicalize_name
from packaging.version import InvalidVersion, Version

from packyard.dists.filenames import DistFilename
from packyard.dists.metadata import MAX_METADATA_SIZE
from packyard.errors import InvalidDistribution

RangeReader = Callable[[int, int], Awaitable[bytes]]
"""`read(start, end)`: the bytes `start` to `end` (exclusive) of the file, exactly."""

# The end record with the longest comment (4.3.16), and the ZIP64 locator before it.
TAIL_SIZE = 22 + 0xFFFF + 20
MAX_CENTRAL_DIRECTORY = 64 * 1024 * 1024
MAX_ENTRIES = 1_000_000
# Bytes read past the local header's name for its extra field (4.3.7), which
# may differ from the central one's; a longer extra field costs one more read.
EXTRA_ALLOWANCE = 512
# Deflate may grow incompressible data a little (RFC 1951 §3.2.4: 5 bytes per
# stored block of up to 64 KiB), so the compressed size is allowed some room.
MAX_COMPRESSED = MAX_METADATA_SIZE + MAX_METADATA_SIZE // 1024 + 1024

_EOCD = struct.Struct("<IHHHHIIH")  # 4.3.16
_ZIP64_LOCATOR = struct.Struct("<IIQI")  # 4.3.15
_ZIP64_EOCD = struct.Struct("<IQHHIIQQQQ")  # 4.3.14
_CENTRAL = struct.Struct("<IHHHHHHIIIHHHHHII")  # 4.3.12
_LOCAL = struct.Struct("<IHHHHHIIIHH")  # 4.3.7
_EOCD_SIG, _LOCATOR_SIG, _ZIP64_SIG = 0x06054B50, 0x07064B50, 0x06064B50
_CENTRAL_SIG, _LOCAL_SIG = 0x02014B50, 0x04034B50
_CENTRAL_MAGIC = struct.pack("<I", _CENTRAL_SIG)
_STORED, _DEFLATED = 0, 8  # 4.4.5; a wheel uses nothing else (PEP 427)
_ENCRYPTED, _UTF8 = 0x0001, 0x0800  # general purpose flag bits 0 and 11 (4.4.4)
_ZIP64_EXTRA = 0x0001  # 4.5.3
_MAX16, _MAX32 = 0xFFFF, 0xFFFFFFFF  # "look in the ZIP64 record" (4.4.1.4)


@dataclass(frozen=True, slots=True)
class _Directory:
    """Where the central directory is, from the (ZIP64) end record."""

    offset: int
    size: int
    entries: int


@dataclass(frozen=True, slots=True)
class _Entry:
    """One central directory entry: what is needed to read its member."""

    name: str
    raw_name: bytes
    method: int
    flags: int
    crc: int
    compressed: int
    size: int
    offset: int


class _Window:
    """The bytes read so far at the end of the file, so that no range is asked twice."""

    def __init__(self, read: RangeReader, size: int) -> None:
        self._read = read
        self.size = size
        self.start = size
        self.data = b""

    async def get(self, start: int, end: int, what: str) -> bytes:
        """The bytes `start`..`end` (exclusive), read unless already at hand.

        A range that reaches into the window is read only up to the window
        and joined to it, so reading the central directory backwards never
        reads a byte twice.

        Raises:
            InvalidDistribution: the range lies outside the file, or the
                reader returned another number of bytes.
        """
        if not 0 <= start <= end <= self.size:
            raise InvalidDistribution(f"The zip's {what} lies outside the file ({start}-{end}).")
        window_end = self.start + len(self.data)
        if self.start <= start and end <= window_end:
            return self.data[start - self.start : end - self.start]
        if start < self.start <= end <= window_end:
            self.data = await self._fetch(start, self.start, what) + self.data
            self.start = start
            return self.data[: end - start]
        return await self._fetch(start, end, what)

    async def _fetch(self, start: int, end: int, what: str) -> bytes:
        data = await self._read(start, end) if start < end else b""
        if len(data) != end - start:
            raise InvalidDistribution(f"Reading the zip's {what} returned {len(data)} bytes.")
        return data


async def read_wheel_metadata(read: RangeReader, size: int, wheel: DistFilename) -> bytes:
    """The exact bytes of `<name>-<version>.dist-info/METADATA` in the wheel `wheel`.

    `read` reads byte ranges of the wheel, whose length is `size`. The
    member chosen is the last central directory entry (as `zipfile` and so pip
    choose) of a top-level `.dist-info` directory whose name and version,
    normalised, are the filename's.

    Raises:
        InvalidDistribution: the file is not a readable zip, a record points
            outside the file or is malformed, a limit is exceeded (central
            directory of 64 MiB or a million entries, METADATA of 10 MiB), the
            wheel has no such METADATA, or its data does not match its sizes
            or CRC-32.
        Whatever `read` raises (e.g. UpstreamError) passes through.
    """
    window = _Window(read, size)
    await window.get(max(size - TAIL_SIZE, 0), size, "end")
    directory = await _directory(window)
    entry = await _find_metadata(window, directory, wheel)
    return await _member(window, entry, directory.offset)


# --- the end records -----------------------------------------------------------------


async def _directory(window: _Window) -> _Directory:
    """4.3.16: the EOCD is the last record; a comment of up to 64 KiB may follow it."""
    tail, magic = window.data, struct.pack("<I", _EOCD_SIG)
    at = tail.rfind(magic, 0, len(tail) - _EOCD.size + len(magic))
    while at >= 0 and at + _EOCD.size + _EOCD.unpack_from(tail, at)[7] != len(tail):
        at = tail.rfind(magic, 0, at + len(magic) - 1)  # that one was inside the comment
    if at < 0:
        raise InvalidDistribution("The file is not a zip: no end of central directory record.")
    _, disk, cd_disk, _, entries, cd_size, cd_offset, _ = _EOCD.unpack_from(tail, at)
    eocd = window.start + at
    if disk != 0 or cd_disk != 0:
        raise InvalidDistribution("The zip spans several disks.")
    locator = eocd - _ZIP64_LOCATOR.size
    if locator >= 0:
        raw = await window.get(locator, eocd, "ZIP64 locator")
        if _ZIP64_LOCATOR.unpack(raw)[0] == _LOCATOR_SIG:
            return await _zip64_directory(window, _ZIP64_LOCATOR.unpack(raw)[2], locator)
    if _MAX32 in (cd_size, cd_offset) or entries == _MAX16:
        raise InvalidDistribution("The zip needs a ZIP64 end record, and has none.")
    return _checked(_Directory(cd_offset, cd_size, entries), eocd)


async def _zip64_directory(window: _Window, record: int, locator: int) -> _Directory:
    """4.3.14: the ZIP64 end record, at the offset its locator (4.3.15) gives."""
    if not 0 <= record <= locator - _ZIP64_EOCD.size:
        raise InvalidDistribution("The zip's ZIP64 locator points outside the file.")
    raw = await window.get(record, record + _ZIP64_EOCD.size, "ZIP64 end record")
    signature, _, _, _, disk, cd_disk, _, entries, cd_size, cd_offset = _ZIP64_EOCD.unpack(raw)
    if signature != _ZIP64_SIG:
        raise InvalidDistribution("The zip's ZIP64 end record has a bad signature.")
    if disk != 0 or cd_disk != 0:
        raise InvalidDistribution("The zip spans several disks.")
    return _checked(_Directory(cd_offset, cd_size, entries), record)


def _checked(directory: _Directory, end: int) -> _Directory:
    """The directory must end where the end records begin (no prepended data)."""
    if directory.entries > MAX_ENTRIES:
        raise InvalidDistribution(f"The zip has more than {MAX_ENTRIES} entries.")
    if directory.size > MAX_CENTRAL_DIRECTORY:
        limit = MAX_CENTRAL_DIRECTORY // (1024 * 1024)
        raise InvalidDistribution(f"The zip's central directory is larger than {limit} MiB.")
    if directory.offset + directory.size != end:
        raise InvalidDistribution("The zip's central directory does not end at its end record.")
    return directory


# --- the central directory -------------------------------------------------------------


async def _find_metadata(window: _Window, directory: _Directory, wheel: DistFilename) -> _Entry:
    """Read the central directory backwards, doubling, until the entry is found.

    A partial directory is parsed from the first entry boundary whose chain
    of entries ends exactly at the directory's end; the whole directory is
    parsed from its start and must hold exactly `entries` entries.
    """
    end = directory.offset + directory.size
    start = max(window.start, directory.offset)
    while True:
        data = await window.get(start, end, "central directory")
        whole = start == directory.offset
        positions = _positions(data, whole)
        if whole and len(positions) != directory.entries:
            message = f"The zip declares {directory.entries} entries and has {len(positions)}."
            raise InvalidDistribution(message)
        found = _metadata_entry(data, positions, wheel)
        if found is not None:
            return found
        if whole:
            raise InvalidDistribution(f"The wheel has no {_stem(wheel)}.dist-info/METADATA file.")
        start = max(directory.offset, end - max(2 * (end - start), TAIL_SIZE))


def _positions(data: bytes, whole: bool) -> list[int]:
    """Where the entries of `data`, the end of a central directory (all of it
    if `whole`), begin.

    Raises:
        InvalidDistribution: `data` is the whole directory and is malformed.
    """
    if whole:
        return _chain(data, 0)
    # Resynchronise: from each signature, last first, note whether a chain of
    # well-formed entries leads exactly to the end; the first such one wins.
    ends_well: dict[int, bool] = {}
    for at in reversed(_signatures(data)):
        following = _next_entry(data, at)
        ends_well[at] = following == len(data) or ends_well.get(following or -1, False)
    start = next((at for at in sorted(ends_well) if ends_well[at]), None)
    return [] if start is None else _chain(data, start)


def _signatures(data: bytes) -> list[int]:
    found, at = [], data.find(_CENTRAL_MAGIC)
    while at >= 0:
        found.append(at)
        at = data.find(_CENTRAL_MAGIC, at + 1)
    return found


def _next_entry(data: bytes, at: int) -> int | None:
    """Where the entry after the one at `at` begins; None if this is not an entry."""
    if at + _CENTRAL.size > len(data):
        return None
    fields = _CENTRAL.unpack_from(data, at)
    if fields[0] != _CENTRAL_SIG:
        return None
    following = at + _CENTRAL.size + fields[10] + fields[11] + fields[12]
    return following if following <= len(data) else None


def _chain(data: bytes, at: int) -> list[int]:
    """4.3.12: where the entries from `at` to the end of `data`, back to back, begin."""
    positions = []
    while at < len(data):
        following = _next_entry(data, at)
        if following is None:
            raise InvalidDistribution(f"The zip's central directory is malformed at byte {at}.")
        positions.append(at)
        at = following
    return positions


def _entry(data: bytes, at: int) -> _Entry:
    fields = _CENTRAL.unpack_from(data, at)
    flags, method, crc, compressed, size = fields[3], fields[4], fields[7], fields[8], fields[9]
    name_length, extra_length, offset = fields[10], fields[11], fields[16]
    raw_name = data[at + _CENTRAL.size : at + _CENTRAL.size + name_length]
    # 4.4.4 bit 11: the name is UTF-8; otherwise IBM code page 437 (appendix D).
    name = raw_name.decode("utf-8" if flags & _UTF8 else "cp437", errors="replace")
    extra_at = at + _CENTRAL.size + name_length
    extra = data[extra_at : extra_at + extra_length]
    size, compressed, offset = _zip64_values(extra, size, compressed, offset)
    return _Entry(name, raw_name, method, flags, crc, compressed, size, offset)


def _zip64_values(extra: bytes, size: int, compressed: int, offset: int) -> tuple[int, int, int]:
    """4.5.3: the 64-bit values of the fields set to 0xFFFFFFFF, in this order."""
    wanted = [value == _MAX32 for value in (size, compressed, offset)]
    if not any(wanted):
        return size, compressed, offset
    at = 0
    while at + 4 <= len(extra):
        kind, length = struct.unpack_from("<HH", extra, at)
        if kind == _ZIP64_EXTRA:
            values = [size, compressed, offset]
            field_at = at + 4
            for index, needed in enumerate(wanted):
                if needed and field_at + 8 <= at + 4 + length <= len(extra):
                    values[index] = struct.unpack_from("<Q", extra, field_at)[0]
                    field_at += 8
                elif needed:
                    raise InvalidDistribution("A zip entry's ZIP64 extra field is too short.")
            return values[0], values[1], values[2]
        at += 4 + length
    raise InvalidDistribution("A zip entry needs a ZIP64 extra field, and has none.")


def _metadata_entry(data: bytes, positions: list[int], wheel: DistFilename) -> _Entry | None:
    """The last `<dist-info>/METADATA` entry whose directory matches the filename."""
    for at in reversed(positions):
        name_length = _CENTRAL.unpack_from(data, at)[10]
        raw_name = data[at + _CENTRAL.size : at + _CENTRAL.size + name_length]
        if not raw_name.endswith(b".dist-info/METADATA"):  # cheap: most entries stop here
            continue
        entry = _entry(data, at)
        folder, slash, member = entry.name.partition("/")
        if slash and member == "METADATA" and _matches(folder, wheel):
            return entry
    return None


def _matches(folder: str, wheel: DistFilename) -> bool:
    if not folder.endswith(".dist-info"):
        return False
    name, _, version = folder.removesuffix(".dist-info").rpartition("-")
    try:
        return canonicalize_name(name) == wheel.name and Version(version) == wheel.version
    except InvalidVersion:
        return False


def _stem(wheel: DistFilename) -> str:
    return f"{wheel.name.replace('-', '_')}-{wheel.version}"


# --- the member ------------------------------------------------------------------------


async def _member(window: _Window, entry: _Entry, data_end: int) -> bytes:
    """4.3.7 then 4.3.8: the local header, then the data, inflated and checked.

    One read usually covers both: the local extra field is guessed to be at
    most `EXTRA_ALLOWANCE` bytes; a longer one costs a second read.
    """
    _check_entry(entry)
    header_end = entry.offset + _LOCAL.size
    if header_end > data_end:
        raise InvalidDistribution(f"The local header of {entry.name} lies outside the file.")
    guess = header_end + len(entry.raw_name) + EXTRA_ALLOWANCE + entry.compressed
    head = await window.get(entry.offset, min(guess, data_end), f"local header of {entry.name}")
    signature, *_, name_length, extra_length = _LOCAL.unpack_from(head)
    if signature != _LOCAL_SIG:
        raise InvalidDistribution(f"The local header of {entry.name} has a bad signature.")
    if head[_LOCAL.size : _LOCAL.size + name_length] != entry.raw_name:
        raise InvalidDistribution(f"The local header of {entry.name} names another file.")
    start = header_end + name_length + extra_length
    end = start + entry.compressed
    if end > data_end:
        raise InvalidDistribution(f"The data of {entry.name} runs into the central directory.")
    if end - entry.offset <= len(head):
        data = head[start - entry.offset : end - entry.offset]
    else:
        data = await window.get(start, end, f"data of {entry.name}")
    return _inflate(data, entry)


def _check_entry(entry: _Entry) -> None:
    """Refuse before reading: encryption, other methods, sizes over the limit."""
    if entry.flags & _ENCRYPTED:
        raise InvalidDistribution(f"{entry.name} is encrypted.")
    if entry.method not in (_STORED, _DEFLATED):
        raise InvalidDistribution(f"{entry.name} is neither stored nor deflated.")
    limit = MAX_METADATA_SIZE // (1024 * 1024)
    if entry.size > MAX_METADATA_SIZE or entry.compressed > MAX_COMPRESSED:
        raise InvalidDistribution(f"{entry.name} is larger than the {limit} MiB limit.")
    if entry.method == _STORED and entry.compressed != entry.size:
        raise InvalidDistribution(f"{entry.name} is stored, but its two sizes differ.")


def _inflate(data: bytes, entry: _Entry) -> bytes:
    """Raw deflate (RFC 1951) bounded to one byte past the limit; then size and CRC-32."""
    if entry.method == _STORED:
        content = data
    else:
        inflater = zlib.decompressobj(-zlib.MAX_WBITS)
        try:
            content = inflater.decompress(data, MAX_METADATA_SIZE + 1)
        except zlib.error as exc:
            raise InvalidDistribution(f"{entry.name} cannot be inflated: {exc}") from exc
        if len(content) > MAX_METADATA_SIZE:
            limit = MAX_METADATA_SIZE // (1024 * 1024)
            raise InvalidDistribution(f"{entry.name} is larger than the {limit} MiB limit.")
        if not inflater.eof:
            raise InvalidDistribution(f"The deflated data of {entry.name} is truncated.")
    if len(content) != entry.size:
        message = f"{entry.name} has {len(content)} bytes, its entry says {entry.size}."
        raise InvalidDistribution(message)
    if zlib.crc32(content) != entry.crc:
        raise InvalidDistribution(f"{entry.name} does not match its CRC-32.")
    return content
