"""Deflate: a reproducible gzip member written from a byte stream, compressed by ISA-L on every core."""

from __future__ import annotations

import os
import struct
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Final, Protocol

from isal import isal_zlib

if TYPE_CHECKING:
    from concurrent.futures import Future
    from types import TracebackType

COMPRESS_LEVEL: Final = 3
"""ISA-L deflate level: within 3 % of gzip -6's size at about ten times its speed (level 2 is 8 % over). Part of the
output bytes, as are `CHUNK`, the memory level and the probes that store incompressible pieces."""

CHUNK: Final = 1024 * 1024
"""Bytes of input deflated as one piece; part of the output bytes."""

_WINDOW: Final = 32 * 1024  # deflate's history: each chunk starts with the previous chunk's tail as its dictionary
_MEM_LEVEL: Final = 8  # ISA-L's default; a higher one changes the output
_MAX_WORKERS: Final = 4
_PROBE: Final = 16 * 1024  # bytes of each of a piece's three incompressibility probes
_STORE_RATIO: Final = 0.97  # a probe deflating to at least this share of its size counts as incompressible
_STORED_MAX: Final = 0xFFFF  # the most bytes one stored block holds
# Fixed gzip header: no name, mtime 0, no extra flags, OS 255 ("unknown") so the platform never shows.
_GZIP_HEADER: Final = b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\xff"
_FINAL_BLOCK: Final = b"\x03\x00"  # an empty, final fixed-Huffman block: what zlib's Z_FINISH emits after a sync flush


class SupportsWrite(Protocol):
    """Where output goes: an open file, `BytesIO`, or a pipe into an upload."""

    def write(self, data: bytes, /) -> object: ...


class GzipWriter:
    """Write one gzip member to `dst` from the bytes passed to `write`; `size` counts the bytes written.

    The input is cut into `CHUNK`-byte pieces, each deflated on its own in a worker thread with the previous piece's
    last 32 KiB as its dictionary and ending in a sync flush, so the pieces join into one standard deflate stream, as
    pigz does. The output depends only on the input bytes, never on the number of threads or their timing. ISA-L
    releases the GIL, so the pieces deflate in parallel while the calling thread produces the next ones. Memory stays
    at a few chunks per worker.
    """

    def __init__(self, dst: SupportsWrite, *, workers: int | None = None) -> None:
        self._dst = dst
        self._workers = workers or _default_workers()
        self._pending = bytearray()
        self._previous = b""
        self._inflight: deque[Future[tuple[bytes, int, int]]] = deque()
        self._pool: ThreadPoolExecutor | None = None
        self._crc = 0
        self._length = 0
        self.size = 0

    def __enter__(self) -> GzipWriter:
        self._pool = ThreadPoolExecutor(self._workers, thread_name_prefix="sagepush-deflate")
        self._emit(_GZIP_HEADER)
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        try:
            if exc_type is None:
                if self._pending:
                    self._submit(bytes(self._pending))
                    self._pending.clear()
                while self._inflight:
                    self._collect()
                self._emit(_FINAL_BLOCK + struct.pack("<II", self._crc, self._length & 0xFFFFFFFF))
        finally:
            if self._pool is not None:
                self._pool.shutdown(wait=True, cancel_futures=True)

    def write(self, data: bytes) -> None:
        """Add `data` to the stream; whole chunks are handed to the workers at once."""
        pending = self._pending
        pending += data
        if len(pending) >= CHUNK:
            whole = len(pending) - len(pending) % CHUNK
            with memoryview(pending) as view:  # one copy per chunk, made while the caller's thread holds the GIL
                for start in range(0, whole, CHUNK):
                    self._submit(view[start : start + CHUNK].tobytes())
            del pending[:whole]

    def _submit(self, chunk: bytes) -> None:
        assert self._pool is not None, "GzipWriter is used outside its with block"
        if len(self._inflight) >= 2 * self._workers:
            self._collect()
        self._inflight.append(self._pool.submit(_deflate, chunk, self._previous))
        self._previous = chunk[-_WINDOW:]

    def _collect(self) -> None:
        deflated, crc, length = self._inflight.popleft().result()
        self._crc = isal_zlib.crc32_combine(self._crc, crc, length)
        self._length += length
        self._emit(deflated)

    def _emit(self, data: bytes) -> None:
        self._dst.write(data)
        self.size += len(data)


def _deflate(chunk: bytes, zdict: bytes) -> tuple[bytes, int, int]:
    """Deflate `chunk` after `zdict` (the stream's preceding bytes) up to a byte-aligned sync flush; add its CRC.

    A piece that does not compress (weights, images, archives: already compressed data) is stored as it is, in
    stored blocks, rather than deflated again to the same size at full cost.
    """
    if _incompressible(chunk, zdict):
        return _stored(chunk), isal_zlib.crc32(chunk), len(chunk)
    args = (COMPRESS_LEVEL, isal_zlib.DEFLATED, -15, _MEM_LEVEL, isal_zlib.Z_DEFAULT_STRATEGY)
    compressor = isal_zlib.compressobj(*args, zdict) if zdict else isal_zlib.compressobj(*args)
    deflated = compressor.compress(chunk) + compressor.flush(isal_zlib.Z_SYNC_FLUSH)
    return deflated, isal_zlib.crc32(chunk), len(chunk)


def _incompressible(chunk: bytes, zdict: bytes) -> bool:
    """Whether deflate would gain nothing on `chunk`, judged from three probes (its start, middle and end), each
    deflated at the fastest level after the 32 KiB before it, as deflate itself would see them."""
    if len(chunk) < 4 * _PROBE:
        return False
    args = (1, isal_zlib.DEFLATED, -15, _MEM_LEVEL, isal_zlib.Z_DEFAULT_STRATEGY)
    for start in (0, (len(chunk) - _PROBE) // 2, len(chunk) - _PROBE):
        # The 32 KiB before the probe: in the chunk, reaching back into `zdict` only near the chunk's start.
        history = chunk[start - _WINDOW : start] if start >= _WINDOW else (zdict + chunk[:start])[-_WINDOW:]
        compressor = isal_zlib.compressobj(*args, history) if history else isal_zlib.compressobj(*args)
        probe = chunk[start : start + _PROBE]
        size = len(compressor.compress(probe) + compressor.flush(isal_zlib.Z_SYNC_FLUSH))
        if size < _STORE_RATIO * len(probe):
            return False
    return True


def _stored(chunk: bytes) -> bytes:
    """`chunk` as deflate stored blocks (not final), byte-aligned like a sync flush's end."""
    blocks = []
    for start in range(0, len(chunk), _STORED_MAX):
        piece = chunk[start : start + _STORED_MAX]
        blocks.append(b"\x00" + struct.pack("<HH", len(piece), len(piece) ^ 0xFFFF) + piece)
    return b"".join(blocks)


def _default_workers() -> int:
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return max(1, min(cpus, _MAX_WORKERS))
