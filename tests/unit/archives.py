"""Test archives built on the fly: tar, tar.gz and zip from a list of members, and streamed gzip bombs."""

from __future__ import annotations

import hashlib
import io
import stat
import struct
import tarfile
import zipfile
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from isal import isal_zlib

if TYPE_CHECKING:
    from collections.abc import Iterable
    from pathlib import Path

Kind = Literal["file", "dir", "symlink", "hardlink", "chr", "fifo"]


@dataclass(frozen=True)
class Member:
    name: str
    data: bytes = b""
    mode: int = 0o644
    kind: Kind = "file"
    target: str = ""


def file(name: str, data: bytes = b"", mode: int = 0o644) -> Member:
    return Member(name, data, mode)


def folder(name: str, mode: int = 0o755) -> Member:
    return Member(name, mode=mode, kind="dir")


def link(name: str, target: str, kind: Kind = "symlink") -> Member:
    return Member(name, kind=kind, target=target, mode=0o777)


_TAR_TYPES = {
    "file": tarfile.REGTYPE,
    "dir": tarfile.DIRTYPE,
    "symlink": tarfile.SYMTYPE,
    "hardlink": tarfile.LNKTYPE,
    "chr": tarfile.CHRTYPE,
    "fifo": tarfile.FIFOTYPE,
}


def tar_bytes(
    members: Iterable[Member],
    *,
    gz: bool = True,
    fmt: int = tarfile.PAX_FORMAT,
    mtime: int = 1_700_000_000,
    owner: tuple[str, int] = ("alice", 1000),
    encoding: str = "utf-8",
    pax_headers: dict[str, str] | None = None,
) -> bytes:
    """Return a tar (gzip'd unless `gz` is false) holding `members` in the order given."""
    buffer = io.BytesIO()
    mode = "w:gz" if gz else "w"
    with tarfile.open(
        fileobj=buffer, mode=mode, format=fmt, encoding=encoding, pax_headers=pax_headers or {}
    ) as archive:  # type: ignore[call-overload]
        for member in members:
            info = tarfile.TarInfo(member.name)
            info.type = _TAR_TYPES[member.kind]
            info.mode = member.mode
            info.mtime = mtime
            info.uname, info.uid = owner
            info.gname, info.gid = owner
            info.linkname = member.target
            info.size = len(member.data) if member.kind == "file" else 0
            archive.addfile(info, io.BytesIO(member.data) if member.kind == "file" else None)
    return buffer.getvalue()


def zip_bytes(
    members: Iterable[Member], *, date: tuple[int, int, int, int, int, int] = (2024, 5, 6, 7, 8, 10)
) -> bytes:
    """Return a zip holding `members` (deflated, Unix modes) in the order given."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for member in members:
            name = member.name + "/" if member.kind == "dir" and not member.name.endswith("/") else member.name
            info = zipfile.ZipInfo(name, date_time=date)
            info.create_system = 3
            kind_bits = {"file": stat.S_IFREG, "dir": stat.S_IFDIR, "symlink": stat.S_IFLNK, "fifo": stat.S_IFIFO}
            info.external_attr = (kind_bits[member.kind] | member.mode) << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(info, member.target.encode() if member.kind == "symlink" else member.data)
    return buffer.getvalue()


def zeros_tar_gz(path: Path, name: str, size: int) -> None:
    """Write a tar.gz at `path` holding one member of `size` zero bytes, streamed: a decompression bomb."""
    header = tarfile.TarInfo(name)
    header.size = size
    compressor = isal_zlib.compressobj(3, isal_zlib.DEFLATED, -15)
    crc = 0
    chunk = bytes(1 << 20)
    with path.open("wb") as out:
        out.write(b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\xff")

        def put(data: bytes) -> None:
            nonlocal crc
            crc = isal_zlib.crc32(data, crc)
            out.write(compressor.compress(data))

        put(header.tobuf(format=tarfile.USTAR_FORMAT))
        for _ in range(size // len(chunk)):
            put(chunk)
        put(bytes(size % len(chunk) + (-size % 512) + 1024))
        out.write(compressor.flush() + struct.pack("<II", crc, (size + 512 + (-size % 512) + 1024) & 0xFFFFFFFF))


def big_tar_gz(path: Path, *, files: int, file_size: int) -> None:
    """Write a tar.gz at `path` of `files` members of `file_size` bytes that deflate cannot shrink."""
    import random

    from isal import igzip

    block = random.Random(7).randbytes(1 << 20)  # repeats lie beyond deflate's 32 KiB window
    raw = igzip.open(path, "wb", compresslevel=0)  # type: ignore[no-untyped-call]
    with raw, tarfile.open(fileobj=raw, mode="w|") as archive:
        for index in range(files):
            info = tarfile.TarInfo(f"blobs/{index:03d}.bin")
            info.size = file_size
            archive.addfile(info, _Repeat(block, file_size, index))


class _Repeat(io.RawIOBase):
    def __init__(self, block: bytes, size: int, shift: int) -> None:
        self._block = block[shift:] + block[:shift]
        self._left = size
        self._pos = 0

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        size = self._left if size < 0 else min(size, self._left)
        out = bytearray()
        while len(out) < size:
            take = min(size - len(out), len(self._block) - self._pos)
            out += self._block[self._pos : self._pos + take]
            self._pos = (self._pos + take) % len(self._block)
        self._left -= size
        return bytes(out)


def listing_digest(staged: bytes) -> str:
    """The digest sagepush documents for a sourcedir.tar.gz, computed from the archive alone (see `tree_listing`)."""
    lines = [b"sagepush staged tree 1\n"]
    with tarfile.open(fileobj=io.BytesIO(staged), mode="r:gz") as tar:
        for member in tar:
            if member.isdir():
                lines.append(f"d {member.name}/\n".encode())
                continue
            body = tar.extractfile(member)
            assert body is not None, member.name
            flag = "x" if member.mode & stat.S_IXUSR else "f"
            lines.append(f"{flag} {hashlib.sha256(body.read()).hexdigest()} {member.name}\n".encode())
    return hashlib.sha256(b"".join(lines)).hexdigest()
