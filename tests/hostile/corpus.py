"""The hostile-archive corpus: every upload an attacker or a broken tool might send, generated, never stored.

Each `Case` writes its upload into a directory, deterministically (fixed names, times and seeds), and says what
staging must do with it: refuse it with a rule and the member it names, or accept it with the documented
sanitisation. The two heavy cases (a gzip bomb of more than 2 GiB and 100 000 members) are built streaming and
cost a few megabytes of disk.

    uv run python -m tests.hostile.corpus OUTDIR     # write every case to OUTDIR/<case id>/<file name>
"""

from __future__ import annotations

import io
import json
import random
import struct
import sys
import tarfile
import warnings
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from isal import isal_zlib

from tests.unit.archives import Member, file, folder, link, tar_bytes, zip_bytes

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Iterator

MANIFEST = b'framework = "pytorch"\nframework_version = "2.5"\npy_version = "py311"\nentry_point = "train.py"\n'
TRAIN = b"print('training')\n"
BASE = [file("train.py", TRAIN, 0o755), file("sagepush.toml", MANIFEST)]
"""A valid project: each case adds one hostile member to it, so the hostile member is the only reason to refuse."""

_GiB = 1 << 30
BOMB_MEMBER_BYTES = _GiB - 1  # under the 1 GiB member limit: only the total and the ratio rules can stop it
BOMB_MEMBERS = 3  # 3 GiB expanded in all
MANY_MEMBERS = 100_000


@dataclass(frozen=True)
class Refused:
    """Staging refuses the upload: `rule` is StagingError.rule (or "spec"), `where` the member or upload named."""

    rule: str
    where: str


@dataclass(frozen=True)
class Accepted:
    """Staging accepts the upload: exactly `members` are staged (any order), `modes` as given, `dropped` left out.

    Whatever the upload held, the output holds only regular files (mode 0644 or 0755) and directories (0755),
    owned by 0:0 with no owner names, at time 0: setuid, setgid and sticky bits never survive.
    """

    members: tuple[str, ...]
    modes: dict[str, int] = field(default_factory=dict)
    dropped: tuple[str, ...] = ()


@dataclass(frozen=True)
class Case:
    id: str
    filename: str
    write: Callable[[Path], None]
    expect: Refused | Accepted
    heavy: bool = False
    """Large once expanded: run with lowered limits in-process, and at the default limits in a measured subprocess."""

    def build(self, directory: Path) -> Path:
        """Write the upload into `directory/<id>/<filename>` and return its path."""
        path = directory / self.id / self.filename
        path.parent.mkdir(parents=True, exist_ok=True)
        self.write(path)
        return path


def _bytes(make: Callable[[], bytes]) -> Callable[[Path], None]:
    def write(path: Path) -> None:
        path.write_bytes(make())

    return write


# ----------------------------------------------------------------------------------------------- hand-built bytes


def _pax_tar(path_record: str, ustar_name: str = "innocent.py") -> bytes:
    """A tar.gz whose PAX `path` record (which wins over the ustar name) is `path_record`."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz", format=tarfile.PAX_FORMAT) as archive:
        for member in BASE:
            info = tarfile.TarInfo(member.name)
            info.size, info.mtime = len(member.data), 1
            archive.addfile(info, io.BytesIO(member.data))
        info = tarfile.TarInfo(ustar_name)
        info.size, info.mtime = 4, 1
        info.pax_headers = {"path": path_record}
        archive.addfile(info, io.BytesIO(b"evil"))
    return buffer.getvalue()


def _gnu_long_name_tar(name: str) -> bytes:
    return tar_bytes([*BASE, file(name, b"evil")], fmt=tarfile.GNU_FORMAT)


def _zip_with_raw_name(raw: bytes, *, utf8_flag: bool = False) -> bytes:
    """A zip whose third member's name is the bytes `raw`, flagged UTF-8 or not."""
    placeholder = b"P" * len(raw)
    data = bytearray(zip_bytes([*BASE, file(placeholder.decode(), b"x")]))
    at = data.find(placeholder)
    while at >= 0:
        data[at : at + len(raw)] = raw
        if utf8_flag:  # the general-purpose flags sit 22 bytes (local) or 20 bytes (central) before the name
            local = data[at - 30 : at - 26] == b"PK\x03\x04"
            flag_high_byte = at - 30 + 7 if local else at - 46 + 9
            data[flag_high_byte] |= 0x08  # flag 0x800 (UTF-8 names) is bit 3 of the little-endian field's high byte
        at = data.find(placeholder, at + len(raw))
    return bytes(data)


def _zip_names_disagree() -> bytes:
    """A zip whose local header names `evil/../../x.py` while the central directory says `ok.py`."""
    data = bytearray(zip_bytes([*BASE, file("ok_____________.py", b"x")]))
    local = data.find(b"PK\x03\x04")
    while local >= 0:
        name_len = struct.unpack("<H", data[local + 26 : local + 28])[0]
        name = bytes(data[local + 30 : local + 30 + name_len])
        if name == b"ok_____________.py":
            data[local + 30 : local + 30 + name_len] = b"../../../evil.py"[:name_len].ljust(name_len, b"_")
            break
        local = data.find(b"PK\x03\x04", local + 4)
    return bytes(data)


def _encrypted_zip() -> bytes:
    """A zip whose `secret.py` member has the "encrypted" flag set in both headers."""
    data = bytearray(zip_bytes([*BASE, file("secret.py", b"x")]))
    for signature, name_offset, flag_offset in ((b"PK\x03\x04", 30, 6), (b"PK\x01\x02", 46, 8)):
        at = data.find(signature)
        while at >= 0:
            if data[at + name_offset : at + name_offset + 9] == b"secret.py":
                data[at + flag_offset] |= 0x1
            at = data.find(signature, at + 4)
    return bytes(data)


def _duplicate_zip() -> bytes:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # zipfile warns of the very duplicate this case is about
        return zip_bytes([*BASE, file("train.py", b"print('other')\n")])


def _flip(data: bytes, at: int, mask: int = 0x55) -> bytes:
    return data[:at] + bytes([data[at] ^ mask]) + data[at + 1 :]


def _corrupt_deflate() -> bytes:
    data = tar_bytes([*BASE, file("weights.bin", random.Random(3).randbytes(64 << 10))])
    return _flip(data, len(data) // 2)


def _device_tar(kind: bytes) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        for member in BASE:
            info = tarfile.TarInfo(member.name)
            info.size = len(member.data)
            archive.addfile(info, io.BytesIO(member.data))
        info = tarfile.TarInfo("dev/sda")
        info.type, info.devmajor, info.devminor = kind, 8, 0
        archive.addfile(info)
    return buffer.getvalue()


def _ustar(members: Iterable[tuple[str, bytes]]) -> bytes:
    """Raw ustar blocks for regular files (names under 100 bytes), with no end-of-archive blocks.

    Built from one template header with only name, size and checksum filled in: tarfile takes seconds for 100 000.
    """
    blocks = []
    for name, data in members:
        header = bytearray(_USTAR_TEMPLATE)
        encoded = name.encode()
        header[0 : len(encoded)] = encoded
        header[124:136] = b"%011o\0" % len(data)
        header[148:156] = b"%06o\0 " % sum(header)
        blocks.append(bytes(header) + data + bytes(-len(data) % 512))
    return b"".join(blocks)


def _ustar_template() -> bytes:
    info = tarfile.TarInfo("")
    info.mtime, info.mode = 1, 0o644
    header = bytearray(info.tobuf(format=tarfile.USTAR_FORMAT))
    header[148:156] = b" " * 8
    return bytes(header)


_USTAR_TEMPLATE = _ustar_template()
BASE_USTAR = _ustar((m.name, m.data) for m in BASE)


def _declared_huge_tar() -> bytes:
    """A tar.gz whose last header declares a 3 GiB member and whose data stops right after it."""
    info = tarfile.TarInfo("weights.bin")
    info.size = 3 * _GiB
    return zlib.compress(BASE_USTAR + info.tobuf(format=tarfile.GNU_FORMAT), wbits=31)


# -------------------------------------------------------------------------------------------- streamed heavy cases


class _GzipStream:
    """A gzip member written to a file as deflate blocks: `zeros(n)` repeats one flushed block, so it costs nothing."""

    _ZEROS = 1 << 20

    def __init__(self, out: io.BufferedWriter) -> None:
        self._out = out
        self._compressor = isal_zlib.compressobj(1, isal_zlib.DEFLATED, -15)
        self._crc = 0
        self._size = 0
        self._zeros_block: bytes | None = None
        self._zeros_crc_1mib = isal_zlib.crc32(bytes(self._ZEROS))
        out.write(b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\xff")

    def write(self, data: bytes) -> None:
        self._crc = isal_zlib.crc32(data, self._crc)
        self._size += len(data)
        self._out.write(self._compressor.compress(data))

    def zeros(self, count: int) -> None:
        """Append `count` zero bytes; whole MiBs reuse one full-flushed deflate block (no back-references)."""
        whole, rest = divmod(count, self._ZEROS)
        if whole:
            self._out.write(self._compressor.flush(isal_zlib.Z_FULL_FLUSH))
            if self._zeros_block is None:
                self._zeros_block = self._compressor.compress(bytes(self._ZEROS)) + self._compressor.flush(
                    isal_zlib.Z_FULL_FLUSH
                )
                self._out.write(self._zeros_block)
                whole -= 1
                self._crc = isal_zlib.crc32(bytes(self._ZEROS), self._crc)
                self._size += self._ZEROS
            chunk = bytes(self._ZEROS)
            for _ in range(whole):
                self._out.write(self._zeros_block)
                self._crc = isal_zlib.crc32(chunk, self._crc)
            self._size += whole * self._ZEROS
        if rest:
            self.write(bytes(rest))

    def close(self) -> None:
        self._out.write(self._compressor.flush() + struct.pack("<II", self._crc, self._size & 0xFFFFFFFF))


def _write_zeros_bomb_tar_gz(path: Path) -> None:
    """BOMB_MEMBERS members of BOMB_MEMBER_BYTES zeros each (3 GiB) in a tar.gz of a few megabytes."""
    with path.open("wb") as out:
        gz = _GzipStream(out)
        gz.write(BASE_USTAR)
        for index in range(BOMB_MEMBERS):
            info = tarfile.TarInfo(f"data/zeros-{index}.bin")
            info.size = BOMB_MEMBER_BYTES
            gz.write(info.tobuf(format=tarfile.USTAR_FORMAT))
            gz.zeros(BOMB_MEMBER_BYTES + (-BOMB_MEMBER_BYTES % 512))
        gz.zeros(1024)
        gz.close()


def _zip_entries(path: Path, entries: Iterable[tuple[bytes, int, bytes, int, int]]) -> None:
    """Write a zip of (name, method, compressed data, crc, size) entries by hand; ZIP64 end records past 65 535."""
    central = io.BytesIO()
    count = 0
    with path.open("wb") as out:
        for name, method, data, crc, size in entries:
            offset = out.tell()
            # version needed, flags, method, time, date (1980-01-01), crc, compressed size, size
            fixed = struct.pack("<HHHHHIII", 20, 0, method, 0, 0x21, crc, len(data), size)
            out.write(b"PK\x03\x04" + fixed + struct.pack("<HH", len(name), 0) + name)
            out.write(data)
            # made by Unix (3), fixed, name/extra/comment lengths, disk, internal and external attributes, offset
            central.write(
                b"PK\x01\x02"
                + struct.pack("<H", 0x0314)
                + fixed
                + struct.pack("<HHHHHII", len(name), 0, 0, 0, 0, 0o100644 << 16, offset)
                + name
            )
            count += 1
        start = out.tell()
        directory = central.getvalue()
        out.write(directory)
        if count > 0xFFFF:
            end64 = out.tell()
            out.write(b"PK\x06\x06" + struct.pack("<QHHIIQQQQ", 44, 45, 45, 0, 0, count, count, len(directory), start))
            out.write(b"PK\x06\x07" + struct.pack("<IQI", 0, end64, 1))
        shown = min(count, 0xFFFF)
        out.write(b"PK\x05\x06" + struct.pack("<HHHHIIH", 0, 0, shown, shown, len(directory), start, 0))


def _write_zip_bomb(path: Path) -> None:
    """BOMB_MEMBERS deflated members of BOMB_MEMBER_BYTES zeros that all share one compressed stream."""
    compressor = zlib.compressobj(9, zlib.DEFLATED, -15)
    chunk = bytes(1 << 20)
    parts, crc = [], 0
    left = BOMB_MEMBER_BYTES
    first_block: bytes | None = None
    while left:
        take = min(left, len(chunk))
        crc = isal_zlib.crc32(chunk[:take], crc)
        if take == len(chunk) and first_block is not None:
            parts.append(first_block)
        else:
            parts.append(compressor.compress(chunk[:take]) + compressor.flush(zlib.Z_FULL_FLUSH))
            if take == len(chunk):
                first_block = parts[-1]
        left -= take
    parts.append(compressor.flush())
    data = b"".join(parts)
    members = [(m.name.encode(), 0, m.data, zlib.crc32(m.data), len(m.data)) for m in BASE]
    bombs = [(f"data/zeros-{i}.bin".encode(), 8, data, crc, BOMB_MEMBER_BYTES) for i in range(BOMB_MEMBERS)]
    _zip_entries(path, [*members, *bombs])


def _tiny_members() -> Iterator[tuple[str, bytes]]:
    for index in range(MANY_MEMBERS):
        yield f"m/{index // 1000:03d}/{index % 1000:03d}.py", b"x = %d\n" % index


def _write_many_tar_gz(path: Path) -> None:
    """MANY_MEMBERS tiny files in a tar.gz, headers built directly (tarfile would take seconds)."""
    with path.open("wb") as out:
        gz = _GzipStream(out)
        gz.write(BASE_USTAR)
        batch: list[tuple[str, bytes]] = []
        for member in _tiny_members():
            batch.append(member)
            if len(batch) == 4096:
                gz.write(_ustar(batch))
                batch.clear()
        gz.write(_ustar(batch) + bytes(1024))
        gz.close()


def _write_many_zip(path: Path) -> None:
    members = [(m.name.encode(), 0, m.data, zlib.crc32(m.data), len(m.data)) for m in BASE]
    tiny = ((n.encode(), 0, d, zlib.crc32(d), len(d)) for n, d in _tiny_members())
    _zip_entries(path, [*members, *tiny])


# ----------------------------------------------------------------------------------------------------- the cases


def _tar(*members: Member, **options: object) -> Callable[[Path], None]:
    return _bytes(lambda: tar_bytes([*BASE, *members], **options))  # type: ignore[arg-type]


def _zip(*members: Member) -> Callable[[Path], None]:
    return _bytes(lambda: zip_bytes([*BASE, *members]))


def _fake_secret(*parts: str | tuple[str, int]) -> bytes:
    """A secret-shaped string, built at run time so that this file holds none: literal parts and random runs."""
    rng = random.Random(18)
    return "".join(p if isinstance(p, str) else "".join(rng.choice(p[0]) for _ in range(p[1])) for p in parts).encode()


def _notebook(source: bytes) -> bytes:
    cell = {"cell_type": "code", "metadata": {}, "outputs": [], "source": source.decode().splitlines(True)}
    return json.dumps({"cells": [cell], "metadata": {}, "nbformat": 4, "nbformat_minor": 5}, indent=1).encode()


_B64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
AWS_KEY_ID = _fake_secret("AK", "IA", ("ABCDEFGHIJKLMNOPQRSTUVWXYZ234567", 16))
PRIVATE_KEY = (
    b"-----"
    + b"BEGIN OPENSSH PRIVATE KEY-----\n"
    + b"\n".join(_fake_secret((_B64, 70)) for _ in range(5))
    + b"\n-----END OPENSSH PRIVATE KEY-----\n"
)
GITHUB_TOKEN = _fake_secret("gh", "p_", (_B64[:62], 36))

LONG_PATH = "/".join(["d" * 60] * 5) + "/module.py"  # 315 characters, no component over 255 bytes
LONG_COMPONENT = "n" * 300 + ".py"
NFC, NFD = "caf\u00e9.py", "cafe\u0301.py"
BASE_MEMBERS = ("sagepush.toml", "train.py")

CASES: list[Case] = [
    # path traversal
    Case("tar-dotdot", "a.tar.gz", _tar(file("../evil.py", b"x")), Refused("path", "../evil.py")),
    Case("tar-dotdot-deep", "a.tar.gz", _tar(file("pkg/../../evil.py")), Refused("path", "pkg/../../evil.py")),
    Case("tar-absolute", "a.tar.gz", _tar(file("/etc/cron.d/evil")), Refused("path", "/etc/cron.d/evil")),
    Case("tar-backslash", "a.tar.gz", _tar(file("..\\..\\evil.py")), Refused("path", "..\\..\\evil.py")),
    Case("tar-drive-letter", "a.tar.gz", _tar(file("C:/Windows/evil.py")), Refused("path", "C:/Windows/evil.py")),
    Case(
        "tar-pax-path-escapes", "a.tar.gz", _bytes(lambda: _pax_tar("../../evil.py")), Refused("path", "../../evil.py")
    ),
    Case(
        "tar-gnu-long-name-escapes",
        "a.tar.gz",
        _bytes(lambda: _gnu_long_name_tar("../" + "x" * 150 + ".py")),
        Refused("path", "../" + "x" * 150 + ".py"),
    ),
    Case("zip-dotdot", "a.zip", _zip(file("../../evil.py")), Refused("path", "../../evil.py")),
    Case("zip-absolute", "a.zip", _zip(file("/tmp/evil.py")), Refused("path", "/tmp/evil.py")),
    Case("zip-backslash", "a.zip", _zip(file("..\\evil.py")), Refused("path", "..\\evil.py")),
    Case("zip-drive-letter", "a.zip", _zip(file("C:/evil.py")), Refused("path", "C:/evil.py")),
    Case("zip-names-disagree", "a.zip", _bytes(_zip_names_disagree), Refused("corrupt", "ok_____________.py")),
    # links
    Case("tar-symlink-inside", "a.tar.gz", _tar(link("latest.py", "train.py")), Refused("type", "latest.py")),
    Case("tar-symlink-escaping", "a.tar.gz", _tar(link("etc", "/etc")), Refused("type", "etc")),
    Case("tar-symlink-dotdot", "a.tar.gz", _tar(link("up", "../../..")), Refused("type", "up")),
    Case(
        "tar-symlink-then-file-through-it",
        "a.tar.gz",
        _tar(link("x", "/tmp"), file("x/evil.py", b"x")),
        Refused("type", "x"),
    ),
    Case("tar-hardlink-inside", "a.tar.gz", _tar(link("copy.py", "train.py", "hardlink")), Refused("type", "copy.py")),
    Case(
        "tar-hardlink-escaping", "a.tar.gz", _tar(link("passwd", "/etc/passwd", "hardlink")), Refused("type", "passwd")
    ),
    Case("zip-symlink-escaping", "a.zip", _zip(link("up", "../../etc")), Refused("type", "up")),
    Case(
        "tar-symlink-left-out-by-sagepushignore",
        "a.tar.gz",
        _tar(link("latest", "/etc/passwd"), file(".sagepushignore", b"latest\n")),
        Accepted((".sagepushignore", *BASE_MEMBERS), dropped=("latest",)),
    ),
    # devices and FIFOs
    Case("tar-char-device", "a.tar.gz", _bytes(lambda: _device_tar(tarfile.CHRTYPE)), Refused("type", "dev/sda")),
    Case("tar-block-device", "a.tar.gz", _bytes(lambda: _device_tar(tarfile.BLKTYPE)), Refused("type", "dev/sda")),
    Case("tar-fifo", "a.tar.gz", _tar(Member("pipe", kind="fifo")), Refused("type", "pipe")),
    Case("zip-fifo", "a.zip", _zip(Member("pipe", kind="fifo")), Refused("type", "pipe")),
    # setuid, setgid, sticky: staged with plain modes
    Case(
        "tar-setuid-setgid-sticky",
        "a.tar.gz",
        _tar(file("suid.sh", b"#!/bin/sh\n", 0o4755), file("sgid.py", b"", 0o2644), folder("tmp", 0o1777)),
        Accepted((*BASE_MEMBERS, "sgid.py", "suid.sh"), modes={"suid.sh": 0o755, "sgid.py": 0o644}),
    ),
    Case(
        "zip-setuid",
        "a.zip",
        _zip(file("suid.sh", b"#!/bin/sh\n", 0o6777)),
        Accepted((*BASE_MEMBERS, "suid.sh"), modes={"suid.sh": 0o755}),
    ),
    # duplicates and twins
    Case("tar-duplicate", "a.tar.gz", _tar(file("train.py", b"print('other')\n")), Refused("duplicate", "train.py")),
    Case("tar-duplicate-dot-slash", "a.tar.gz", _tar(file("./train.py")), Refused("duplicate", "./train.py")),
    Case("zip-duplicate", "a.zip", _bytes(_duplicate_zip), Refused("duplicate", "train.py")),
    Case("tar-file-and-directory", "a.tar.gz", _tar(file("pkg"), file("pkg/a.py")), Refused("duplicate", "pkg/a.py")),
    Case("tar-nfc-nfd-twins", "a.tar.gz", _tar(file(NFC), file(NFD)), Refused("duplicate", NFD)),
    Case("zip-nfc-nfd-twins", "a.zip", _zip(file(NFD), file(NFC)), Refused("duplicate", NFC)),
    Case("tar-nfd-alone", "a.tar.gz", _tar(file(NFD, b"x")), Accepted((*BASE_MEMBERS, NFD))),
    # long and undecodable names
    Case(
        "tar-300-char-path",
        "a.tar.gz",
        _tar(file(LONG_PATH, b"x")),
        Accepted(
            (*(("/".join(["d" * 60] * i) + "/") for i in range(1, 6)), LONG_PATH, *BASE_MEMBERS)  # directories first
        ),
    ),
    Case("tar-300-char-component", "a.tar.gz", _tar(file(LONG_COMPONENT)), Refused("name", LONG_COMPONENT[:199] + "…")),
    Case("zip-300-char-component", "a.zip", _zip(file(LONG_COMPONENT)), Refused("name", LONG_COMPONENT[:199] + "…")),
    Case(
        "tar-latin-1-name",
        "a.tar.gz",
        _tar(file(NFC), fmt=tarfile.GNU_FORMAT, encoding="latin-1"),
        Refused("name", "b'caf\\xe9.py'"),
    ),
    Case(
        "zip-latin-1-name",
        "a.zip",
        _bytes(lambda: _zip_with_raw_name(b"caf\xe9.py")),
        Refused("name", "b'caf\\xe9.py'"),
    ),
    Case(
        "zip-invalid-utf-8-flagged",
        "a.zip",
        _bytes(lambda: _zip_with_raw_name(b"caf\xff.py", utf8_flag=True)),
        Refused("name", "b'caf\\xff.py'"),
    ),
    Case("tar-newline-in-name", "a.tar.gz", _tar(file("evil\nname.py")), Refused("name", "evil\\nname.py")),
    Case("tar-escape-sequence-name", "a.tar.gz", _tar(file("\x1b[2Jx.py")), Refused("name", "\\x1b[2Jx.py")),
    # bombs and counts
    Case(
        "tar.gz-bomb-3-GiB",
        "a.tar.gz",
        _write_zeros_bomb_tar_gz,
        Refused("bomb", "data/zeros-0.bin"),
        heavy=True,
    ),
    Case("zip-bomb-3-GiB", "a.zip", _write_zip_bomb, Refused("bomb", "data/zeros-0.bin"), heavy=True),
    Case("tar.gz-declares-3-GiB", "a.tar.gz", _bytes(_declared_huge_tar), Refused("limit", "weights.bin")),
    Case("tar.gz-100k-members", "a.tar.gz", _write_many_tar_gz, Refused("limit", "m/009/998.py"), heavy=True),
    Case("zip-100k-members", "a.zip", _write_many_zip, Refused("limit", "a.zip"), heavy=True),
    # broken containers
    Case("tar.gz-truncated", "a.tar.gz", _bytes(lambda: tar_bytes(BASE)[:-40]), Refused("corrupt", "a.tar.gz")),
    Case("tar.gz-corrupt-deflate", "a.tar.gz", _bytes(_corrupt_deflate), Refused("corrupt", "a.tar.gz")),
    Case("tar.gz-bad-crc", "a.tar.gz", _bytes(lambda: tar_bytes(BASE)[:-8] + bytes(8)), Refused("corrupt", "a.tar.gz")),
    Case(
        "tar-bad-header-checksum",
        "a.tar",
        _bytes(lambda: _flip(tar_bytes(BASE, gz=False), 1024 + 5)),
        Refused("corrupt", "a.tar"),
    ),
    Case(
        "tar-garbage-after-the-end",
        "a.tar",
        _bytes(lambda: tar_bytes(BASE, gz=False) + random.Random(5).randbytes(2 << 20)),
        Refused("corrupt", "a.tar"),
    ),
    Case("zip-truncated", "a.zip", _bytes(lambda: zip_bytes(BASE)[:-30]), Refused("corrupt", "a.zip")),
    Case("text-named-tar.gz", "a.tar.gz", _bytes(lambda: b"<html>404</html>\n" * 40), Refused("format", "a.tar.gz")),
    Case(
        "random-named-tar.gz",
        "a.tar.gz",
        _bytes(lambda: random.Random(1).randbytes(4096)),
        Refused("format", "a.tar.gz"),
    ),
    Case(
        "gzip-of-text-named-tar.gz",
        "a.tar.gz",
        _bytes(lambda: zlib.compress(b"hi\n" * 400, wbits=31)),
        Refused("format", "a.tar.gz"),
    ),
    Case("zip-named-tar.gz", "a.tar.gz", _bytes(lambda: zip_bytes(BASE)), Refused("format", "a.tar.gz")),
    Case("elf-named-zip", "a.zip", _bytes(lambda: b"\x7fELF" + bytes(600)), Refused("format", "a.zip")),
    Case("zero-bytes", "a.tar.gz", _bytes(lambda: b""), Refused("empty", "a.tar.gz")),
    Case("empty-tar.gz", "a.tar.gz", _bytes(lambda: tar_bytes([])), Refused("empty", "a.tar.gz")),
    Case("empty-zip", "a.zip", _bytes(lambda: zip_bytes([])), Refused("empty", "a.zip")),
    Case(
        "only-directories",
        "a.tar.gz",
        _bytes(lambda: tar_bytes([folder("a"), folder("a/b")])),
        Refused("empty", "a.tar.gz"),
    ),
    Case(
        "only-debris",
        "a.tar.gz",
        _bytes(lambda: tar_bytes([file(".git/config"), file("x.pyc")])),
        Refused("empty", "a.tar.gz"),
    ),
    Case("zip-encrypted-member", "a.zip", _bytes(_encrypted_zip), Refused("encrypted", "secret.py")),
    # likely secrets
    Case("dotenv", "a.tar.gz", _tar(file(".env", b"TOKEN=abc\n")), Refused("secret", ".env")),
    Case(
        "dotenv-production",
        "a.zip",
        _zip(file("conf/.env.production", b"A=1\n")),
        Refused("secret", "conf/.env.production"),
    ),
    Case(
        "id-rsa",
        "a.tar.gz",
        _tar(file("keys/id_rsa", b"-----BEGIN OPENSSH PRIVATE KEY-----\n")),
        Refused("secret", "keys/id_rsa"),
    ),
    Case(
        "aws-credentials",
        "a.tar.gz",
        _tar(file(".aws/credentials", b"[default]\n")),
        Refused("secret", ".aws/credentials"),
    ),
    Case(
        "aws-keys-in-credentials",
        "a.zip",
        _zip(file("deploy/credentials", b"aws_access_key_id = AKIAABCDEFGHIJKLMNOP\n")),
        Refused("secret", "deploy/credentials"),
    ),
    # secrets found by content, whatever the file is called
    Case(
        "aws-key-id-in-settings",
        "a.tar.gz",
        _tar(file("app/settings.py", b"AWS_ACCESS_KEY_ID = '" + AWS_KEY_ID + b"'\n")),
        Refused("secret", "app/settings.py"),
    ),
    Case(
        "private-key-in-notebook",
        "a.zip",
        _zip(file("notebooks/explore.ipynb", _notebook(b'KEY = """' + PRIVATE_KEY + b'"""\n'))),
        Refused("secret", "notebooks/explore.ipynb"),
    ),
    Case(
        "token-in-single-script",
        "train.py",
        _bytes(lambda: b"TOKEN = '" + GITHUB_TOKEN + b"'\nprint('training')\n"),
        Refused("secret", "train.py"),
    ),
    Case(
        "aws-documentation-key-is-fine",
        "a.tar.gz",
        _tar(file("config.ini", b"[default]\naws_access_key_id = AKIAIOSFODNN7EXAMPLE\n")),
        Accepted(("config.ini", *BASE_MEMBERS)),
    ),
    Case(
        "dotenv-template-is-fine",
        "a.tar.gz",
        _tar(file(".env.example", b"TOKEN=\n")),
        Accepted((".env.example", *BASE_MEMBERS)),
    ),
]


def generate(directory: Path, cases: Iterable[Case] = CASES) -> dict[str, Path]:
    """Write each case's upload under `directory`; return the path of each by case id."""
    return {case.id: case.build(directory) for case in cases}


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: python -m tests.hostile.corpus OUTDIR", file=sys.stderr)
        return 2
    for case_id, path in generate(Path(argv[0])).items():
        print(f"{case_id}\t{path}\t{path.stat().st_size}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
