"""Repacking: a job's model.tar.gz and its staged code joined into one model archive, the code under `code/`.

The serving containers of PyTorch, HuggingFace and TensorFlow read the inference code from the model directory
(`/opt/ml/model/code`), not from `SAGEMAKER_SUBMIT_DIRECTORY`'s S3 address, so the SageMaker SDK repacks their models
(`sagemaker.utils.repack_model`): it extracts model.tar.gz, extracts the code's sourcedir.tar.gz into `code/` over
it (a file of the model's `code/` that the code also holds is replaced; the rest stays), and packs the directory
again. The staged sourcedir.tar.gz is already laid out as the SDK lays out `source_dir` and `dependencies` (`lib/…`),
so it goes under `code/` as it is.

`repack` does the same as a stream: both archives are read from S3 member by member and the new archive is deflated
(`deflate.GzipWriter`) straight into a multipart upload (`s3stream.upload_stream`), so memory stays at a few chunks
whatever the model's size and nothing is written to disk. The output depends only on the two inputs (fixed headers
from `ustar.header`, deterministic deflate), so a retried registration writes the same bytes to the same key.

A model member that is a link, a device or anything but a file or directory, or whose path is absolute or leaves the
archive root, is refused with a StagingError naming it, as staging refuses an upload's.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Final

from isal import igzip_threaded

from sagepush import archive, s3stream, ustar
from sagepush.archive import Member, StagingError, where
from sagepush.deflate import GzipWriter

if TYPE_CHECKING:
    from collections.abc import Iterator

    from mypy_boto3_s3 import S3Client

CODE_DIR: Final = "code"
"""Where the inference code goes in the repacked model: the container's /opt/ml/model/code."""
SUBMIT_DIRECTORY: Final = "/opt/ml/model/code"
"""SAGEMAKER_SUBMIT_DIRECTORY of a repacked model."""
REPACKED_NAME: Final = "model-repacked.tar.gz"
"""The repacked model's file name, next to the job's model.tar.gz."""
_DRIVE: Final = re.compile(r"^[A-Za-z]:")
_OBJECT_ARGS: Final = {"ContentType": "application/gzip"}


# The frameworks whose SDK model repacks the model with its inference code (`Model._upload_code(repack=True)`), because
# their serving containers read it from /opt/ml/model/code: PyTorchModel from version 1.2 (`_is_mms_version`; every
# version sagepush resolves), HuggingFaceModel always, TensorFlowModel whenever it has an entry point. SKLearnModel and
# XGBoostModel repack only with network isolation, which sagepush does not set: their containers download the code.
REPACKED_FRAMEWORKS: Final = frozenset({"pytorch", "huggingface", "tensorflow"})
_LOWEST_REPACKED_PYTORCH: Final = (1, 2)


def repacked_by_the_sdk(framework: str | None, framework_version: str | None) -> bool:
    """Whether the SDK serves `framework`'s model repacked with its code (and so does sagepush)."""
    if framework == "pytorch":
        return _version_tuple(framework_version or "") >= _LOWEST_REPACKED_PYTORCH
    return framework in REPACKED_FRAMEWORKS


def _version_tuple(version: str) -> tuple[int, ...]:
    numbers = []
    for part in version.split("."):
        if not part.isdigit():
            break
        numbers.append(int(part))
    return tuple(numbers)


def repacked_uri(model_data_url: str) -> str:
    """Where a job's repacked model goes: REPACKED_NAME next to its model.tar.gz
    (`s3://…/<job>/output/model.tar.gz` → `s3://…/<job>/output/model-repacked.tar.gz`)."""
    bucket, key = _location(model_data_url, "the model data")
    prefix = key.rpartition("/")[0]
    return f"s3://{bucket}/{prefix}/{REPACKED_NAME}" if prefix else f"s3://{bucket}/{REPACKED_NAME}"


def repack(*, s3: S3Client, model_data_url: str, code_uri: str, destination: str | None = None) -> str:
    """Write the model at `model_data_url` with the code at `code_uri` under `code/` to `destination` (default:
    `repacked_uri(model_data_url)`); return its S3 address.

    Raises:
        StagingError: a model member is refused (named), or either archive is not a valid tar.gz.
    """
    destination = destination or repacked_uri(model_data_url)
    bucket, key = _location(destination, "the repacked model")
    code_files = frozenset(member_name for member_name, kind in _listing(s3, code_uri) if kind == "file")

    def produce(pipe: s3stream.Pipe) -> None:
        with GzipWriter(pipe) as gz:
            written_dirs: set[str] = set()
            for member in _members(s3, model_data_url, "the model"):
                name = _model_member_name(member, model_data_url)
                if not name:
                    _drain(member.chunks)
                    continue
                if name == CODE_DIR and member.kind == "file":
                    raise StagingError(
                        where(member.name),
                        f"in {model_data_url} is a file named {CODE_DIR!r}; the inference code goes in that directory",
                        rule="path",
                    )
                if (
                    member.kind == "file"
                    and name.startswith(f"{CODE_DIR}/")
                    and name[len(CODE_DIR) + 1 :] in code_files
                ):
                    _drain(member.chunks)  # replaced by the code's own file, as the SDK's extraction over it does
                    continue
                _write_member(gz, name, member, written_dirs)
            _write_dir(gz, CODE_DIR, written_dirs)
            for member in _members(s3, code_uri, "the staged code"):
                name = _code_member_name(member, code_uri)
                if not name:
                    _drain(member.chunks)
                    continue
                _write_member(gz, f"{CODE_DIR}/{name}", member, written_dirs)
            gz.write(ustar.END)

    s3stream.upload_stream(produce, s3=s3, bucket=bucket, key=key, extra_args=_OBJECT_ARGS)
    return f"s3://{bucket}/{key}"


def _write_member(gz: GzipWriter, name: str, member: Member, written_dirs: set[str]) -> None:
    if member.kind == "dir":
        _write_dir(gz, name, written_dirs)
        return
    gz.write(ustar.header(name, mode=0o755 if member.executable else 0o644, size=member.size, typeflag=b"0"))
    for chunk in member.chunks:
        gz.write(chunk)
    gz.write(bytes(ustar.padded(member.size) - member.size))


def _write_dir(gz: GzipWriter, name: str, written_dirs: set[str]) -> None:
    if name in written_dirs:
        return
    written_dirs.add(name)
    gz.write(ustar.header(f"{name}/", mode=0o755, size=0, typeflag=b"5"))


def _model_member_name(member: Member, uri: str) -> str:
    """The member's normalised path (`./` and empty components dropped; "" for the root), or a StagingError."""
    at = where(member.name)
    if member.kind not in ("file", "dir"):
        kind = {"symlink": "a symbolic link", "hardlink": "a hard link"}.get(member.kind, f"a {member.kind}")
        raise StagingError(at, f"in {uri} is {kind}; a model archive may hold only files and directories", rule="type")
    name = member.name
    if "\\" in name or _DRIVE.match(name) or name.startswith("/"):
        raise StagingError(at, f"in {uri} is an absolute path; expected a path relative to the model", rule="path")
    if archive.CONTROL.search(name):
        raise StagingError(at, f"in {uri} contains a control character; expected printable path names", rule="name")
    parts = [part for part in name.split("/") if part not in ("", ".")]
    if ".." in parts:
        raise StagingError(at, f"in {uri} contains '..'; paths must stay inside the model", rule="path")
    return "/".join(parts)


def _code_member_name(member: Member, uri: str) -> str:
    # The staged code was checked when it was staged (`staging`); it is held to the same rules again here.
    return _model_member_name(member, uri)


def _listing(s3: S3Client, uri: str) -> Iterator[tuple[str, str]]:
    for member in _members(s3, uri, "the staged code"):
        name = _code_member_name(member, uri)
        _drain(member.chunks)
        yield name, member.kind


def _members(s3: S3Client, uri: str, what: str) -> Iterator[Member]:
    """The members of the tar.gz at `uri`, streamed as they are read."""
    bucket, key = _location(uri, what)
    body = s3.get_object(Bucket=bucket, Key=key)["Body"]
    try:
        reader = igzip_threaded.open(body, "rb", threads=1, block_size=archive.CHUNK // 4)  # type: ignore[no-untyped-call]
        with reader:
            yield from ustar.read_tar(ustar.TarStream(reader, uri), _no_limit)
    finally:
        body.close()


def _no_limit(size: int, name: str) -> None:
    """The archives were written by SageMaker and by staging: read as they are (each PAX header is still bounded)."""


def _drain(chunks: Iterator[bytes]) -> None:
    for _ in chunks:
        pass


def _location(uri: str, what: str) -> tuple[str, str]:
    bucket, _, key = uri.removeprefix("s3://").partition("/")
    if not uri.startswith("s3://") or not bucket or not key or key.endswith("/"):
        raise StagingError(uri, f"is {what}'s address, but not an S3 object's", rule="format")
    return bucket, key
