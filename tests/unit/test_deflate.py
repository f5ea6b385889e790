"""Deflate: standard gzip out, the same bytes whatever the threads or write sizes, errors reach the writer."""

from __future__ import annotations

import gzip
import io
import random
import zlib

import pytest

from sagepush import deflate
from sagepush.deflate import CHUNK, GzipWriter


def _mixed(size: int, seed: int = 3) -> bytes:
    rng = random.Random(seed)
    text = b"".join(b"def step(batch): return model(batch) # %d\n" % rng.randrange(10**6) for _ in range(size // 80))
    noise = rng.randbytes(size // 4)
    return (text + noise + bytes(size // 8) + text[: size // 8])[:size]


def _gzip(data: bytes, *, workers: int = 2, write_size: int = CHUNK) -> tuple[bytes, GzipWriter]:
    out = io.BytesIO()
    with GzipWriter(out, workers=workers) as writer:
        for start in range(0, len(data), write_size):
            writer.write(data[start : start + write_size])
    return out.getvalue(), writer


@pytest.mark.parametrize(
    "size",
    [0, 1, CHUNK - 1, CHUNK, CHUNK + 1, 3 * CHUNK + 12_345],
    ids=["empty", "one-byte", "under-a-chunk", "one-chunk", "over-a-chunk", "several-chunks"],
)
def test_output_is_one_standard_gzip_member_of_the_input(size: int) -> None:
    data = _mixed(size)
    output, writer = _gzip(data)
    assert gzip.decompress(output) == data
    assert zlib.decompress(output, 31) == data  # a single member: zlib stops at the first member's end
    assert output[:10] == b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\xff"  # no name, mtime 0, OS unknown
    assert writer.size == len(output)


@pytest.mark.parametrize(
    ("workers", "write_size"),
    [(1, CHUNK), (4, CHUNK), (2, 512), (3, 3 * CHUNK + 7)],
    ids=["one-thread", "four-threads", "tar-blocks", "odd-writes"],
)
def test_output_bytes_do_not_depend_on_threads_or_write_sizes(workers: int, write_size: int) -> None:
    data = _mixed(5 * CHUNK + 999)
    assert _gzip(data, workers=workers, write_size=write_size)[0] == _gzip(data)[0]


def test_chunks_reach_back_into_the_previous_chunk() -> None:
    # a block repeated across a chunk boundary compresses as well as it would in one stream
    block = random.Random(5).randbytes(16 * 1024)
    data = block * (2 * CHUNK // len(block))
    output, _ = _gzip(data)
    assert len(output) < 2 * len(block)


def test_a_failed_chunk_is_raised_to_the_writer_and_nothing_follows(monkeypatch: pytest.MonkeyPatch) -> None:
    def failing(chunk: bytes, zdict: bytes) -> tuple[bytes, int, int]:
        raise MemoryError("no room to deflate")

    monkeypatch.setattr(deflate, "_deflate", failing)
    out = io.BytesIO()
    with pytest.raises(MemoryError, match="no room"), GzipWriter(out, workers=2) as writer:
        writer.write(bytes(3 * CHUNK))
    assert len(out.getvalue()) == 10  # the gzip header and nothing after it: no deflated piece, no trailer


def _stored_size(length: int) -> int:
    """A gzip member of `length` bytes held in stored blocks, piece by piece: header, 5 bytes a block, final block,
    trailer."""
    pieces = [min(CHUNK, length - start) for start in range(0, length, CHUNK)]
    blocks = sum(-(-piece // 0xFFFF) for piece in pieces)
    return 10 + length + 5 * blocks + 2 + 8


def test_incompressible_pieces_are_stored_not_deflated_again() -> None:
    data = random.Random(11).randbytes(3 * CHUNK)  # what weights, images and archives look like to deflate

    output, _ = _gzip(data)

    assert gzip.decompress(output) == data
    assert len(output) == _stored_size(len(data))


def test_a_piece_that_only_starts_incompressible_is_still_deflated() -> None:
    # the end of a weights file, then source code, in one piece: the middle and end probes see the code
    rng = random.Random(12)
    code = b"".join(b"loss = criterion(model(x), y)  # step %d\n" % rng.randrange(10**6) for _ in range(40_000))
    data = (rng.randbytes(CHUNK // 8) + code)[:CHUNK]

    output, _ = _gzip(data)

    assert gzip.decompress(output) == data
    assert len(output) < len(data) // 2
