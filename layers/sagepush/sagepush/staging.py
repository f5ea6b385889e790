"""Staging: an uploaded archive, script or manifest in, a reproducible, content-addressed sourcedir.tar.gz out.

This module is the orchestration and the member rules (paths, kinds, limits, ignore files, secrets by name and
content); the formats are read by `ustar` and `ziparchive` (both yield `archive.Member`), secrets are recognised by
`secretscan`, the output is deflated by `deflate` and written to S3 by `s3stream`.
"""

from __future__ import annotations

import contextlib
import difflib
import functools
import hashlib
import io
import os
import re
import tempfile
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO, Final, Literal

from isal import igzip_threaded

from sagepush import archive, s3stream, secretscan, ustar, ziparchive
from sagepush.archive import Kind, Member, ReadableStream, StagingError, where
from sagepush.deflate import GzipWriter, SupportsWrite
from sagepush.errors import shorten
from sagepush.spec import MANIFEST_NAMES, Manifest, SpecError, code_layout, find_manifest

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator, Mapping

    from mypy_boto3_s3 import S3Client

    BeforeUpload = Callable[[Manifest | None, str, str, Mapping[str, str], frozenset[str]], bool | None]
    """Called with the manifest, the code digest, the staged URI, the upload's metadata and the staged files, before
    staging writes anything; False when the job needs no code (nothing is written, the URI is then "")."""

OUTPUT_NAME: Final = "sourcedir.tar.gz"
"""File name of the staged code, as the SageMaker SDK names it."""

IGNORE_FILE: Final = ".sagepushignore"

_KiB: Final = 1024
_MiB: Final = 1024 * _KiB
_GiB: Final = 1024 * _MiB
_CHUNK: Final = _MiB  # bytes read or written at a time
_RATIO_FLOOR: Final = _MiB  # the ratio rule allows max_ratio x 1 MiB before it compares against the bytes read
_NAME_MAX: Final = 255  # bytes in one path component (Linux NAME_MAX)
_SNIFF: Final = 64 * _KiB  # bytes of a suspected secret that are looked at
UPLOAD_SUFFIXES: Final = (".tar.gz", ".tgz", ".tar", ".zip", ".py", ".toml")
"""The uploads staging accepts: archives, a single script, or a manifest alone (a job that runs its image's own
entrypoint needs no code)."""

# Dropped wherever they appear (component names); `.git` also as the file a submodule checkout leaves.
_DROP_DIRS: Final = frozenset(
    {".git", "__pycache__", "__MACOSX", ".ipynb_checkpoints", ".mypy_cache", ".pytest_cache", ".ruff_cache"}
)
_DROP_FILES: Final = frozenset({".DS_Store", ".git"})
_DROP_SUFFIXES: Final = (".pyc", ".pyo")

_DRIVE = re.compile(r"^[A-Za-z]:")
_METADATA_KEYS: Final = ("sagepush-commit", "sagepush-branch", "sagepush-repo", "sagepush-author")
_STAGED_OBJECT_ARGS: Final = {"ContentType": "application/gzip"}

_Format = Literal["tar.gz", "tar", "zip", "py", "toml"]


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


# --------------------------------------------------------------------------------------------------- entry point


def stage_archive(src: ReadableStream, dst: BinaryIO, *, filename: str, limits: Limits = DEFAULT_LIMITS) -> StagedCode:
    """Repack the upload read from `src` (named `filename`) into a reproducible sourcedir.tar.gz written to `dst`.

    `filename`'s suffix picks the format (`.tar.gz .tgz .tar .zip .py`) and the leading bytes must agree. Memory
    stays bounded: member data is spooled to a temporary file and only metadata is kept. Nothing is written to `dst`
    until every rule has passed. If every path sits under one top-level directory (`git archive --prefix`, GitHub
    tarballs), that directory is stripped so the entry point lands at the root, where SageMaker looks for it. The
    manifest's `source_dir` and `dependencies` then lay the code out as the SageMaker SDK does (`_lay_out`).

    Raises:
        StagingError: the upload breaks a rule; `where` names the member or the upload.
        SpecError: the manifest in the upload is not valid TOML, or its `source_dir` or `dependencies` name what the
            upload does not hold (or two paths that would be staged under one name).
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
                yield ustar.header(name, mode=0o755, size=0, typeflag=b"5")
                continue
            yield ustar.header(name, mode=0o755 if entry.executable else 0o644, size=entry.size, typeflag=b"0")
            offset, end = entry.offset, entry.offset + entry.size
            while offset < end:
                data = os.pread(fd, min(_CHUNK, end - offset), offset)
                if not data:
                    raise OSError(f"the staging spool ended early at byte {offset}")
                yield data
                offset += len(data)
            if entry.size % ustar.BLOCK:
                yield bytes(ustar.padded(entry.size) - entry.size)
        yield ustar.END

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
        elif fmt == "toml":
            manifest = _collect_manifest(src, tree, filename)
        else:
            _collect_archive(src, fmt, tree, filename, Path(work))
            tree.finish()
            manifest = _root_manifest(tree)
        _check_secrets(tree, manifest, script=fmt == "py")
        yield _Collected(tree, _listed(_lay_out(tree, manifest)), manifest)


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
    leaves no code behind); when it returns False the job needs no code, and nothing is written (`uri` is "").

    Idempotent: the destination is addressed by the staged code's digest, known as soon as the upload is read, so
    code already there is reused without being compressed or uploaded again. Otherwise sourcedir.tar.gz is compressed
    straight into a (multipart) upload, never written to disk. Uses the upload's file name (the key's last segment)
    to pick its format. Needs about the expanded size in temporary disk space.

    Raises:
        StagingError: the upload breaks a rule.
        SpecError: as `stage_archive`.
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
                uri = f"s3://{dest_bucket}/{dest_key}"
                if before_upload(collected.manifest, digest, uri, _metadata(response), files) is False:
                    # The job runs its image's own entrypoint: nothing to stage.
                    code = collected.code(digest, 0)
                    return StagedObject(uri="", reused=False, code=code, metadata=_metadata(response))
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
    kind: Kind
    executable: bool = False
    offset: int = 0
    size: int = 0
    sha256: bytes = b""
    secret: str | None = None  # what the content scan found, as `secretscan.by_content` words it


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

    def add(self, raw: Member) -> None:
        """Validate one member, spool its data, and stop at the first rule it breaks."""
        self._members += 1
        if self._members > self.limits.max_members:
            raise StagingError(
                where(raw.name),
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
                where(raw.name), f"appears twice: it names {same}; paths must be unique", rule="duplicate"
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

    def _spool(self, entry: _Entry, raw: Member) -> None:
        """Append a file's data to the spool, hashing it and scanning its head for secrets on the way."""
        entry.offset = self._offset
        write, sha = self.spool.write, hashlib.sha256()
        head = b""  # the first SCAN_BYTES, scanned in memory: usually the first chunk itself, not a copy
        for chunk in self._count(raw):
            write(chunk)
            sha.update(chunk)
            self._offset += len(chunk)
            if len(head) < secretscan.SCAN_BYTES:
                head = head + chunk[: secretscan.SCAN_BYTES - len(head)] if head else chunk[: secretscan.SCAN_BYTES]
        entry.size = self._offset - entry.offset
        entry.sha256 = sha.digest()
        entry.secret = secretscan.by_content(head)

    def _count(self, raw: Member) -> Iterator[bytes]:
        size = 0
        for chunk in raw.chunks:
            size += len(chunk)
            if size > self.limits.max_member_bytes:
                raise self._too_big(raw.name, size)
            self.account(len(chunk), raw.name)
            yield chunk

    def _too_big(self, name: str, size: int) -> StagingError:
        return StagingError(
            where(name),
            f"expands to {size} bytes or more; one member may be at most {self.limits.max_member_bytes} bytes",
            rule="limit",
        )

    def account(self, size: int, name: str) -> None:
        """Count `size` more expanded bytes read for member `name`; stop when a size or ratio limit is crossed."""
        self._total += size
        limits = self.limits
        if self._total > limits.max_total_bytes:
            raise StagingError(
                where(name),
                f"brings the expanded upload to {self._total} bytes; the whole may be at most "
                f"{limits.max_total_bytes} bytes",
                rule="limit",
            )
        compressed = self.compressed()
        if self._total > limits.max_ratio * max(compressed, _RATIO_FLOOR):
            raise StagingError(
                where(name),
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
                    where(self.out_name(entry)),
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
                        where(name), f"sits under {parent!r}, which is a file; a path cannot be both", rule="duplicate"
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
                where(self.out_name(entry)), f"is {entry.size} bytes; it may be at most {limit} bytes", rule="limit"
            )
        return self.head(entry, entry.size)

    def head(self, entry: _Entry, size: int) -> bytes:
        self.spool.flush()
        return os.pread(self.spool.fileno(), min(size, entry.size), entry.offset)

    def files(self) -> dict[str, _Entry]:
        """Every kept file by its path in the project (the single top-level directory stripped)."""
        return {self.out_name(entry): entry for entry in self.entries}


def _listed(files: Mapping[str, _Entry]) -> list[tuple[str, _Entry | None]]:
    """Return the output members, sorted: every file plus each directory above one (None)."""
    members: dict[str, _Entry | None] = {}
    for name, entry in files.items():
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


def _normalise(name: str, limits: Limits) -> str:
    """Return the member path with `./`, empty components and a trailing slash removed; refuse unsafe paths."""
    at = where(name)
    if "\\" in name:
        raise StagingError(at, "contains a backslash; archive paths must use forward slashes", rule="path")
    if _DRIVE.match(name):
        raise StagingError(at, "starts with a drive letter; expected a path relative to the archive root", rule="path")
    if name.startswith("/"):
        raise StagingError(at, "is an absolute path; expected a path relative to the archive root", rule="path")
    if archive.CONTROL.search(name):
        raise StagingError(at, "contains a control character; expected printable path names", rule="name")
    parts = [p for p in name.split("/") if p not in ("", ".")]
    if ".." in parts:
        raise StagingError(at, "contains '..'; paths must stay inside the archive root", rule="path")
    for part in parts:
        if len(part.encode()) > _NAME_MAX:
            raise StagingError(
                at, f"has a component of {len(part.encode())} bytes; at most {_NAME_MAX} are allowed", rule="name"
            )
    normal = "/".join(parts)
    if len(normal.encode()) > limits.max_name_length:
        raise StagingError(
            at,
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


# -------------------------------------------------------------------------------------- source_dir, dependencies


def _lay_out(tree: _Tree, manifest: Manifest | None) -> dict[str, _Entry]:
    """Return the staged files by their path in sourcedir.tar.gz, as the SageMaker SDK's `tar_and_upload_dir` lays
    them out: `source_dir`'s contents at the root (without one, the whole project), each of `dependencies` at the
    root under its name. The manifest stays at the root beside source_dir's contents: it is the job's record, and
    part of the code's digest.

    Raises:
        SpecError: source_dir or a dependency is not in the project, or two staged paths would take one name.
    """
    layout = code_layout(manifest)
    project = tree.files()
    base = layout.source_dir
    if base is None:
        staged = dict(project)
    else:
        staged = {name[len(base) + 1 :]: entry for name, entry in project.items() if name.startswith(f"{base}/")}
        if not staged:
            what = "a file" if base in project else "not a directory of the code"
            raise SpecError(layout.where_source_dir, f"{base!r} is {what}{_missing_hint(tree, base, project)}")
        if manifest is not None and manifest.source in project:
            if manifest.source in staged:
                raise SpecError(
                    layout.where_source_dir,
                    f"{base!r} holds {manifest.source}, the name the manifest ({manifest.source} at the project "
                    "root) is staged under beside source_dir's contents; rename one of them",
                )
            staged[manifest.source] = project[manifest.source]
    where_root = f"source_dir {base!r}" if base is not None else "the project root"
    roots = {name.split("/")[0] for name in staged}
    taken: dict[str, str] = {}  # staged name -> the dependency staged under it
    for dependency in layout.dependencies:
        name = dependency.rpartition("/")[2]
        if dependency in project:
            found = {name: project[dependency]}
        else:
            cut = len(dependency) + 1
            found = {f"{name}/{p[cut:]}": e for p, e in project.items() if p.startswith(f"{dependency}/")}
        if not found:
            raise SpecError(
                layout.where_dependencies,
                f"{dependency!r} is not a file or folder of the project{_missing_hint(tree, dependency, project)}",
            )
        if name in taken:
            raise SpecError(
                layout.where_dependencies,
                f"{taken[name]!r} and {dependency!r} would both be staged at the code's root as {name!r}; "
                "rename one of them",
            )
        taken[name] = dependency
        if dependency == (f"{base}/{name}" if base is not None else name):
            continue  # already there: source_dir's own
        if name in roots:
            raise SpecError(
                layout.where_dependencies,
                f"{dependency!r} would be staged at the code's root as {name!r}, a name {where_root} already holds; "
                "rename one of them",
            )
        staged.update(found)
    return staged


def _missing_hint(tree: _Tree, path: str, project: Mapping[str, _Entry]) -> str:
    """Why `path` is not among the project's staged files, or the nearest paths that are."""
    if path in tree.dropped or f"{path}/" in tree.dropped or any(d.startswith(f"{path}/") for d in tree.dropped):
        return f" (it is left out: {IGNORE_FILE}, or a cache or VCS folder)"
    names = {p for name in project for p in _with_parents(name)}
    close = difflib.get_close_matches(path, sorted(names), n=3)
    return f"; did you mean {', '.join(repr(c) for c in close)}?" if close else ""


def _with_parents(name: str) -> Iterator[str]:
    while name:
        yield name
        name = name.rpartition("/")[0]


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
        reason = secretscan.by_name(name, functools.partial(tree.head, entry, _SNIFF)) or entry.secret
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
    if lower.endswith(".toml"):
        return "toml"
    raise StagingError(
        filename,
        "has an unsupported suffix; expected .tar.gz, .tgz, .tar, .zip, a single .py script or a sagepush.toml",
        rule="format",
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
    head = _read_head(src, ustar.BLOCK)
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
        for raw in ustar.read_tar(ustar.TarStream(reader, upload), tree.account):
            tree.add(raw)


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
    members = ziparchive.ZipMembers(
        fp, upload, max_members=tree.limits.max_members, max_name_length=tree.limits.max_name_length
    )
    tree.compressed = members.compressed
    for member in members:
        tree.add(member)


# ------------------------------------------------------------------------------------------------ script, manifest


def _collect_manifest(src: ReadableStream, tree: _Tree, upload: str) -> Manifest | None:
    """A manifest uploaded alone (any `*.toml` name): staged as `sagepush.toml`, the only member."""
    data = _read_head(src, tree.limits.max_manifest_bytes + 1)
    if len(data) > tree.limits.max_manifest_bytes:
        raise StagingError(
            upload, f"is over {tree.limits.max_manifest_bytes} bytes; a manifest is at most that", rule="limit"
        )
    if not data:
        raise StagingError(upload, "is empty (0 bytes); expected a sagepush.toml manifest", rule="empty")
    tree.compressed = lambda: len(data)
    tree.add(Member(MANIFEST_NAMES[0], "file", False, len(data), iter([data])))
    return find_manifest({MANIFEST_NAMES[0]: data})


def _collect_script(src: ReadableStream, tree: _Tree, upload: str) -> Manifest | None:
    name = _normalise(upload.replace("\\", "/").rpartition("/")[2], tree.limits)
    stream = _Prefixed(b"", src)
    tree.compressed = lambda: stream.consumed

    def chunks() -> Iterator[bytes]:
        while data := stream.read(_CHUNK):
            yield data

    tree.add(Member(name, "file", False, 0, chunks()))
    script = tree.entries[0]
    if script.size == 0:
        raise StagingError(name, "is empty (0 bytes); expected a Python script", rule="empty")
    manifest = find_manifest({name: tree.read(script, tree.limits.max_manifest_bytes)}, script=name)
    if manifest is not None and manifest.requirements:
        # one requirement per line in the order written: pip resolves them together, so order carries no meaning,
        # and keeping it lets the user recognise the file
        text = "".join(f"{requirement}\n" for requirement in manifest.requirements).encode()
        tree.add(Member("requirements.txt", "file", False, len(text), iter([text])))
    return manifest


__all__ = [
    "DEFAULT_LIMITS",
    "IGNORE_FILE",
    "LISTING_VERSION",
    "OUTPUT_NAME",
    "UPLOAD_SUFFIXES",
    "Limits",
    "ReadableStream",
    "StagedCode",
    "StagedObject",
    "StagingError",
    "stage_archive",
    "stage_object",
    "tree_listing",
]
