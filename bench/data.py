"""Benchmark inputs, generated from fixed seeds: a mixed code tree, its tar.gz, and a large incompressible archive."""

from __future__ import annotations

import random
import subprocess
import tarfile
from dataclasses import dataclass
from typing import TYPE_CHECKING

from isal import igzip

if TYPE_CHECKING:
    from pathlib import Path

_MiB = 1024 * 1024
_VOCABULARY = (
    "def class return import from self None True False if else elif for while in not and or with as try except "
    "raise yield lambda async await torch tensor model loss optimizer step epoch batch data loader train eval "
    "config args kwargs logger info debug path open read write json yaml numpy np array shape dtype float32 "
    "int64 range len print format value key items list dict tuple set = == != <= >= + - * / ( ) [ ] { } : , . "
    "# TODO note layer weight bias grad backward forward device cuda cpu checkpoint save load metric accuracy"
)
_WORDS = _VOCABULARY.split()
_BINARY_KINDS = ("random", "nibbles", "sparse", "repeats")


@dataclass(frozen=True, slots=True)
class TreeShape:
    """How big a generated project is: text files (about `text_kib` each on average) and binary MiB in total."""

    text_files: int
    text_kib: int
    binary_mib: int
    binary_files: int
    binary_kinds: tuple[str, ...] = _BINARY_KINDS  # random: already compressed data (weights, images, archives)


def write_tree(root: Path, shape: TreeShape, *, seed: int = 8) -> int:
    """Write a project tree of source-like text and binaries of mixed compressibility under `root`; return its bytes."""
    rng = random.Random(seed)
    total = 0
    for i in range(shape.text_files):
        path = root / f"src/pkg{i // 100:02d}/sub{i % 7}/module_{i:04d}.py"
        path.parent.mkdir(parents=True, exist_ok=True)
        target = rng.randint(1, 2 * shape.text_kib) * 1024
        lines, size = [], 0
        while size < target:
            line = "    " * rng.randint(0, 3) + " ".join(rng.choices(_WORDS, k=rng.randint(3, 14)))
            lines.append(line)
            size += len(line) + 1
        text = "\n".join(lines) + "\n"
        path.write_text(text)
        total += len(text)
    per_file = shape.binary_mib * _MiB // max(shape.binary_files, 1)
    for j in range(shape.binary_files):
        kind = shape.binary_kinds[j % len(shape.binary_kinds)]
        path = root / f"assets/{kind}/blob_{j:03d}.bin"
        path.parent.mkdir(parents=True, exist_ok=True)
        data = _binary(rng, kind, per_file)
        path.write_bytes(data)
        total += len(data)
    return total


def _binary(rng: random.Random, kind: str, size: int) -> bytes:
    raw = rng.randbytes(size)
    if kind == "random":  # already-compressed data: weights in a zip, images, checkpoints
        return raw
    if kind == "nibbles":  # 16 symbols: deflate saves about half
        return raw.translate(bytes(b & 0x0F for b in range(256)))
    if kind == "sparse":  # mostly zero, like padded tensors
        return raw.translate(bytes(b if b < 16 else 0 for b in range(256)))
    block = raw[: 16 * 1024]  # a 16 KiB pattern repeated with small edits: highly compressible
    out = bytearray()
    while len(out) < size:
        out += block
        out[-rng.randint(1, len(block))] = rng.randrange(256)
    return bytes(out[:size])


def gnu_tar_gz(tree: Path, archive: Path) -> None:
    """Archive `tree` with GNU tar and gzip -6 (tar's default), members sorted and owner-free."""
    subprocess.run(
        [
            "tar",
            "--sort=name",
            "--owner=0",
            "--group=0",
            "--numeric-owner",
            "--mtime=@0",
            "-czf",
            str(archive),
            "-C",
            str(tree),
            ".",
        ],
        check=True,
    )


def large_archive(archive: Path, total_mib: int, *, seed: int = 64) -> int:
    """Write a tar.gz of about `total_mib` MiB of incompressible members (64 MiB each); return its size in bytes."""
    rng = random.Random(seed)
    block = rng.randbytes(64 * _MiB)
    with igzip.open(archive, "wb", compresslevel=1) as gz, tarfile.open(fileobj=gz, mode="w|") as tar:
        for i in range(max(total_mib // 64, 1)):
            info = tarfile.TarInfo(f"weights/shard_{i:03d}.bin")
            info.size = len(block)
            # a distinct head per member keeps members from being identical; deflate's 32 KiB window cannot
            # reach back 64 MiB, so the whole stays incompressible
            data = rng.randbytes(4096) + block[4096:]
            tar.addfile(info, _Reader(data))
        train = b"print('train')\n"
        info = tarfile.TarInfo("train.py")
        info.size = len(train)
        tar.addfile(info, _Reader(train))
    return archive.stat().st_size


class _Reader:
    def __init__(self, data: bytes) -> None:
        self._view = memoryview(data)
        self._pos = 0

    def read(self, size: int = -1) -> bytes:
        end = len(self._view) if size < 0 else self._pos + size
        chunk = bytes(self._view[self._pos : end])
        self._pos += len(chunk)
        return chunk
