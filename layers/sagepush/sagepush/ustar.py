"""The tar format, read and written here rather than through `tarfile`.

Reading: an upload is hostile input, read once as a stream. `tarfile` keeps a TarInfo for every member it has seen
(a stream of a million empty headers is a memory bomb), reads a PAX or GNU long-name header of any declared size into
memory, and reports a broken stream without saying where it broke. This reader keeps nothing but the member being
read; it bounds every PAX and long-name header (`account` charges their bytes to the upload's limits), verifies each
header's checksum, yields each member's data in chunks as it streams past, and names the last good member in every
error. It reads what GNU tar writes: ustar, PAX `path` and `size` records, GNU long names, base-256 numbers.

Writing: the staged tar must be byte-identical for the same code on every machine and Python version (its digest
addresses the code). `header` writes a fixed ustar header (mode 0644 or 0755, uid/gid 0, no user names, mtime 0),
and a PAX header before it only when the path or size does not fit ustar, as GNU tar does; `tarfile`'s output
varies with its version, its format default and the TarInfo fields it fills in.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Final

from sagepush.archive import CHUNK, INFLATE_ERRORS, Kind, Member, ReadableStream, StagingError
from sagepush.errors import shorten

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator, Mapping

BLOCK: Final = 512
_ZERO_BLOCK: Final = bytes(BLOCK)
_META_MAX: Final = 1024 * 1024  # a PAX or GNU long-name header's own data
_TRAILER_MAX: Final = 1024 * 1024  # bytes tolerated after a tar's end-of-archive blocks
END: Final = bytes(2 * BLOCK)
"""The end-of-archive marker: two zero blocks."""


class TarStream:
    """A tar stream as it is read: inflate errors become StagingError, and every error names the last member read."""

    def __init__(self, reader: ReadableStream, upload: str) -> None:
        self._reader = reader
        self.upload = upload
        self.last: str | None = None

    def read(self, size: int) -> bytes:
        try:
            return self._reader.read(size)
        except INFLATE_ERRORS as exc:
            raise self.corrupt(f"the gzip stream is corrupt ({exc})") from exc

    def read_exact(self, size: int) -> bytes:
        data = self.read(size)
        if len(data) < size:
            raise self.corrupt("the tar stream is truncated")
        return data

    def corrupt(self, what: str) -> StagingError:
        after = f" after member {self.last!r}" if self.last else " at its start"
        return StagingError(self.upload, f"is not a valid archive: {what}{after}", rule="corrupt")


_TAR_KINDS: Final[Mapping[bytes, Kind]] = {
    b"0": "file",
    b"\0": "file",
    b"7": "file",
    b"5": "dir",
    b"1": "hardlink",
    b"2": "symlink",
    b"3": "device",
    b"4": "device",
    b"6": "fifo",
    b"S": "sparse",
}


def read_tar(stream: TarStream, account: Callable[[int, str], None]) -> Iterator[Member]:
    """Yield the members of a ustar/PAX/GNU tar stream; PAX `path`/`size` and GNU long names are honoured.

    `account` is told of the bytes in PAX and long-name headers, so a stream of them cannot run unbounded.
    """
    pax: dict[bytes, bytes] = {}
    long_name: bytes | None = None
    first = True
    while (header := _next_header(stream, first=first)) is not None:
        first = False
        typeflag = header[156:157]
        size = _tar_number(header[124:136], stream)
        if typeflag in (b"x", b"g", b"L", b"K"):
            if size > _META_MAX:
                raise stream.corrupt(f"a {typeflag.decode()!r} header of {size} bytes")
            data = stream.read_exact(padded(size))[:size]
            account(padded(size), stream.last or stream.upload)
            if typeflag == b"x":
                pax = _parse_pax(data, stream)
            elif typeflag == b"L":
                long_name = data.split(b"\0", 1)[0]
            continue  # global headers (GitHub's commit comment) and long link names carry nothing we keep
        name, kind, size = _tar_member(header, pax, long_name, stream)
        pax, long_name = {}, None
        stream.last = name
        data_left = [size]
        mode = _tar_number(header[100:108], stream)
        yield Member(name, kind, bool(mode & 0o111), size, _tar_chunks(stream, data_left))
        stream.read_exact(data_left[0] + padded(size) - size)


def _next_header(stream: TarStream, *, first: bool) -> bytes | None:
    """Return the next header block, or None at the end of the archive."""
    header = stream.read(BLOCK)
    if not header:
        if first:
            raise StagingError(stream.upload, "is an empty archive; expected at least one file", rule="empty")
        return None  # no end-of-archive blocks: accepted, as GNU tar does
    if len(header) < BLOCK:
        if first:
            raise StagingError(stream.upload, "does not hold a tar archive (shorter than one header)", rule="format")
        raise stream.corrupt("the tar stream is truncated")
    if header == _ZERO_BLOCK:
        _drain_trailer(stream)
        return None
    if first and header[257:262] != b"ustar":
        raise StagingError(stream.upload, "does not hold a tar archive (no ustar header)", rule="format")
    _verify_checksum(header, stream)
    return header


def _tar_member(
    header: bytes, pax: Mapping[bytes, bytes], long_name: bytes | None, stream: TarStream
) -> tuple[str, Kind, int]:
    """Return the name, kind and data size of the member `header` (with its PAX records and GNU long name)."""
    typeflag = header[156:157]
    size = _pax_int(pax[b"size"], stream) if b"size" in pax else _tar_number(header[124:136], stream)
    if any(k.startswith(b"GNU.sparse") for k in pax):
        typeflag = b"S"
    raw_name = pax.get(b"path") or long_name or _ustar_name(header)
    try:
        name = raw_name.decode("utf-8")
    except UnicodeDecodeError:
        raise StagingError(
            shorten(raw_name), "is not a valid UTF-8 name; rename it or build the archive as UTF-8", rule="name"
        ) from None
    kind = _TAR_KINDS.get(typeflag, "other")
    if typeflag == b"\0" and name.endswith("/"):
        kind = "dir"  # pre-POSIX tars mark directories with the trailing slash only
    if kind in ("hardlink", "symlink", "dir", "device", "fifo"):
        size = 0  # no data follows these, whatever their size field says (as tarfile and GNU tar read them)
    return name, kind, size


def _tar_chunks(stream: TarStream, left: list[int]) -> Iterator[bytes]:
    while left[0]:
        chunk = stream.read_exact(min(left[0], CHUNK))
        left[0] -= len(chunk)
        yield chunk


def _drain_trailer(stream: TarStream) -> None:
    # Reading to the end makes the gzip reader check its CRC; a bounded amount of padding is normal.
    drained = 0
    while data := stream.read(CHUNK):
        drained += len(data)
        if drained > _TRAILER_MAX:
            raise stream.corrupt(f"more than {_TRAILER_MAX} bytes follow the end of the tar archive")


def padded(size: int) -> int:
    """`size` rounded up to whole 512-byte blocks, as a member's data is stored."""
    return -(-size // BLOCK) * BLOCK


def _ustar_name(header: bytes) -> bytes:
    name = header[0:100].split(b"\0", 1)[0]
    if header[257:263] == b"ustar\0":  # POSIX ustar; GNU's "ustar  " uses the prefix field for other things
        prefix = header[345:500].split(b"\0", 1)[0]
        if prefix:
            return prefix + b"/" + name
    return name


def _verify_checksum(header: bytes, stream: TarStream) -> None:
    stored = _tar_number(header[148:156], stream)
    blanked = header[:148] + b" " * 8 + header[156:]
    unsigned = sum(blanked)
    signed = unsigned - 256 * sum(1 for b in blanked if b > 127)
    if stored not in (unsigned, signed):
        raise stream.corrupt("a tar header has a bad checksum")


def _tar_number(field: bytes, stream: TarStream) -> int:
    if field[:1] == b"\x80":  # GNU base-256, positive
        return int.from_bytes(field[1:], "big")
    text = field.split(b"\0", 1)[0].strip(b" ")
    try:
        return int(text, 8) if text else 0
    except ValueError:
        raise stream.corrupt(f"a tar header has a bad number {shorten(field)}") from None


def _parse_pax(data: bytes, stream: TarStream) -> dict[bytes, bytes]:
    records: dict[bytes, bytes] = {}
    pos = 0
    while pos < len(data):
        length_text, _, _ = data[pos : pos + 20].partition(b" ")
        length = _pax_int(length_text, stream)
        record = data[pos : pos + length]
        if length < 5 or len(record) < length or not record.endswith(b"\n") or b"=" not in record:
            raise stream.corrupt("a PAX header is malformed")
        key, _, value = record[len(length_text) + 1 : -1].partition(b"=")
        records[key] = value
        pos += length
    return records


def _pax_int(text: bytes, stream: TarStream) -> int:
    if not text.isdigit():
        raise stream.corrupt(f"a PAX header has a bad number {shorten(text)}")
    return int(text)


# ---- writing


def header(name: str, *, mode: int, size: int, typeflag: bytes) -> bytes:
    """Return a ustar header (with a PAX header before it when the path or size does not fit), fields fixed."""
    path = name.encode()
    records = []
    split = _ustar_split(path)
    if split is None:
        records.append(_pax_record(b"path", path))
        split = (b"", path[:100])
    if size >= 8**11:
        records.append(_pax_record(b"size", str(size).encode()))
    block = _ustar_block(*split, mode=mode, size=size if size < 8**11 else 0, typeflag=typeflag)
    if not records:
        return block
    data = b"".join(records)
    pax = _ustar_block(b"", b"././@PaxHeader", mode=0o644, size=len(data), typeflag=b"x")
    return pax + data + bytes(padded(len(data)) - len(data)) + block


def _ustar_split(path: bytes) -> tuple[bytes, bytes] | None:
    if len(path) <= 100:
        return b"", path
    cut = path.rfind(b"/", 0, 156)
    while cut > 0:
        if len(path) - cut - 1 <= 100:
            return path[:cut], path[cut + 1 :]
        cut = -1  # the longest prefix leaves the shortest name: if that is too long, nothing fits
    return None


def _ustar_block(prefix: bytes, name: bytes, *, mode: int, size: int, typeflag: bytes) -> bytes:
    h = bytearray(BLOCK)
    h[0 : len(name)] = name
    h[100:108] = b"%07o\0" % mode
    h[108:116] = h[116:124] = b"0000000\0"  # uid, gid
    h[124:136] = b"%011o\0" % size
    h[136:148] = b"00000000000\0"  # mtime
    h[148:156] = b" " * 8
    h[156:157] = typeflag
    h[257:265] = b"ustar\x0000"
    h[329:337] = h[337:345] = b"0000000\0"  # devmajor, devminor; uname and gname stay empty
    h[345 : 345 + len(prefix)] = prefix
    h[148:156] = b"%06o\0 " % sum(h)
    return bytes(h)


def _pax_record(key: bytes, value: bytes) -> bytes:
    body = b" " + key + b"=" + value + b"\n"
    length = len(body)
    while len(body) + len(str(length)) != length:
        length = len(body) + len(str(length))
    return str(length).encode() + body
