"""What every upload reader yields and how it fails: the members of an archive (or a single script) as they are read.

`ustar` reads tar streams, `ziparchive` zip files; staging (the orchestration) puts what they yield through its
rules and writes the staged tar.
"""

from __future__ import annotations

import gzip
import re
import zlib
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final, Literal, Protocol, cast

from isal import isal_zlib

from sagepush.errors import InputError

if TYPE_CHECKING:
    from collections.abc import Iterator

CHUNK: Final = 1024 * 1024
"""Bytes a reader hands over at a time."""

CONTROL: Final = re.compile(r"[\x00-\x1f\x7f]")
"""The control characters a member name may not hold."""

Kind = Literal["file", "dir", "symlink", "hardlink", "device", "fifo", "socket", "sparse", "other"]

# isal's stubs declare its error class as an instance
INFLATE_ERRORS: Final = (EOFError, gzip.BadGzipFile, cast("type[Exception]", isal_zlib.error), zlib.error)


class StagingError(InputError):
    """The upload is refused; `where` names the member (or the upload) and `rule` the rule it broke.

    Rules: `format`, `type`, `path`, `name`, `duplicate`, `limit`, `bomb`, `encrypted`, `corrupt`, `empty`, `secret`.
    """

    def __init__(self, where: str, message: str, *, rule: str) -> None:
        super().__init__(where, message)
        self.rule = rule


class ReadableStream(Protocol):
    """Anything with `read(size)`: an open file, `BytesIO`, or botocore's `StreamingBody`."""

    def read(self, size: int = ..., /) -> bytes: ...


@dataclass(slots=True)
class Member:
    """A member as an archive reader reports it; `chunks` yields its data and must be drained."""

    name: str
    kind: Kind
    executable: bool
    size: int
    chunks: Iterator[bytes]


def where(name: str) -> str:
    """The member name as errors show it: control characters escaped, at most 200 characters."""
    # Control characters are escaped: a member name must not break the one-line error, a log line or a terminal.
    name = CONTROL.sub(lambda m: repr(m.group())[1:-1], name)
    return name if len(name) <= 200 else name[:199] + "…"
