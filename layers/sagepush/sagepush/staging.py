"""Staging: an uploaded archive or script in, a reproducible, content-addressed sourcedir.tar.gz out."""

from __future__ import annotations

import contextlib
import functools
import gzip
import hashlib
import io
import math
import os
import re
import stat
import struct
import tempfile
import unicodedata
import zipfile
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO, Final, Literal, Protocol, cast

from isal import igzip_threaded, isal_zlib

from sagepush import s3stream
from sagepush.deflate import GzipWriter, SupportsWrite
from sagepush.errors import InputError, shorten
from sagepush.spec import MANIFEST_NAMES, Manifest, find_manifest

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator, Mapping

    from mypy_boto3_s3 import S3Client

    BeforeUpload = Callable[[Manifest | None, str, str, Mapping[str, str], frozenset[str]], None]
    """Called with the manifest, the code digest, the staged URI, the upload's metadata and the staged files, before
    staging writes anything."""

OUTPUT_NAME: Final = "sourcedir.tar.gz"
"""File name of the staged code, as the SageMaker SDK names it."""

IGNORE_FILE: Final = ".sagepushignore"

_KiB: Final = 1024
_MiB: Final = 1024 * _KiB
_GiB: Final = 1024 * _MiB
_CHUNK: Final = _MiB  # bytes read or written at a time
_BLOCK: Final = 512
_ZERO_BLOCK: Final = bytes(_BLOCK)
_RATIO_FLOOR: Final = _MiB  # the ratio rule allows max_ratio x 1 MiB before it compares against the bytes read
_NAME_MAX: Final = 255  # bytes in one path component (Linux NAME_MAX)
_TAR_META_MAX: Final = _MiB  # a PAX or GNU long-name header's own data
_TAR_TRAILER_MAX: Final = _MiB  # bytes tolerated after a tar's end-of-archive blocks
_SNIFF: Final = 64 * _KiB  # bytes of a suspected secret that are looked at
UPLOAD_SUFFIXES: Final = (".tar.gz", ".tgz", ".tar", ".zip", ".py")
"""The uploads staging accepts: archives and a single script."""

# Dropped wherever they appear (component names); `.git` also as the file a submodule checkout leaves.
_DROP_DIRS: Final = frozenset(
    {".git", "__pycache__", "__MACOSX", ".ipynb_checkpoints", ".mypy_cache", ".pytest_cache", ".ruff_cache"}
)
_DROP_FILES: Final = frozenset({".DS_Store", ".git"})
_DROP_SUFFIXES: Final = (".pyc", ".pyo")

_DRIVE = re.compile(r"^[A-Za-z]:")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_ENV_TEMPLATES: Final = frozenset({".env.example", ".env.sample", ".env.template", ".env.dist"})
_SSH_KEYS: Final = frozenset({"id_rsa", "id_dsa", "id_ecdsa", "id_ed25519"})
_CREDENTIAL_FILES: Final = frozenset({".netrc", "_netrc", ".pypirc", ".git-credentials", ".pgpass"})
_AWS_KEY = re.compile(rb"(?i:aws_access_key_id|aws_secret_access_key)|(?:AKIA|ASIA)[0-9A-Z]{16}")
# isal's stubs declare its error class as an instance
_INFLATE_ERRORS: Final = (EOFError, gzip.BadGzipFile, cast("type[Exception]", isal_zlib.error), zlib.error)
_METADATA_KEYS: Final = ("sagepush-commit", "sagepush-branch", "sagepush-repo", "sagepush-author")
_STAGED_OBJECT_ARGS: Final = {"ContentType": "application/gzip"}

_Kind = Literal["file", "dir", "symlink", "hardlink", "device", "fifo", "socket", "sparse", "other"]
_Format = Literal["tar.gz", "tar", "zip", "py"]


class StagingError(InputError):
    """The upload is refused; `where` names the member (or the upload) and `rule` the rule it broke.

    Rules: `format`, `type`, `path`, `name`, `duplicate`, `limit`, `bomb`, `encrypted`, `corrupt`, `empty`, `secret`.
    """

    def __init__(self, where: str, message: str, *, rule: str) -> None:
        super().__init__(where, message)
        self.rule = rule


@dataclass(frozen=True, slots=True)
class Limits:
    """Bounds on what an upload may expand to; each crossing stops staging at once with a `StagingError`.

    Defaults suit a code upload, not a data set: 10 000 members, 2 GiB expanded in total (also the largest upload
    read and, with the output, the temporary disk needed), 1 GiB for one member, 200:1 expansion against the bytes
    read so far (after a first 200 MiB), 1 024 bytes per path (255 per component, always), 1 MiB per manifest,
    `.sagepushignore` or single script.
    """

    max_members: int = 10_000
    max_total_bytes: int = 2 * _GiB
    max_member_bytes: int = 1 * _GiB
    max_ratio: int = 200
    max_name_length: int = 1024
    max_manifest_bytes: int = 1 * _MiB

    def __post_init__(self) -> None:
        for name in self.__dataclass_fields__:
            if getattr(self, name) <= 0:
                raise ValueError(f"Limits.{name} must be positive, found {getattr(self, name)}")


DEFAULT_LIMITS: Final = Limits()


@dataclass(frozen=True, slots=True)
class StagedCode:
    """What staging wrote: the code's digest, the size of sourcedir.tar.gz, its members, what was dropped, the manifest.

    `digest` is the code's address in the artifact bucket: the SHA-256 of the staged tree's listing (see
    `tree_listing`), which names every member and the SHA-256 of every file's data. It depends on the code alone,
    never on how the tar was encoded or which deflate build compressed it, and it costs no pass over the data: each
    file is hashed as it is read from the upload.

    `members` is in archive order (sorted by UTF-8 bytes); directories end in `/`. `dropped` names what was left out:
    a directory dropped whole appears once with a trailing `/`. `stripped_prefix` is the single top-level directory
    removed from every path, if there was one.
    """

    digest: str
    size: int
    members: tuple[str, ...]
    dropped: tuple[str, ...]
    manifest: Manifest | None
    stripped_prefix: str | None = None
    sizes: tuple[int, ...] = ()  # each member's size in bytes, in `members` order (0 for a directory)

    def larger_than(self, threshold: int) -> list[tuple[str, int]]:
        """The files of more than `threshold` bytes, largest first, as (path, size)."""
        found = [(name, size) for name, size in zip(self.members, self.sizes, strict=False) if size > threshold]
        return sorted(found, key=lambda item: (-item[1], item[0]))

    @property
    def files(self) -> frozenset[str]:
        """The regular files in the staged code."""
        return frozenset(m for m in self.members if not m.endswith("/"))

    def entry_point_exists(self, entry_point: str) -> bool:
        """Tell whether `entry_point` (a path relative to the code root, `./` allowed) is a staged file."""
        parts = [p for p in entry_point.split("/") if p not in ("", ".")]
        return "/".join(parts) in self.files


class ReadableStream(Protocol):
    """Anything with `read(size)`: an open file, `BytesIO`, or botocore's `StreamingBody`."""

    def read(self, size: int = ..., /) -> bytes: ...


# --------------------------------------------------------------------------------------------------- entry point


def stage_archive(src: ReadableStream, dst: BinaryIO, *, filename: str, limits: Limits = DEFAULT_LIMITS) -> StagedCode:
    """Repack the upload read from `src` (named `filename`) into a reproducible sourcedir.tar.gz written to `dst`.

    `filename`'s suffix picks the format (`.tar.gz .tgz .tar .zip .py`) and the leading bytes must agree. Memory
    stays bounded: member data is spooled to a temporary file and only metadata is kept. Nothing is written to `dst`
    until every rule has passed. If every path sits under one top-level directory (`git archive --prefix`, GitHub
    tarballs), that directory is stripped so the entry point lands at the root, where SageMaker looks for it.

    Raises:
        StagingError: the upload breaks a rule; `where` names the member or the upload.
        SpecError: the manifest in the upload is not valid TOML.
    """
    with _collected(src, filename, limits) as collected:
        return collected.code(collected.digest(), collected.write(dst))


LISTING_VERSION: Final = b"sagepush staged tree 1\n"


def tree_listing(output: list[tuple[str, _Entry | None]]) -> bytes:
    """The text the staged code's digest hashes: a version line, then one line per member in archive order.

    A directory is `d <path>/`; a file is `f <sha256> <path>`, or `x <sha256> <path>` when it is executable (the only
    mode staging keeps). Paths are UTF-8 and hold no control characters, so one line is one member.
    """
    lines = [LISTING_VERSION]
    for name, entry in output:
        if entry is None:
            lines.append(f"d {name}\n".encode())
        else:
            lines.append(f"{'x' if entry.executable else 'f'} {entry.sha256.hex()} {name}\n".encode())
    return b"".join(lines)


@dataclass(frozen=True, slots=True)
class _Collected:
    """An upload that passed every rule: its members spooled, in the order they are written out."""

    tree: _Tree
    output: list[tuple[str, _Entry | None]]
    manifest: Manifest | None

    def tar(self) -> Iterator[bytes]:
        """The staged tar's bytes, in pieces: the uncompressed content of sourcedir.tar.gz."""
        self.tree.spool.flush()
        fd = self.tree.spool.fileno()
        for name, entry in self.output:
            if entry is None:
                yield _tar_header(name, mode=0o755, size=0, typeflag=b"5")
                continue
            yield _tar_header(name, mode=0o755 if entry.executable else 0o644, size=entry.size, typeflag=b"0")
            offset, end = entry.offset, entry.offset + entry.size
            while offset < end:
                data = os.pread(fd, min(_CHUNK, end - offset), offset)
                if not data:
                    raise OSError(f"the staging spool ended early at byte {offset}")
                yield data
                offset += len(data)
            if entry.size % _BLOCK:
                yield bytes(_padded(entry.size) - entry.size)
        yield bytes(2 * _BLOCK)

    def digest(self) -> str:
        """The staged code's content address: the SHA-256 of its `tree_listing`."""
        return hashlib.sha256(tree_listing(self.output)).hexdigest()

    def write(self, dst: SupportsWrite) -> int:
        """Write sourcedir.tar.gz to `dst`; return the bytes written."""
        with GzipWriter(dst) as out:
            for piece in self.tar():
                out.write(piece)
        return out.size

    def code(self, digest: str, size: int) -> StagedCode:
        return StagedCode(
            digest=digest,
            size=size,
            members=tuple(name for name, _ in self.output),
            sizes=tuple(entry.size if entry is not None else 0 for _, entry in self.output),
            dropped=tuple(sorted(self.tree.dropped, key=_sort_key)),
            manifest=self.manifest,
            stripped_prefix=self.tree.prefix,
        )


@contextlib.contextmanager
def _collected(src: ReadableStream, filename: str, limits: Limits) -> Iterator[_Collected]:
    """Read and check the whole upload into a spool that lasts as long as the `with` block."""
    fmt = _format_of(filename)
    with tempfile.TemporaryDirectory(prefix="sagepush-stage-") as work, (Path(work) / "spool").open("w+b") as spool:
        tree = _Tree(spool, limits, filename)
        if fmt == "py":
            manifest = _collect_script(src, tree, filename)
        else:
            _collect_archive(src, fmt, tree, filename, Path(work))
            tree.finish()
            manifest = _root_manifest(tree)
        _check_secrets(tree, manifest, script=fmt == "py")
        yield _Collected(tree, tree.output(), manifest)


@dataclass(frozen=True, slots=True)
class StagedObject:
    """A staged upload in the artifact bucket: its URI, whether it was already there, and the upload's metadata.

    `metadata` holds the upload's `sagepush-{commit,branch,repo,author}` user metadata, keyed as S3 reports it.
    """

    uri: str
    reused: bool
    code: StagedCode
    metadata: Mapping[str, str] = field(default_factory=dict)

    @property
    def digest(self) -> str:
        return self.code.digest

    @property
    def manifest(self) -> Manifest | None:
        return self.code.manifest


def stage_object(
    *,
    bucket: str,
    key: str,
    version_id: str | None,
    dest_bucket: str,
    dest_prefix: str,
    limits: Limits = DEFAULT_LIMITS,
    s3: S3Client,
    before_upload: BeforeUpload | None = None,
) -> StagedObject:
    """Stage `s3://bucket/key` into `s3://dest_bucket/<dest_prefix>/<digest>/sourcedir.tar.gz`.

    `before_upload(manifest, digest, uri, metadata, files)` runs once the upload has been read and checked, before anything
    is written: whatever it raises stops the staging with nothing staged (a manifest refused by the job policy
    leaves no code behind).

    Idempotent: the destination is addressed by the staged code's digest, known as soon as the upload is read, so
    code already there is reused without being compressed or uploaded again. Otherwise sourcedir.tar.gz is compressed
    straight into a (multipart) upload, never written to disk. Uses the upload's file name (the key's last segment)
    to pick its format. Needs about the expanded size in temporary disk space.

    Raises:
        StagingError: the upload breaks a rule.
    """
    if version_id:
        response = s3.get_object(Bucket=bucket, Key=key, VersionId=version_id)
    else:
        response = s3.get_object(Bucket=bucket, Key=key)
    filename = key.rsplit("/", 1)[-1]
    body = response["Body"]
    try:
        if response.get("ContentLength", 0) > limits.max_total_bytes:
            raise StagingError(
                filename,
                f"is {response['ContentLength']} bytes; an upload may be at most {limits.max_total_bytes} bytes",
                rule="limit",
            )
        with _collected(body, filename, limits) as collected:
            digest = collected.digest()
            dest_key = "/".join(p for p in (dest_prefix.strip("/"), digest, OUTPUT_NAME) if p)
            if before_upload is not None:
                files = frozenset(name for name, entry in collected.output if entry is not None)
                before_upload(collected.manifest, digest, f"s3://{dest_bucket}/{dest_key}", _metadata(response), files)
            size = _object_size(s3, dest_bucket, dest_key)
            reused = size is not None
            if size is None:
                size = s3stream.upload_stream(
                    collected.write, s3=s3, bucket=dest_bucket, key=dest_key, extra_args=_STAGED_OBJECT_ARGS
                )
            code = collected.code(digest, size)
    finally:
        body.close()
    return StagedObject(uri=f"s3://{dest_bucket}/{dest_key}", reused=reused, code=code, metadata=_metadata(response))


def _metadata(response: Mapping[str, Any]) -> dict[str, str]:
    user = response.get("Metadata", {})
    return {k: user[k] for k in _METADATA_KEYS if k in user}


def _object_size(s3: S3Client, bucket: str, key: str) -> int | None:
    """Return the object's size, or None when there is no such object."""
    from botocore.exceptions import ClientError

    try:
        return s3.head_object(Bucket=bucket, Key=key)["ContentLength"]
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
            return None
        raise


# ------------------------------------------------------------------------------------------------ the member tree


@dataclass(slots=True)
class _Entry:
    name: str  # normalised, before the top-level directory is stripped
    kind: _Kind
    executable: bool = False
    offset: int = 0
    size: int = 0
    sha256: bytes = b""
    secret: str | None = None  # what the content scan found, as `_find_secret` words it


@dataclass(slots=True)
class _Raw:
    """A member as an archive reader reports it; `chunks` yields its data and must be drained."""

    name: str
    kind: _Kind
    executable: bool
    size: int
    chunks: Iterator[bytes]


class _Tree:
    """Everything seen in the upload: metadata in memory, file data appended to one spool file."""

    def __init__(self, spool: BinaryIO, limits: Limits, upload: str) -> None:
        self.spool = spool
        self.limits = limits
        self.upload = upload
        self.compressed: Callable[[], int] = lambda: 0
        self.entries: list[_Entry] = []
        self.dropped: set[str] = set()
        self.prefix: str | None = None
        self._seen: dict[str, _Entry] = {}  # NFC name -> entry, for duplicates
        self._dirs: set[str] = set()  # explicit directory entries
        self._members = 0
        self._total = 0
        self._offset = 0

    def add(self, raw: _Raw) -> None:
        """Validate one member, spool its data, and stop at the first rule it breaks."""
        self._members += 1
        if self._members > self.limits.max_members:
            raise StagingError(
                _where(raw.name),
                f"is member number {self._members}; an upload holds at most {self.limits.max_members} members",
                rule="limit",
            )
        name = _normalise(raw.name, self.limits)
        dropped = _builtin_drop(name, is_dir=raw.kind == "dir") if name else None
        if dropped is not None or not name:
            if dropped is not None:
                self.dropped.add(dropped)
            for _ in self._count(raw):
                pass
            return
        if raw.kind == "file" and raw.size > self.limits.max_member_bytes:
            raise self._too_big(raw.name, raw.size)
        entry = _Entry(name, raw.kind, raw.executable)
        key = unicodedata.normalize("NFC", name)
        other = self._seen.get(key)
        if other is not None and not (other.kind == "dir" and raw.kind == "dir"):
            same = "the same path" if other.name == name else f"{other.name!r} once Unicode-normalised (NFC)"
            raise StagingError(
                _where(raw.name), f"appears twice: it names {same}; paths must be unique", rule="duplicate"
            )
        self._seen[key] = entry
        if raw.kind == "dir":
            self._dirs.add(name)
            for _ in self._count(raw):
                pass
            return
        if raw.kind == "file":
            self._spool(entry, raw)
        else:  # refused in finish() unless .sagepushignore drops it; a link target is read, counted, discarded
            for _ in self._count(raw):
                pass
        self.entries.append(entry)

    def _spool(self, entry: _Entry, raw: _Raw) -> None:
        """Append a file's data to the spool, hashing it and scanning its head for secrets on the way."""
        entry.offset = self._offset
        write, sha = self.spool.write, hashlib.sha256()
        head = b""  # the first _SCAN_BYTES, scanned while in memory: usually the first chunk itself, not a copy
        for chunk in self._count(raw):
            write(chunk)
            sha.update(chunk)
            self._offset += len(chunk)
            if len(head) < _SCAN_BYTES:
                head = head + chunk[: _SCAN_BYTES - len(head)] if head else chunk[:_SCAN_BYTES]
        entry.size = self._offset - entry.offset
        entry.sha256 = sha.digest()
        entry.secret = _find_secret(head)

    def _count(self, raw: _Raw) -> Iterator[bytes]:
        size = 0
        for chunk in raw.chunks:
            size += len(chunk)
            if size > self.limits.max_member_bytes:
                raise self._too_big(raw.name, size)
            self.account(len(chunk), raw.name)
            yield chunk

    def _too_big(self, name: str, size: int) -> StagingError:
        return StagingError(
            _where(name),
            f"expands to {size} bytes or more; one member may be at most {self.limits.max_member_bytes} bytes",
            rule="limit",
        )

    def account(self, size: int, name: str) -> None:
        """Count `size` more expanded bytes read for member `name`; stop when a size or ratio limit is crossed."""
        self._total += size
        limits = self.limits
        if self._total > limits.max_total_bytes:
            raise StagingError(
                _where(name),
                f"brings the expanded upload to {self._total} bytes; the whole may be at most "
                f"{limits.max_total_bytes} bytes",
                rule="limit",
            )
        compressed = self.compressed()
        if self._total > limits.max_ratio * max(compressed, _RATIO_FLOOR):
            raise StagingError(
                _where(name),
                f"brings the upload to {self._total} bytes expanded from {compressed} bytes read, more than "
                f"{limits.max_ratio}:1; this looks like a decompression bomb",
                rule="bomb",
            )

    def finish(self) -> None:
        """Strip a single top-level directory, apply `.sagepushignore`, then refuse links and path clashes."""
        if self._members == 0:
            raise StagingError(self.upload, "is an empty archive; expected at least one file", rule="empty")
        self._strip()
        self._apply_ignore_file()
        for entry in self.entries:
            if entry.kind != "file":
                raise StagingError(
                    _where(self.out_name(entry)),
                    f"is a {_KIND_WORDS[entry.kind]}; only regular files and directories are accepted "
                    f"(list it in {IGNORE_FILE} to leave it out)",
                    rule="type",
                )
        if not self.entries:
            left = f" after dropping {', '.join(sorted(self.dropped, key=_sort_key)[:5])}" if self.dropped else ""
            raise StagingError(self.upload, f"has no files{left}; expected at least one file", rule="empty")
        files = {self.out_name(e) for e in self.entries}
        for name in files:
            parent = name.rpartition("/")[0]
            while parent:
                if parent in files:
                    raise StagingError(
                        _where(name), f"sits under {parent!r}, which is a file; a path cannot be both", rule="duplicate"
                    )
                parent = parent.rpartition("/")[0]

    def _strip(self) -> None:
        names = [e.name for e in self.entries] + list(self._dirs)
        tops = {n.partition("/")[0] for n in names}
        if len(tops) != 1 or not any("/" in n for n in names) or any(e.name in tops for e in self.entries):
            return
        self.prefix = tops.pop()
        cut = len(self.prefix) + 1
        self.dropped = {d[cut:] if d.startswith(self.prefix + "/") else d for d in self.dropped}
        self.dropped.discard("")

    def out_name(self, entry: _Entry) -> str:
        return entry.name[len(self.prefix) + 1 :] if self.prefix else entry.name

    def _apply_ignore_file(self) -> None:
        ignore = next((e for e in self.entries if self.out_name(e) == IGNORE_FILE), None)
        if ignore is None:
            return
        text = _decode_text(self.read(ignore, self.limits.max_manifest_bytes), IGNORE_FILE)
        import pathspec  # only uploads that carry a .sagepushignore pay for it

        spec = pathspec.GitIgnoreSpec.from_lines(text.splitlines())
        kept = []
        for entry in self.entries:
            name = self.out_name(entry)
            if spec.match_file(name):
                self.dropped.add(name)
            else:
                kept.append(entry)
        self.entries = kept

    def read(self, entry: _Entry, limit: int) -> bytes:
        """Return a small spooled file whole (manifests, ignore files, scripts)."""
        if entry.size > limit:
            raise StagingError(
                _where(self.out_name(entry)), f"is {entry.size} bytes; it may be at most {limit} bytes", rule="limit"
            )
        return self.head(entry, entry.size)

    def head(self, entry: _Entry, size: int) -> bytes:
        self.spool.flush()
        return os.pread(self.spool.fileno(), min(size, entry.size), entry.offset)

    def output(self) -> list[tuple[str, _Entry | None]]:
        """Return the output members, sorted: every kept file plus each directory above one (None)."""
        members: dict[str, _Entry | None] = {}
        for entry in self.entries:
            name = self.out_name(entry)
            members[name] = entry
            parent = name.rpartition("/")[0]
            while parent and parent + "/" not in members:
                members[parent + "/"] = None
                parent = parent.rpartition("/")[0]
        return sorted(members.items(), key=lambda item: _sort_key(item[0]))


_KIND_WORDS: Final[Mapping[str, str]] = {
    "symlink": "symbolic link",
    "hardlink": "hard link",
    "device": "device file",
    "fifo": "FIFO (named pipe)",
    "socket": "socket",
    "sparse": "sparse file",
    "other": "special file of an unknown type",
}


def _sort_key(name: str) -> bytes:
    return name.encode("utf-8", "surrogateescape")


def _where(name: str) -> str:
    # Control characters are escaped: a member name must not break the one-line error, a log line or a terminal.
    name = _CONTROL.sub(lambda m: repr(m.group())[1:-1], name)
    return name if len(name) <= 200 else name[:199] + "…"


def _normalise(name: str, limits: Limits) -> str:
    """Return the member path with `./`, empty components and a trailing slash removed; refuse unsafe paths."""
    where = _where(name)
    if "\\" in name:
        raise StagingError(where, "contains a backslash; archive paths must use forward slashes", rule="path")
    if _DRIVE.match(name):
        raise StagingError(
            where, "starts with a drive letter; expected a path relative to the archive root", rule="path"
        )
    if name.startswith("/"):
        raise StagingError(where, "is an absolute path; expected a path relative to the archive root", rule="path")
    if _CONTROL.search(name):
        raise StagingError(where, "contains a control character; expected printable path names", rule="name")
    parts = [p for p in name.split("/") if p not in ("", ".")]
    if ".." in parts:
        raise StagingError(where, "contains '..'; paths must stay inside the archive root", rule="path")
    for part in parts:
        if len(part.encode()) > _NAME_MAX:
            raise StagingError(
                where, f"has a component of {len(part.encode())} bytes; at most {_NAME_MAX} are allowed", rule="name"
            )
    normal = "/".join(parts)
    if len(normal.encode()) > limits.max_name_length:
        raise StagingError(
            where,
            f"is {len(normal.encode())} bytes long; paths may be at most {limits.max_name_length} bytes",
            rule="name",
        )
    return normal


def _builtin_drop(name: str, *, is_dir: bool) -> str | None:
    """Return what to report as dropped when `name` is VCS or cache debris, else None."""
    parts = name.split("/")
    for i, part in enumerate(parts if is_dir else parts[:-1]):
        if part in _DROP_DIRS:
            return "/".join(parts[: i + 1]) + "/"
    if not is_dir and (parts[-1] in _DROP_FILES or parts[-1].endswith(_DROP_SUFFIXES)):
        return name
    return None


def _decode_text(data: bytes, where: str) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise StagingError(where, f"is not UTF-8 text (byte {exc.start}); expected UTF-8", rule="name") from exc


# ----------------------------------------------------------------------------------------------- manifest, secrets


def _root_manifest(tree: _Tree) -> Manifest | None:
    files = {}
    for entry in tree.entries:
        name = tree.out_name(entry)
        if name in MANIFEST_NAMES:
            files[name] = tree.read(entry, tree.limits.max_manifest_bytes)
    return find_manifest(files)


def _check_secrets(tree: _Tree, manifest: Manifest | None, *, script: bool = False) -> None:
    """Refuse the first file that looks like a secret by its name or, failing that, by its content."""
    allowed = _allowed_secrets(manifest)
    for entry in tree.entries:
        name = tree.out_name(entry)
        if name in allowed:
            continue
        reason = _secret_reason(name, functools.partial(tree.head, entry, _SNIFF)) or entry.secret
        if reason is not None:
            source = manifest.source if manifest is not None else "sagepush.toml"
            remedy = (
                f"remove it, or name it in allow_secrets in the [tool.sagepush] table of {source}'s script block"
                if script
                else f"remove it, list it in {IGNORE_FILE}, or name it in allow_secrets in {source}"
            )
            raise StagingError(name, f"looks like a secret ({reason}); {remedy}", rule="secret")


def _allowed_secrets(manifest: Manifest | None) -> frozenset[str]:
    if manifest is None:
        return frozenset()
    value = manifest.table.get("allow_secrets", [])
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise StagingError(
            f"{manifest.source}: allow_secrets",
            f"is {shorten(value)}; expected a list of member paths",
            rule="secret",
        )
    return frozenset("/".join(p for p in v.split("/") if p not in ("", ".")) for v in value)


def _secret_reason(name: str, head: Callable[[], bytes]) -> str | None:
    """Say why `name` looks like a secret, or return None; `head` gives the first bytes when the name is not enough."""
    base = name.rpartition("/")[2]
    if base == ".env" or (base.startswith(".env.") and base not in _ENV_TEMPLATES):
        return "a dotenv file"
    if base in _SSH_KEYS:
        return "an SSH private key"
    if name == ".aws/credentials" or name.endswith("/.aws/credentials"):
        return "an AWS credentials file"
    if base in _CREDENTIAL_FILES:
        return f"a {base} credentials file"
    if base == "credentials" and _AWS_KEY.search(head()):
        return "a credentials file holding AWS keys"
    if base.endswith((".pem", ".key")) and b"PRIVATE KEY-----" in head():
        return "a private key"
    return None


# What the content scan reads, and how it stays cheap. Every regular file is scanned as it is spooled, whatever
# its name: its first _SCAN_BYTES, unless a NUL byte in its first _BINARY_SNIFF bytes marks it as binary (weights,
# images, archives; UTF-16 text too). The bound keeps the cost proportional to the code, not to the data shipped
# with it: source, configuration and notebook files sit far below 1 MiB (the bench tree's largest is 32 KiB), and
# past it a text member is a data set (CSV, JSON lines, vocabularies), whose scan would cost ~2-3 ms per MiB of
# one core for little chance of a key. 1 MiB is also the chunk the readers hand over, so the scan reads the first chunk in place, without a copy.
#
# The rules follow gitleaks' default config (config/gitleaks.toml: aws-access-token, private-key, github-*,
# slack-*, gcp-api-key, stripe-access-token, openai-api-key, huggingface-access-token), with its entropy floors and
# its EXAMPLE allowlist for AWS's documentation keys. Python's `re` finds a pattern that starts with a literal at
# ~1.2 GB/s and one with a leading \b or a class, or a big alternation, 10-20x slower; so the scan is a few
# anchor passes that each start with one literal character followed by a short alternation (each ~1.1 GB/s on
# code, three in all), and everything else (the whole token, word boundaries, terminators, entropy, allowlists) is
# checked in Python around the rare anchor hits.
_SCAN_BYTES: Final = _CHUNK
_BINARY_SNIFF: Final = 8 * _KiB
_WORD: Final = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_")
_BASE64: Final = _WORD - {ord("_")} | frozenset(b"+/=")
# What may follow a token: gitleaks' (?:[\x60'"\s;]|\\[nr]|$), plus the escaped quotes of a string inside JSON,
# which gitleaks misses: a notebook's cell source holds `token = \"...\"`.
_TERMINATORS: Final = frozenset(b"`'\"; \t\r\n\f\v")
_ESCAPED_TERMINATORS: Final = frozenset({b"\\n", b"\\r", b"\\t", b'\\"', b"\\'"})


@dataclass(frozen=True, slots=True)
class _Token:
    """One kind of secret: its whole pattern, looked for from `reach` bytes before an anchor hit, and its checks."""

    kind: str  # how the refusal names it; never the value
    pattern: re.Pattern[bytes]  # group 1, when there is one, is the value the entropy and allowlist look at
    reach: int = 0  # how far before the anchor the token may start
    bounded: bool = False  # gitleaks' leading \b
    after: Literal["any", "word", "terminator", "base64"] = "any"  # what may follow: \b, gitleaks' end, not base64
    entropy: float = 0.0  # gitleaks' Shannon entropy floor, in bits per byte of the value
    allow: bytes | None = None  # a value containing this is documentation, not a secret (gitleaks' EXAMPLE)
    body: bool = False  # a private key needs a key body after its header

    def found_at(self, data: bytes, anchor: int) -> int | None:
        """Return where this token starts around the anchor hit at `anchor`, or None when there is none."""
        start = max(anchor - self.reach, 0)
        match = self.pattern.search(data, start, anchor + _TOKEN_SPAN)
        if match is None or match.start() > anchor:
            return None
        begin, end = match.span()
        value = match.group(match.lastindex or 0)
        if self.bounded and begin > 0 and data[begin - 1] in _WORD:
            return None
        if not _ends_well(data, end, self.after):
            return None
        if self.entropy and _entropy(value) < self.entropy:
            return None
        if self.allow is not None and self.allow in value:
            return None
        if self.body and not _has_key_body(data, end):
            return None
        return begin


_TOKEN_SPAN: Final = 512  # bytes after an anchor hit a token may reach (Slack's longest is about 180)


def _ends_well(data: bytes, end: int, after: str) -> bool:
    if end >= len(data) or after == "any":
        return True
    following = data[end]
    if after == "word":
        return following not in _WORD
    if after == "base64":
        return following not in _BASE64
    return following in _TERMINATORS or data[end : end + 2] in _ESCAPED_TERMINATORS


def _entropy(value: bytes) -> float:
    counts = [value.count(byte) for byte in set(value)]
    return -sum(c / len(value) * math.log2(c / len(value)) for c in counts)


# After a private key's header: PEM header lines (Proc-Type, DEK-Info, Version), then the key's base64 body, whose
# lines may be broken by real newlines, by JSON's escaped ones, or between the quoted pieces of a string or of a
# list of lines (a notebook's cell source). gitleaks asks for 64 characters of body; prose that merely names the
# header (docs, tests, this module) has words, not such lines.
_LINE_BREAK = rb"""(?:\\[nr]|[\s"',])*(?:\\n|\n)(?:\\[nr]|[\s"',])*"""
_KEY_BODY = re.compile(
    rb"(?:" + _LINE_BREAK + rb"|[A-Za-z-]+: [^\r\n\\]*)*"
    rb"([A-Za-z0-9+/=]+(?:" + _LINE_BREAK + rb"[A-Za-z0-9+/=]+)*)"
)
_NOT_BASE64 = re.compile(rb"\\[nr]|[^A-Za-z0-9+/=]")
_KEY_BODY_MIN: Final = 64
_KEY_BODY_WINDOW: Final = 4 * _KiB


def _has_key_body(data: bytes, end: int) -> bool:
    match = _KEY_BODY.match(data, end, end + _KEY_BODY_WINDOW)
    return match is not None and len(_NOT_BASE64.sub(b"", match.group(1))) >= _KEY_BODY_MIN


_AWS_ID: Final = _Token(
    "an AWS access key ID",
    re.compile(rb"(?:A3T[A-Z0-9]|AKIA|ASIA|ABIA|ACCA)[A-Z2-7]{16}"),
    bounded=True,
    after="word",
    entropy=3,
    allow=b"EXAMPLE",  # gitleaks: .+EXAMPLE$, as in AWS's documentation key AKIAIOSFODNN7EXAMPLE
)
# An assignment of a 40-character value; quotes may be JSON-escaped (notebooks). A credentials file or an
# `aws iam create-access-key` answer also holds the key ID, which the rule above finds.
_AWS_SECRET_VALUE = rb"""(?:\\?['"])?\]?[ \t]*(?:=>|:=|=|:|,)[ \t]*(?:\\?[`'"])?([A-Za-z0-9/+]{40})"""
_AWS_SECRET_KIND = "an AWS secret access key"
_AWS_SECRET_UPPER: Final = _Token(
    _AWS_SECRET_KIND,
    re.compile(rb"AWS_SECRET_ACCESS_KEY" + _AWS_SECRET_VALUE),
    after="base64",
    entropy=3,
    allow=b"EXAMPLE",  # AWS's documentation secret ends in EXAMPLEKEY
)
_AWS_SECRET_LOWER: Final = _Token(
    _AWS_SECRET_KIND,
    re.compile(rb"_secret_access_key" + _AWS_SECRET_VALUE),
    after="base64",
    entropy=3,
    allow=b"EXAMPLE",
)
_GCP_KEY: Final = _Token("a Google API key", re.compile(rb"AIza[\w-]{35}"), bounded=True, after="terminator", entropy=4)
_PRIVATE_KEY: Final = _Token(
    "a private key",
    re.compile(rb"-----BEGIN[ A-Z0-9_-]{0,100}PRIVATE KEY(?: BLOCK)?-----"),
    body=True,
)
_OPENAI_KEY: Final = _Token(
    "an OpenAI API key",
    re.compile(
        rb"sk-(?:(?:proj|svcacct|admin)-(?:[A-Za-z0-9_-]{74}|[A-Za-z0-9_-]{58})T3BlbkFJ"
        rb"(?:[A-Za-z0-9_-]{74}|[A-Za-z0-9_-]{58})|[a-zA-Z0-9]{20}T3BlbkFJ[a-zA-Z0-9]{20})"
    ),
    reach=len(b"sk"),
    bounded=True,
    after="terminator",
    entropy=3,
)
_GITHUB_KIND = "a GitHub token"
_GITHUB_TOKEN: Final = _Token(_GITHUB_KIND, re.compile(rb"gh[pousr]_[0-9a-zA-Z]{36}"), reach=len(b"ghp"), entropy=3)
_GITHUB_PAT: Final = _Token(_GITHUB_KIND, re.compile(rb"github_pat_\w{82}"), reach=len(b"github_pat"), entropy=3)
_HF_TOKEN: Final = _Token(
    "a Hugging Face token",
    re.compile(rb"hf_[a-zA-Z]{34}"),
    reach=len(b"hf"),
    bounded=True,
    after="terminator",
    entropy=2,
)
_STRIPE_KEY: Final = _Token(
    "a Stripe live key",
    re.compile(rb"[sr]k_live_[a-zA-Z0-9]{10,99}"),
    reach=2,
    bounded=True,
    after="terminator",
    entropy=2,
)
_SLACK_TOKEN: Final = _Token(
    "a Slack token",
    re.compile(
        rb"xox(?:b-[0-9]{10,13}-[0-9]{10,13}[a-zA-Z0-9-]*"  # bot
        rb"|b-[0-9]{8,14}-[a-zA-Z0-9]{18,26}"  # legacy bot
        rb"|[pe](?:-[0-9]{10,13}){3}-[a-zA-Z0-9-]{28,34}"  # user
        rb"|[ar]-(?:[0-9]-)?[0-9a-zA-Z]{8,48}"  # legacy workspace
        rb"|[os]-[0-9]+-[0-9]+-[0-9]+-[a-fA-F0-9]+"  # legacy
        rb"|e\.xox[bp]-[0-9]-[A-Za-z0-9]{163,166}"  # configuration access
        rb"|e-[0-9]-[A-Za-z0-9]{146})"  # configuration refresh
    ),
    reach=len(b"xoxe.xoxb"),
    entropy=2,
)

# Each anchor pattern starts with one literal character; the group that matched says which token to look for.
# Three passes cover every rule: 48 MiB of Python takes ~0.15 s of one core, where one pass per rule took ~0.48 s;
# inside staging, on text still in cache from its hashing, the bench tree's 48 MiB of text costs ~0.06 s.
_ANCHORS: Final[tuple[tuple[re.Pattern[bytes], tuple[_Token, ...]], ...]] = (
    (
        re.compile(rb"A(?:(KIA|SIA|BIA|CCA|3T)|(Iza)|(WS_SECRET_ACCESS_KEY))"),
        (_AWS_ID, _GCP_KEY, _AWS_SECRET_UPPER),
    ),
    (
        re.compile(rb"_(?:(?<=gh[pousr]_)()|(?<=github_pat_)()|(?<=hf_)()|(?<=[sr]k_)(live_)|(secret_access_key))"),
        (_GITHUB_TOKEN, _GITHUB_PAT, _HF_TOKEN, _STRIPE_KEY, _AWS_SECRET_LOWER),
    ),
    (
        re.compile(rb"-(?:(?<=xox[abeoprs]-)()|(----BEGIN)|(?<=sk-)())"),
        (_SLACK_TOKEN, _PRIVATE_KEY, _OPENAI_KEY),
    ),
)


def _find_secret(data: bytes) -> str | None:
    """Name the first kind of secret found in a file's leading bytes, with its line, or return None."""
    if data.find(b"\0", 0, _BINARY_SNIFF) >= 0:
        return None
    for anchor, tokens in _ANCHORS:
        for hit in anchor.finditer(data):
            token = tokens[(hit.lastindex or 1) - 1]
            start = token.found_at(data, hit.start())
            if start is not None:
                line = data.count(b"\n", 0, start) + 1
                return f"{token.kind} on line {line}"
    return None


# ---------------------------------------------------------------------------------------------------- the inputs


def _format_of(filename: str) -> _Format:
    lower = filename.lower()
    if lower.endswith((".tar.gz", ".tgz")):
        return "tar.gz"
    if lower.endswith(".tar"):
        return "tar"
    if lower.endswith(".zip"):
        return "zip"
    if lower.endswith(".py"):
        return "py"
    raise StagingError(
        filename, "has an unsupported suffix; expected .tar.gz, .tgz, .tar, .zip or a single .py script", rule="format"
    )


def _sniff(head: bytes) -> str:
    if head[:2] == b"\x1f\x8b":
        return "tar.gz"
    if head[:4] in (b"PK\x03\x04", b"PK\x05\x06"):
        return "zip"
    if head[257:262] == b"ustar":
        return "tar"
    return "unknown"


def _describe(head: bytes) -> str:
    kind = _sniff(head)
    known = {"tar.gz": "gzip data", "zip": "a zip archive", "tar": "a tar archive"}
    if kind in known:
        return known[kind]
    for magic, what in ((b"BZh", "bzip2 data"), (b"\xfd7zXZ", "xz data"), (b"\x28\xb5\x2f\xfd", "zstd data")):
        if head.startswith(magic):
            return what
    return f"data starting with {shorten(head[:16])}"


class _Prefixed(io.RawIOBase):
    """`head` followed by the rest of `rest`, counting the bytes handed out (the compressed bytes read)."""

    def __init__(self, head: bytes, rest: ReadableStream) -> None:
        super().__init__()
        self._head = head
        self._rest = rest
        self.consumed = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        want = len(buffer)
        if self._head:
            data, self._head = self._head[:want], self._head[want:]
        else:
            data = self._rest.read(want)
        buffer[: len(data)] = data
        self.consumed += len(data)
        return len(data)


def _read_head(src: ReadableStream, size: int) -> bytes:
    parts = []
    while size > 0 and (data := src.read(size)):
        parts.append(data)
        size -= len(data)
    return b"".join(parts)


def _collect_archive(src: ReadableStream, fmt: _Format, tree: _Tree, upload: str, work: Path) -> None:
    head = _read_head(src, _BLOCK)
    if not head:
        raise StagingError(upload, "is empty (0 bytes); expected an archive", rule="empty")
    if _sniff(head) != fmt:
        raise StagingError(upload, f"is named like a {fmt} archive but holds {_describe(head)}", rule="format")
    stream = _Prefixed(head, src)
    tree.compressed = lambda: stream.consumed
    if fmt == "zip":
        _collect_zip(stream, tree, upload, work)
        return
    reader: io.BufferedReader
    if fmt == "tar.gz":
        # decompression runs in isal's reader thread, overlapping the parsing and spooling done here
        reader = igzip_threaded.open(stream, "rb", threads=1, block_size=_CHUNK // 4)  # type: ignore[no-untyped-call]
    else:
        reader = io.BufferedReader(stream, buffer_size=_CHUNK)
    with reader:
        for raw in _read_tar(_TarStream(reader, upload), tree.account):
            tree.add(raw)


# ----------------------------------------------------------------------------------------------------------- tar


class _TarStream:
    def __init__(self, reader: ReadableStream, upload: str) -> None:
        self._reader = reader
        self.upload = upload
        self.last: str | None = None

    def read(self, size: int) -> bytes:
        try:
            return self._reader.read(size)
        except _INFLATE_ERRORS as exc:
            raise self.corrupt(f"the gzip stream is corrupt ({exc})") from exc

    def read_exact(self, size: int) -> bytes:
        data = self.read(size)
        if len(data) < size:
            raise self.corrupt("the tar stream is truncated")
        return data

    def corrupt(self, what: str) -> StagingError:
        after = f" after member {self.last!r}" if self.last else " at its start"
        return StagingError(self.upload, f"is not a valid archive: {what}{after}", rule="corrupt")


_TAR_KINDS: Final[Mapping[bytes, _Kind]] = {
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


def _read_tar(stream: _TarStream, account: Callable[[int, str], None]) -> Iterator[_Raw]:
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
            if size > _TAR_META_MAX:
                raise stream.corrupt(f"a {typeflag.decode()!r} header of {size} bytes")
            data = stream.read_exact(_padded(size))[:size]
            account(_padded(size), stream.last or stream.upload)
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
        yield _Raw(name, kind, bool(mode & 0o111), size, _tar_chunks(stream, data_left))
        stream.read_exact(data_left[0] + _padded(size) - size)


def _next_header(stream: _TarStream, *, first: bool) -> bytes | None:
    """Return the next header block, or None at the end of the archive."""
    header = stream.read(_BLOCK)
    if not header:
        if first:
            raise StagingError(stream.upload, "is an empty archive; expected at least one file", rule="empty")
        return None  # no end-of-archive blocks: accepted, as GNU tar does
    if len(header) < _BLOCK:
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
    header: bytes, pax: Mapping[bytes, bytes], long_name: bytes | None, stream: _TarStream
) -> tuple[str, _Kind, int]:
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


def _tar_chunks(stream: _TarStream, left: list[int]) -> Iterator[bytes]:
    while left[0]:
        chunk = stream.read_exact(min(left[0], _CHUNK))
        left[0] -= len(chunk)
        yield chunk


def _drain_trailer(stream: _TarStream) -> None:
    # Reading to the end makes the gzip reader check its CRC; a bounded amount of padding is normal.
    drained = 0
    while data := stream.read(_CHUNK):
        drained += len(data)
        if drained > _TAR_TRAILER_MAX:
            raise stream.corrupt(f"more than {_TAR_TRAILER_MAX} bytes follow the end of the tar archive")


def _padded(size: int) -> int:
    return -(-size // _BLOCK) * _BLOCK


def _ustar_name(header: bytes) -> bytes:
    name = header[0:100].split(b"\0", 1)[0]
    if header[257:263] == b"ustar\0":  # POSIX ustar; GNU's "ustar  " uses the prefix field for other things
        prefix = header[345:500].split(b"\0", 1)[0]
        if prefix:
            return prefix + b"/" + name
    return name


def _verify_checksum(header: bytes, stream: _TarStream) -> None:
    stored = _tar_number(header[148:156], stream)
    blanked = header[:148] + b" " * 8 + header[156:]
    unsigned = sum(blanked)
    signed = unsigned - 256 * sum(1 for b in blanked if b > 127)
    if stored not in (unsigned, signed):
        raise stream.corrupt("a tar header has a bad checksum")


def _tar_number(field: bytes, stream: _TarStream) -> int:
    if field[:1] == b"\x80":  # GNU base-256, positive
        return int.from_bytes(field[1:], "big")
    text = field.split(b"\0", 1)[0].strip(b" ")
    try:
        return int(text, 8) if text else 0
    except ValueError:
        raise stream.corrupt(f"a tar header has a bad number {shorten(field)}") from None


def _parse_pax(data: bytes, stream: _TarStream) -> dict[bytes, bytes]:
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


def _pax_int(text: bytes, stream: _TarStream) -> int:
    if not text.isdigit():
        raise stream.corrupt(f"a PAX header has a bad number {shorten(text)}")
    return int(text)


# ----------------------------------------------------------------------------------------------------------- zip


def _collect_zip(stream: _Prefixed, tree: _Tree, upload: str, work: Path) -> None:
    rest = stream._rest
    seekable = getattr(rest, "seekable", None)
    if callable(seekable) and seekable() and hasattr(rest, "seek"):
        rest.seek(0)
        _read_zip(rest, tree, upload)  # type: ignore[arg-type]
        return
    # zipfile needs random access: spool the upload itself, within the expanded-size budget
    with (work / "upload.zip").open("w+b") as copy:
        copied = 0
        while data := stream.read(_CHUNK):
            copied += len(data)
            if copied > tree.limits.max_total_bytes:
                raise StagingError(
                    upload, f"is more than {tree.limits.max_total_bytes} bytes; that is the most read", rule="limit"
                )
            copy.write(data)
        copy.seek(0)
        _read_zip(copy, tree, upload)


def _read_zip(fp: BinaryIO, tree: _Tree, upload: str) -> None:
    _zip_precheck(fp, tree.limits, upload)
    read = [0]
    tree.compressed = lambda: read[0]
    try:
        archive = zipfile.ZipFile(fp)
    except UnicodeDecodeError as exc:  # a name flagged UTF-8 that is not: zipfile decodes every name up front
        raise StagingError(
            shorten(exc.object), "is not a valid UTF-8 name; rename it or build the archive as UTF-8", rule="name"
        ) from exc
    except (zipfile.BadZipFile, ValueError, EOFError, OSError, NotImplementedError) as exc:
        # NotImplementedError: a central directory claiming a zip version zipfile cannot read
        raise StagingError(upload, f"is not a valid zip archive ({exc})", rule="corrupt") from exc
    with archive:
        for info in archive.infolist():
            name = _zip_name(info)
            if info.flag_bits & 0x1:
                raise StagingError(_where(name), "is encrypted; upload an archive without passwords", rule="encrypted")
            read[0] += info.compress_size + 30 + len(info.orig_filename)
            mode = info.external_attr >> 16 if info.create_system == 3 else 0
            kind = _zip_kind(mode, name)
            tree.add(_Raw(name, kind, bool(mode & 0o111), info.file_size, _zip_chunks(archive, info, name, upload)))


def _zip_chunks(archive: zipfile.ZipFile, info: zipfile.ZipInfo, name: str, upload: str) -> Iterator[bytes]:
    try:
        with archive.open(info) as member:
            while chunk := member.read(_CHUNK):
                yield chunk
    except (zipfile.BadZipFile, zlib.error, EOFError, NotImplementedError, RuntimeError, ValueError) as exc:
        raise StagingError(_where(name), f"cannot be read from the zip archive ({exc})", rule="corrupt") from exc


def _zip_name(info: zipfile.ZipInfo) -> str:
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


def _zip_kind(mode: int, name: str) -> _Kind:
    fmt = stat.S_IFMT(mode)
    if fmt == 0:
        return "dir" if name.endswith("/") else "file"
    kinds: dict[int, _Kind] = {
        stat.S_IFREG: "file",
        stat.S_IFDIR: "dir",
        stat.S_IFLNK: "symlink",
        stat.S_IFCHR: "device",
        stat.S_IFBLK: "device",
        stat.S_IFIFO: "fifo",
        stat.S_IFSOCK: "socket",
    }
    return kinds.get(fmt, "other")


def _zip_precheck(fp: BinaryIO, limits: Limits, upload: str) -> None:
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
    if entries > limits.max_members:
        raise StagingError(
            upload, f"declares {entries} members; an upload holds at most {limits.max_members}", rule="limit"
        )
    if cd_size > entries * (46 + limits.max_name_length + 1024):
        raise StagingError(upload, f"has a {cd_size}-byte central directory for {entries} members", rule="corrupt")


# -------------------------------------------------------------------------------------------------------- script


def _collect_script(src: ReadableStream, tree: _Tree, upload: str) -> Manifest | None:
    name = _normalise(upload.replace("\\", "/").rpartition("/")[2], tree.limits)
    stream = _Prefixed(b"", src)
    tree.compressed = lambda: stream.consumed

    def chunks() -> Iterator[bytes]:
        while data := stream.read(_CHUNK):
            yield data

    tree.add(_Raw(name, "file", False, 0, chunks()))
    script = tree.entries[0]
    if script.size == 0:
        raise StagingError(name, "is empty (0 bytes); expected a Python script", rule="empty")
    manifest = find_manifest({name: tree.read(script, tree.limits.max_manifest_bytes)}, script=name)
    if manifest is not None and manifest.dependencies:
        # one requirement per line in the order written: pip resolves them together, so order carries no meaning,
        # and keeping it lets the user recognise the file
        text = "".join(f"{dep}\n" for dep in manifest.dependencies).encode()
        tree.add(_Raw("requirements.txt", "file", False, len(text), iter([text])))
    return manifest


# -------------------------------------------------------------------------------------------------------- output


def _tar_header(name: str, *, mode: int, size: int, typeflag: bytes) -> bytes:
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
    return pax + data + bytes(_padded(len(data)) - len(data)) + block


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
    h = bytearray(_BLOCK)
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
