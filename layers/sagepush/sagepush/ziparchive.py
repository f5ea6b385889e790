"""Zip uploads, read with `zipfile` (which needs random access: staging hands over a seekable file).

Before `zipfile` loads the central directory, the end-of-central-directory record is read by hand, so an empty zip or
one declaring more members than an upload may hold is refused without building its member list.
"""

from __future__ import annotations

import os
import stat
import struct
import zipfile
import zlib
from typing import TYPE_CHECKING

from sagepush.archive import CHUNK, Kind, Member, StagingError, where
from sagepush.errors import shorten

if TYPE_CHECKING:
    from collections.abc import Iterator
    from typing import BinaryIO


class ZipMembers:
    """The members of the zip file `fp`, in central-directory order; `compressed()` tells the bytes read so far."""

    def __init__(self, fp: BinaryIO, upload: str, *, max_members: int, max_name_length: int) -> None:
        _precheck(fp, upload, max_members=max_members, max_name_length=max_name_length)
        self._fp = fp
        self._upload = upload
        self._read = 0

    def compressed(self) -> int:
        return self._read

    def __iter__(self) -> Iterator[Member]:
        upload = self._upload
        try:
            archive = zipfile.ZipFile(self._fp)
        except UnicodeDecodeError as exc:  # a name flagged UTF-8 that is not: zipfile decodes every name up front
            raise StagingError(
                shorten(exc.object), "is not a valid UTF-8 name; rename it or build the archive as UTF-8", rule="name"
            ) from exc
        except (zipfile.BadZipFile, ValueError, EOFError, OSError, NotImplementedError) as exc:
            # NotImplementedError: a central directory claiming a zip version zipfile cannot read
            raise StagingError(upload, f"is not a valid zip archive ({exc})", rule="corrupt") from exc
        with archive:
            for info in archive.infolist():
                name = _name(info)
                if info.flag_bits & 0x1:
                    raise StagingError(
                        where(name), "is encrypted; upload an archive without passwords", rule="encrypted"
                    )
                self._read += info.compress_size + 30 + len(info.orig_filename)
                mode = info.external_attr >> 16 if info.create_system == 3 else 0
                yield Member(name, _kind(mode, name), bool(mode & 0o111), info.file_size, _chunks(archive, info, name))


def _chunks(archive: zipfile.ZipFile, info: zipfile.ZipInfo, name: str) -> Iterator[bytes]:
    try:
        with archive.open(info) as member:
            while chunk := member.read(CHUNK):
                yield chunk
    except (zipfile.BadZipFile, zlib.error, EOFError, NotImplementedError, RuntimeError, ValueError) as exc:
        raise StagingError(where(name), f"cannot be read from the zip archive ({exc})", rule="corrupt") from exc


def _name(info: zipfile.ZipInfo) -> str:
    if info.flag_bits & 0x800:
        return info.orig_filename
    # no UTF-8 flag: zipfile decoded cp437; most tools write UTF-8 anyway, so take the bytes back and try it
    raw = info.orig_filename.encode("cp437")
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        raise StagingError(
            shorten(raw), "is not a valid UTF-8 name; rename it or build the archive as UTF-8", rule="name"
        ) from None


def _kind(mode: int, name: str) -> Kind:
    fmt = stat.S_IFMT(mode)
    if fmt == 0:
        return "dir" if name.endswith("/") else "file"
    kinds: dict[int, Kind] = {
        stat.S_IFREG: "file",
        stat.S_IFDIR: "dir",
        stat.S_IFLNK: "symlink",
        stat.S_IFCHR: "device",
        stat.S_IFBLK: "device",
        stat.S_IFIFO: "fifo",
        stat.S_IFSOCK: "socket",
    }
    return kinds.get(fmt, "other")


def _precheck(fp: BinaryIO, upload: str, *, max_members: int, max_name_length: int) -> None:
    """Refuse an empty zip or one declaring too many entries before zipfile loads its central directory."""
    end = fp.seek(0, os.SEEK_END)
    tail_size = min(end, 22 + 0xFFFF + 20)
    fp.seek(end - tail_size)
    tail = fp.read(tail_size)
    at = tail.rfind(b"PK\x05\x06")
    if at < 0 or len(tail) - at < 22:
        raise StagingError(upload, "is not a valid zip archive (no end-of-central-directory record)", rule="corrupt")
    entries, cd_size = struct.unpack("<HI", tail[at + 10 : at + 16])
    locator = tail[at - 20 : at] if at >= 20 else b""
    if (entries == 0xFFFF or cd_size == 0xFFFFFFFF) and locator[:4] == b"PK\x06\x07":
        fp.seek(struct.unpack("<Q", locator[8:16])[0])
        record = fp.read(56)
        if record[:4] == b"PK\x06\x06":
            entries, cd_size = struct.unpack("<QQ", record[32:48])
    fp.seek(0)
    if entries == 0:
        raise StagingError(upload, "is an empty archive; expected at least one file", rule="empty")
    if entries > max_members:
        raise StagingError(upload, f"declares {entries} members; an upload holds at most {max_members}", rule="limit")
    if cd_size > entries * (46 + max_name_length + 1024):
        raise StagingError(upload, f"has a {cd_size}-byte central directory for {entries} members", rule="corrupt")
