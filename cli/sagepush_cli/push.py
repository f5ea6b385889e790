"""`sagepush push`: archive a project, check it as the stage function will, and upload it to the ingest bucket."""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import re
import subprocess
import tarfile
import tempfile
import tomllib
import unicodedata
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, Final, Literal

from sagepush import aws, naming, policy, staging
from sagepush.errors import InputError, SagepushError, shorten
from sagepush_cli.project import project_name

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator, Mapping, Sequence

    import boto3
    from mypy_boto3_s3 import S3Client

INGEST_PREFIX: Final = "incoming/"
BUCKET_OUTPUT: Final = "IngestBucketName"
PROGRESS_THRESHOLD: Final = 4 * 1024 * 1024
LARGE_FILE_MB: Final = 50.0
"""A file in the code larger than this many megabytes (10**6 bytes) is named in a warning: every job downloads it."""
"""Uploads at least this many bytes show a progress bar (on a terminal only)."""

_MANIFEST: Final = "sagepush.toml"
_PYPROJECT: Final = "pyproject.toml"
_METADATA_VALUE_MAX: Final = 256
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")

SourceKind = Literal["commit", "worktree", "directory"]


class PushError(InputError):
    """The push is refused before anything is uploaded; `where` names the path, option or file to fix."""


class PushRefusedError(SagepushError):
    """AWS refused the push (access denied, no credentials, endpoint unreachable); nothing was uploaded."""


@dataclass(frozen=True, slots=True)
class GitState:
    """The git facts about a project directory: where its repository is and what HEAD says."""

    root: Path
    prefix: str  # the project directory relative to the root, POSIX, "" at the root
    commit: str | None  # None before the first commit
    branch: str
    repo: str
    author: str
    changed: tuple[str, ...]  # tracked paths with uncommitted changes, under the project directory
    untracked: tuple[str, ...]  # untracked, not ignored paths under the project directory


@dataclass(frozen=True, slots=True)
class Source:
    """What a push archives: the files of a commit, of a git working tree, or of a plain directory."""

    path: Path
    kind: SourceKind
    git: GitState | None = None

    def metadata(self) -> dict[str, str]:
        """Return the `sagepush-*` object metadata: commit, branch, repository and author, as S3 headers allow."""
        git = self.git
        if git is None:
            return {}
        commit = git.commit or ""
        if commit and self.kind == "worktree" and (git.changed or git.untracked):
            commit += "-dirty"
        values = {"commit": commit, "branch": git.branch, "repo": git.repo, "author": git.author}
        return {f"sagepush-{k}": _header_value(v) for k, v in values.items() if _header_value(v)}


@dataclass(frozen=True, slots=True)
class Pushed:
    """One upload: where it went, what it carried, and the job name it becomes (up to its upload part)."""

    bucket: str
    key: str
    size: int
    project: str
    source: SourceKind
    metadata: Mapping[str, str]
    staged: staging.StagedCode
    settings: tuple[Setting, ...] = ()
    left_out: tuple[str, ...] = ()  # untracked files a push of the commit does not carry
    attached: str | None = None  # the job an earlier push of this commit and code became; nothing was uploaded
    large_files: tuple[tuple[str, int], ...] = ()  # staged files over the warning threshold, largest first

    @property
    def uri(self) -> str:
        return f"s3://{self.bucket}/{self.key}"

    @property
    def job_name_prefix(self) -> str:
        """`<project>-<digest[:8]>-`: the job name without the part only the upload's S3 identity decides."""
        return job_name_prefix(self.project, self.staged.digest)

    def summary(self) -> dict[str, Any]:
        """Return a JSON-ready description for `--json`."""
        return {
            "uri": self.uri,
            "bucket": self.bucket,
            "key": self.key,
            "size": self.size,
            "project": self.project,
            "source": self.source,
            "metadata": dict(self.metadata),
            "settings": settings_table(self.settings),
            "left_out": list(self.left_out),
            "digest": self.staged.digest,
            "job_name_prefix": self.job_name_prefix,
            "attached": self.attached,
            "large_files": [{"path": path, "bytes": size} for path, size in self.large_files],
            "members": list(self.staged.members),
            "dropped": list(self.staged.dropped),
            "manifest": self.staged.manifest.source if self.staged.manifest else None,
        }


# --------------------------------------------------------------------------------------------------- entry point


def push(
    path: Path,
    *,
    session: boto3.Session,
    project: str | None = None,
    bucket: str | None = None,
    stack: str | None = None,
    settings: Sequence[str] = (),
    worktree: bool = False,
    samconfig: Path = Path("samconfig.toml"),
    progress: bool = False,
    now: dt.datetime | None = None,
    job_policy: policy.Policy | None = None,
    new: bool = False,
    large_file_mb: float = LARGE_FILE_MB,
    local: bool = False,
) -> Pushed:
    """Archive `path`, stage it locally under the stage function's rules, then upload the archive.

    Everything that can be checked on this machine is checked before any AWS call that writes: a dirty tree, a
    bad `--set`, secrets, links, bad manifests and jobs beyond the deployment's policy stop the push with nothing
    uploaded. With `progress`, an upload of
    `PROGRESS_THRESHOLD` bytes or more shows a progress bar on stderr.

    A commit already pushed with the same code and manifest (its upload tagged with a job of this code's name) is
    not uploaded again: the result is `attached` to that job, so a push run twice (a retried workflow, Ctrl-C during
    `--wait`) starts one job. `new` uploads anyway, and the upload becomes another job. Files in the staged code
    over `large_file_mb` megabytes are listed in `large_files`: they ship with the code to every job. With `local`
    (the target is `sagepush local up`), a job that runs its image's own entrypoint is refused before the upload:
    the local stack runs scripts, not containers.

    Raises:
        InputError: the project, an option or the archive is wrong (exit 2).
        PushRefusedError: AWS refused the upload (exit 1).
    """
    name = naming.check_project(project or project_name(path), where="--project")
    if bucket and stack:
        raise PushError("--bucket", "use either --bucket or --stack, not both")
    overrides = parse_settings(settings)
    source = inspect_source(path, worktree=worktree)
    key = upload_key(name, source, now or dt.datetime.now(dt.UTC))
    with tempfile.TemporaryDirectory(prefix="sagepush-push-") as work:
        archive = write_archive(source, Path(work) / "upload.tar.gz", overrides)
        with archive.open("rb") as src, (Path(work) / staging.OUTPUT_NAME).open("wb") as dst:
            staged = staging.stage_archive(src, dst, filename=key.rsplit("/", 1)[-1])
        target = resolve_bucket(session, bucket=bucket, stack=stack, samconfig=samconfig)
        requests = check_policy(
            staged,
            project=name,
            session=session,
            stack=stack,
            bucket=bucket,
            samconfig=samconfig,
            job_policy=job_policy,
        )
        if local:
            from sagepush_cli.local.trainer import why_not_runnable

            for request in requests:
                reason = why_not_runnable(request.get("HyperParameters", {}), request["AlgorithmSpecification"])
                if reason is not None:
                    raise PushError("--local", reason)
        metadata = source.metadata()
        size = archive.stat().st_size
        s3 = session.client("s3", config=aws.config("s3"))
        attached = None
        if source.kind == "commit" and not new:
            attached = earlier_job(s3, bucket=target, key=key, prefix=job_name_prefix(name, staged.digest))
        if attached is None:
            with contextlib.ExitStack() as bar:
                callback = None
                if progress and size >= PROGRESS_THRESHOLD:
                    callback = bar.enter_context(progress_bar(size, label=f"uploading {key.rsplit('/', 1)[-1]}"))
                upload_archive(archive, s3, bucket=target, key=key, metadata=metadata, callback=callback)
    return Pushed(
        bucket=target,
        key=key,
        size=size,
        project=name,
        source=source.kind,
        metadata=metadata,
        staged=staged,
        settings=overrides,
        left_out=source.git.untracked if source.kind == "commit" and source.git else (),
        attached=attached,
        large_files=tuple(staged.larger_than(int(large_file_mb * 1_000_000))),
    )


def job_name_prefix(project: str, digest: str) -> str:
    """`<project>-<digest[:8]>-`: the name of the job this code and manifest become, without the upload's part."""
    return naming.job_name(project, digest, "0" * 64).rsplit("-", 1)[0] + "-"


def earlier_job(s3: S3Client, *, bucket: str, key: str, prefix: str) -> str | None:
    """The job (or `[strategy]` push) an earlier upload to `key` became, when its name says it runs this code and
    manifest (`prefix`, `job_name_prefix`).

    None when there is no such upload, it is not staged yet, it was refused, it holds other code or another manifest
    (a different `--set`), or its tags cannot be read (the push role may tag-read only: a missing key is then
    AccessDenied): the push then uploads.
    """
    from botocore.exceptions import BotoCoreError, ClientError

    from sagepush.starting import UPLOAD_JOB_TAG, UPLOAD_PUSH_TAG

    try:
        tag_set = s3.get_object_tagging(Bucket=bucket, Key=key)["TagSet"]
    except (BotoCoreError, ClientError):
        return None
    tags = {tag["Key"]: tag["Value"] for tag in tag_set}
    # A push's name keeps room for its jobs' `-<n>`, so its project part may be cut shorter than a job's.
    project, digest = prefix.rstrip("-").rsplit("-", 1)
    push_prefix = naming.push_name(project, digest, "0" * 64).rsplit("-", 1)[0] + "-"
    for tag, wanted in ((UPLOAD_JOB_TAG, prefix), (UPLOAD_PUSH_TAG, push_prefix)):
        if tags.get(tag, "").startswith(wanted):
            return tags[tag]
    return None


def upload_key(project: str, source: Source, now: dt.datetime) -> str:
    """Return `incoming/<project>/<commit>.tar.gz` for a commit, else `incoming/<project>/<UTC time>.tar.gz`."""
    if source.kind == "commit" and source.git is not None and source.git.commit:
        stem = source.git.commit
    else:
        stem = now.astimezone(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
    return f"{INGEST_PREFIX}{project}/{stem}.tar.gz"


# ---------------------------------------------------------------------------------------------- --set overrides

Setting = tuple[tuple[str, ...], Any]
"""One `--set`: the key path (`("hyperparameters", "epochs")`) and the value."""


def parse_settings(settings: Sequence[str]) -> tuple[Setting, ...]:
    """Read `key=value` strings; a dotted key names a value inside nested tables.

    A value is read as a TOML value (`5`, `true`, `"2.5"`, `[1, 2]`, `{ a = 1 }`); anything else is a string.

    Raises:
        PushError: a setting has no `=`, its key is not a TOML key, or it sets inside a value that is not a table.
    """
    parsed: list[Setting] = []
    check: dict[str, Any] = {}
    for setting in settings:
        key, sep, raw = setting.partition("=")
        if not sep or not key.strip():
            raise PushError("--set", f"{shorten(setting)} is not key=value (like hyperparameters.epochs=5)")
        path, value = _key_path(key, setting), _toml_value(raw)
        _assign(check, path, value, where="--set", what=setting)
        parsed.append((path, value))
    return tuple(parsed)


def settings_table(settings: Sequence[Setting]) -> dict[str, Any]:
    """Return the settings as the nested table they make, the last setting of a key winning."""
    table: dict[str, Any] = {}
    for path, value in settings:
        _assign(table, path, value, where="--set", what=".".join(path))
    return table


def _key_path(key: str, setting: str) -> tuple[str, ...]:
    # TOML reads the key itself, so quoting works as in a manifest: tags."team.name"=ml
    try:
        document = tomllib.loads(f"{key.strip()} = 0")
    except tomllib.TOMLDecodeError:
        raise PushError("--set", f"{shorten(setting)}: {shorten(key.strip())} is not a TOML key") from None
    path: list[str] = []
    node: Any = document
    while isinstance(node, dict):
        [(name, node)] = node.items()
        path.append(name)
    return tuple(path)


def _toml_value(raw: str) -> Any:
    try:
        return tomllib.loads(f"v = {raw}")["v"]
    except tomllib.TOMLDecodeError:
        return raw


def _assign(
    table: dict[str, Any],
    path: tuple[str, ...],
    value: Any,
    *,
    where: str,
    what: str,
    new_table: Callable[[dict[str, Any]], dict[str, Any]] = lambda _: {},
) -> None:
    node = table
    for depth, name in enumerate(path[:-1]):
        if name not in node:
            node[name] = new_table(node)
        child = node[name]
        if not isinstance(child, dict):
            dotted = ".".join(path[: depth + 1])
            raise PushError(where, f"cannot set {shorten(what)}: `{dotted}` is {shorten(child)}, not a table")
        node = child
    node[path[-1]] = value


# ---------------------------------------------------------------------------------------------------- manifests


def manifest_with_settings(read: Callable[[str], bytes | None], settings: Sequence[Setting]) -> tuple[str, bytes]:
    """Return the root manifest file to write and its new text, with `settings` set in the spec table.

    The manifest staging would find is the one changed: `sagepush.toml` (its `[tool.sagepush]` table if it has
    one), else `[tool.sagepush]` in `pyproject.toml`; with neither, a new `sagepush.toml` holds the settings. The
    file keeps its comments, order and layout (tomlkit): only the values set change, and new keys are added.

    Raises:
        PushError: the manifest is not valid TOML, or a setting goes inside a value that is not a table.
    """
    import tomlkit

    name, text, expected = _MANIFEST, "", {}
    table: tuple[str, ...] = ()
    for candidate in (_MANIFEST, _PYPROJECT):
        data = read(candidate)
        if data is None:
            continue
        loaded = _load_toml(data, candidate)
        tool = loaded.get("tool")
        if isinstance(tool, dict) and "sagepush" in tool:
            name, text, expected, table = candidate, data.decode("utf-8"), loaded, ("tool", "sagepush")
            break
        if candidate == _MANIFEST:
            name, text, expected = candidate, data.decode("utf-8"), loaded
            break
    document = tomlkit.parse(text)
    for path, value in settings:
        where, what = name, ".".join(path)
        _assign(expected, (*table, *path), value, where=where, what=what)
        _assign(document, (*table, *path), _toml_item(value), where=where, what=what, new_table=_new_table)
    written = tomlkit.dumps(document)
    # Never stage a manifest that means something else than what was set. JSON compares as TOML does: NaN equals
    # NaN, and 1, 1.0 and true differ.
    if _canonical(tomllib.loads(written)) != _canonical(expected):
        raise PushError(name, "cannot write the --set values into it while keeping its layout: set them in the file")
    return name, written.encode()


def _canonical(document: Mapping[str, Any]) -> str:
    return json.dumps(document, sort_keys=True, default=repr)


def _new_table(parent: Mapping[str, Any]) -> dict[str, Any]:
    """The table a dotted --set key creates: a `[section]`, or an inline table inside one."""
    import tomlkit
    from tomlkit.items import InlineTable

    return tomlkit.inline_table() if isinstance(parent, InlineTable) else tomlkit.table()


def _toml_item(value: Any) -> Any:
    """A --set value as tomlkit writes it inline, as it was typed: `{ a = 1 }`, `[{ Name = "x" }]`."""
    import tomlkit

    if isinstance(value, dict):
        table = tomlkit.inline_table()
        table.update({key: _toml_item(item) for key, item in value.items()})
        return table
    if isinstance(value, list):
        array = tomlkit.array()
        array.extend(_toml_item(item) for item in value)
        return array
    return value


def _load_toml(data: bytes, where: str) -> dict[str, Any]:
    try:
        return tomllib.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise PushError(where, f"is not valid TOML ({exc}); fix it before setting values with --set") from exc


# ------------------------------------------------------------------------------------------------------ sources


def inspect_source(path: Path, *, worktree: bool = False) -> Source:
    """Decide what a push of `path` archives: HEAD's tree, the git working tree, or the plain directory.

    Raises:
        PushError: `path` is not a directory, or its git tree has uncommitted changes and `worktree` is off.
    """
    if not path.is_dir():
        raise PushError(str(path), "is not a directory; push a project directory")
    git = read_git_state(path)
    if git is None:
        return Source(path, "directory")
    if worktree:
        return Source(path, "worktree", git)
    if git.commit is None:
        raise PushError(str(path), "is in a git repository with no commits yet; commit first, or push with --worktree")
    if git.changed:
        listed = ", ".join(git.changed[:3]) + (f" and {len(git.changed) - 3} more" if len(git.changed) > 3 else "")
        raise PushError(
            str(path),
            f"has uncommitted changes ({listed}); commit them, or push the working tree with --worktree",
        )
    return Source(path, "commit", git)


def read_git_state(path: Path) -> GitState | None:
    """Return the git state of the repository holding `path`, or None when `path` is not in a git work tree."""
    try:
        found = _git(path, "rev-parse", "--show-toplevel", check=False)
    except FileNotFoundError:  # no git on this machine: a plain directory
        return None
    if found is None or not found.strip():
        return None
    root = Path(found.strip())
    prefix = path.resolve().relative_to(root.resolve()).as_posix()
    prefix = "" if prefix == "." else prefix
    commit = (_git(root, "rev-parse", "--verify", "--quiet", "HEAD^{commit}", check=False) or "").strip() or None
    branch = (_git(root, "symbolic-ref", "--quiet", "--short", "HEAD", check=False) or "").strip()
    remote = (_git(root, "config", "--get", "remote.origin.url", check=False) or "").strip()
    author = ""
    if commit:
        author = (_git(root, "log", "-1", "--format=%an <%ae>", "HEAD") or "").strip()
    changed, untracked = _status(root, prefix)
    return GitState(
        root=root,
        prefix=prefix,
        commit=commit,
        branch=branch,
        repo=_without_credentials(remote),
        author=author,
        changed=changed,
        untracked=untracked,
    )


def _status(root: Path, prefix: str) -> tuple[tuple[str, ...], tuple[str, ...]]:
    out = _git(root, "status", "--porcelain=v1", "-z", "--untracked-files=all", "--", prefix or ".") or ""
    changed: list[str] = []
    untracked: list[str] = []
    fields = iter(out.split("\0"))
    for entry in fields:
        if not entry:
            continue
        status, name = entry[:2], entry[3:]
        if status == "??":
            untracked.append(name)
            continue
        changed.append(name)
        if "R" in status or "C" in status:
            next(fields, None)  # a rename or copy carries its original path as the next field
    return tuple(changed), tuple(untracked)


def _without_credentials(url: str) -> str:
    # a remote URL may embed a token (https://user:token@host/...): it must never reach object metadata
    from urllib.parse import urlsplit, urlunsplit

    if "://" not in url:
        return url
    parts = urlsplit(url)
    host = parts.hostname or ""
    netloc = f"{host}:{parts.port}" if parts.port else host
    return urlunsplit(parts._replace(netloc=netloc))


def _header_value(value: str) -> str:
    # S3 user metadata travels as HTTP headers: ASCII only, no control characters
    ascii_text = unicodedata.normalize("NFKD", value).encode("ascii", "ignore").decode()
    return _CONTROL.sub("", ascii_text).strip()[:_METADATA_VALUE_MAX]


def _git(cwd: Path, *args: str, check: bool = True) -> str | None:
    """Run git in `cwd` and return its output; None when it fails and `check` is off."""
    done = subprocess.run(
        ["git", "-C", str(cwd), *args],
        capture_output=True,
        check=False,
        env={**os.environ, "GIT_TERMINAL_PROMPT": "0", "LC_ALL": "C"},
    )
    if done.returncode != 0:
        if not check:
            return None
        message = done.stderr.decode("utf-8", "replace").strip().splitlines()
        raise PushError(str(cwd), f"git {args[0]} failed: {message[-1] if message else f'exit {done.returncode}'}")
    return done.stdout.decode("utf-8", "surrogateescape")


# ------------------------------------------------------------------------------------------------------ archives

_Member = tuple[tarfile.TarInfo, "IO[bytes] | None"]


def write_archive(source: Source, destination: Path, settings: Sequence[Setting] = ()) -> Path:
    """Write `source` as a .tar.gz at `destination`, paths relative to the project directory.

    With `settings`, the root manifest is replaced by one with the settings written in, so the archive alone
    says what runs. Links and special files are archived as they are: staging then refuses them by name.
    """
    from isal import igzip

    replaced: str | None = None
    manifest = b""
    if settings:
        replaced, manifest = manifest_with_settings(lambda name: _read_root_file(source, name), settings)
    with (
        igzip.open(destination, "wb", compresslevel=1) as gz,  # type: ignore[no-untyped-call]
        tarfile.open(fileobj=gz, mode="w", format=tarfile.PAX_FORMAT) as out,
    ):
        for info, data in _members(source):
            if info.name == replaced:
                continue
            info.uid = info.gid = 0
            info.uname = info.gname = ""
            out.addfile(info, data)
        if replaced is not None:
            info = tarfile.TarInfo(replaced)
            info.size, info.mode, info.mtime = len(manifest), 0o644, int(dt.datetime.now(dt.UTC).timestamp())
            out.addfile(info, _bytes_io(manifest))
    return destination


def _bytes_io(data: bytes) -> IO[bytes]:
    import io

    return io.BytesIO(data)


def _members(source: Source) -> Iterator[_Member]:
    if source.kind == "commit":
        assert source.git is not None
        yield from _commit_members(source.git)
    elif source.kind == "worktree":
        assert source.git is not None
        yield from _file_members(source.path, _worktree_files(source.git))
    else:
        yield from _file_members(source.path, _directory_files(source.path))


def _commit_members(git: GitState) -> Iterator[_Member]:
    # `git archive` applies export-ignore and export-subst as a release tarball would
    strip = f"{git.prefix}/" if git.prefix else ""
    command = ["git", "-C", str(git.root), "archive", "--format=tar", "HEAD", "--", git.prefix or "."]
    # stderr goes to a file: a pipe nobody reads while the archive streams could fill and stall git
    with tempfile.TemporaryFile() as errors, subprocess.Popen(command, stdout=subprocess.PIPE, stderr=errors) as proc:
        assert proc.stdout is not None
        with tarfile.open(fileobj=proc.stdout, mode="r|") as tar:
            for info in tar:
                if not info.name.startswith(strip):
                    continue
                info.name = info.name[len(strip) :]
                yield info, tar.extractfile(info) if info.isreg() else None
        if proc.wait() != 0:
            errors.seek(0)
            message = errors.read().decode("utf-8", "replace").strip().splitlines()
            raise PushError(str(git.root), f"git archive failed: {message[-1] if message else 'no output'}")


def _worktree_files(git: GitState) -> list[str]:
    """Files git tracks plus untracked ones it does not ignore, minus export-ignore; relative to the project."""
    listed = _git(git.root, "ls-files", "-z", "--cached", "--others", "--exclude-standard", "--", git.prefix or ".")
    names = list(dict.fromkeys(n for n in (listed or "").split("\0") if n))
    ignored = _export_ignored(git.root, names)
    strip = len(git.prefix) + 1 if git.prefix else 0
    return [name[strip:] for name in names if name not in ignored]


def _export_ignored(root: Path, names: list[str]) -> set[str]:
    # a directory's export-ignore covers everything under it, as `git archive` treats it
    candidates = set(names)
    for name in names:
        parent = name.rpartition("/")[0]
        while parent:
            candidates.add(parent)
            parent = parent.rpartition("/")[0]
    if not candidates:
        return set()
    done = subprocess.run(
        ["git", "-C", str(root), "check-attr", "-z", "--stdin", "export-ignore"],
        input="\0".join(sorted(candidates)).encode() + b"\0",
        capture_output=True,
        check=True,
    )
    fields = done.stdout.decode("utf-8", "surrogateescape").split("\0")
    marked = {fields[i] for i in range(0, len(fields) - 2, 3) if fields[i + 2] == "set"}
    return {n for n in names if n in marked or any(p in marked for p in _parents(n))}


def _parents(name: str) -> Iterator[str]:
    parent = name.rpartition("/")[0]
    while parent:
        yield parent
        parent = parent.rpartition("/")[0]


def _directory_files(directory: Path) -> list[str]:
    names: list[str] = []
    for top, dirs, files in os.walk(directory):
        dirs[:] = sorted(d for d in dirs if d != ".git")
        here = Path(top).relative_to(directory)
        # a symlink to a directory is listed with the directories and not followed: archive it as the link it is
        links = [d for d in dirs if (Path(top) / d).is_symlink()]
        dirs[:] = [d for d in dirs if d not in links]
        names.extend((here / name).as_posix() for name in sorted([*files, *links]) if name != ".git")
    return names


def _file_members(directory: Path, names: list[str]) -> Iterator[_Member]:
    with tarfile.open(os.devnull, "w") as reader:  # only its gettarinfo is used
        for name in names:
            path = directory / name
            if not path.is_symlink() and not path.exists():
                continue  # tracked but deleted in the working tree
            # forget seen inodes: a hard-linked file is archived with its content each time, as git does
            reader.inodes.clear()  # type: ignore[attr-defined]
            info = reader.gettarinfo(str(path), arcname=name)
            if info is None:
                raise PushError(name, "is a socket or another file type an archive cannot hold; remove it")
            if info.isreg():
                with path.open("rb") as data:
                    yield info, data
            else:
                yield info, None


def _read_root_file(source: Source, name: str) -> bytes | None:
    if source.kind == "commit":
        assert source.git is not None
        spec = f"HEAD:{source.git.prefix}/{name}" if source.git.prefix else f"HEAD:{name}"
        done = subprocess.run(
            ["git", "-C", str(source.git.root), "cat-file", "blob", spec], capture_output=True, check=False
        )
        return done.stdout if done.returncode == 0 else None
    path = source.path / name
    return path.read_bytes() if path.is_file() and not path.is_symlink() else None


# ----------------------------------------------------------------------------------------------------------- AWS


def resolve_bucket(session: boto3.Session, *, bucket: str | None, stack: str | None, samconfig: Path) -> str:
    """Return the ingest bucket: `bucket`, else the `IngestBucketName` output of `stack` or samconfig's stack.

    Raises:
        PushError: no bucket or stack is given anywhere, or the stack does not exist or has no such output.
    """
    if bucket:
        return bucket
    if not stack and not samconfig_stack_name(samconfig):
        raise PushError(
            "--bucket", "no ingest bucket: pass --bucket or --stack, or run where samconfig.toml names a stack_name"
        )
    return deployed_output(session, BUCKET_OUTPUT, stack=stack, samconfig=samconfig)


def deployed_output(session: boto3.Session, output: str, *, stack: str | None, samconfig: Path) -> str:
    """Return the `output` of the sagepush stack `stack`, or of the stack samconfig.toml names.

    Raises:
        PushError: no stack is named anywhere, the stack does not exist, or it has no such output.
    """
    where, stack, outputs = deployed_outputs(session, stack=stack, samconfig=samconfig)
    found = outputs.get(output)
    if not found:
        raise PushError(where, f"stack {stack!r} has no {output} output; is it a sagepush stack?")
    return found


def deployed_outputs(session: boto3.Session, *, stack: str | None, samconfig: Path) -> tuple[str, str, dict[str, str]]:
    """Return where the stack was named (`--stack` or samconfig's stack_name), its name, and its outputs.

    Raises:
        PushError: no stack is named anywhere, or the stack does not exist.
    """
    from botocore.exceptions import ClientError

    where = "--stack"
    if not stack:
        stack = samconfig_stack_name(samconfig)
        where = f"{samconfig}: stack_name"
    if not stack:
        raise PushError("--stack", "no stack: pass --stack, or run where samconfig.toml names a stack_name")
    cloudformation = session.client("cloudformation", config=aws.config("cloudformation"))
    with aws_access():
        try:
            stacks = cloudformation.describe_stacks(StackName=stack)["Stacks"]
        except ClientError as exc:
            if _code(exc) != "ValidationError":  # CloudFormation's answer for a stack that does not exist
                raise
            message = exc.response.get("Error", {}).get("Message", "")
            raise PushError(
                where, f"stack {stack!r} is not in {session.region_name or 'this region'} ({message})"
            ) from exc
    outputs = {
        str(o["OutputKey"]): str(o["OutputValue"])
        for s in stacks
        for o in s.get("Outputs", [])
        if o.get("OutputKey") and o.get("OutputValue")
    }
    return where, stack, outputs


def check_policy(
    staged: staging.StagedCode,
    *,
    project: str,
    session: boto3.Session,
    stack: str | None,
    bucket: str | None,
    samconfig: Path,
    job_policy: policy.Policy | None,
) -> list[dict[str, Any]]:
    """Check the jobs a push would start (one, or each of its `[strategy]` matrix) against the deployment's policy,
    before anything is uploaded; return their requests.

    The policy is `job_policy` (--policy), else the stack's JobPolicy output, else the template's defaults; the
    role and buckets are the stack's when it is known.

    Raises:
        InputError: the manifest or request is wrong, or goes beyond the policy (PolicyError names each field).
    """
    from sagepush_cli import project as projects

    role, artifacts = None, projects.DEFAULT_ARTIFACT_BUCKET
    if bucket is None:
        _, _, outputs = deployed_outputs(session, stack=stack, samconfig=samconfig)
        role, artifacts = outputs.get("SageMakerRoleArn"), outputs.get("ArtifactBucketName", artifacts)
        if job_policy is None and "JobPolicy" in outputs:
            job_policy = policy.Policy.from_json(
                outputs["JobPolicy"], source=f"stack {stack or 'samconfig'}: JobPolicy"
            )
    return projects.render_staged_jobs(
        staged,
        project=project,
        region=session.region_name or "us-east-1",
        role=role,
        output_path=f"s3://{artifacts}/output/",
        artifact_bucket=artifacts,
        job_policy=job_policy,
    )


def samconfig_stack_name(samconfig: Path) -> str | None:
    """Return the default environment's `stack_name` from a samconfig.toml, if the file names one."""
    if not samconfig.is_file():
        return None
    document = _load_toml(samconfig.read_bytes(), str(samconfig))
    default = document.get("default", {})
    for command in ("global", "deploy"):
        name = default.get(command, {}).get("parameters", {}).get("stack_name")
        if isinstance(name, str) and name:
            return name
    return None


def upload_archive(
    archive: Path,
    s3: S3Client,
    *,
    bucket: str,
    key: str,
    metadata: Mapping[str, str],
    callback: Callable[[int], None] | None = None,
) -> None:
    """Upload `archive` to `s3://bucket/key` with `metadata`.

    Raises:
        PushError: the bucket does not exist.
        PushRefusedError: access is denied, or no credentials or endpoint are usable.
    """
    from botocore.exceptions import ClientError

    extra = {"Metadata": dict(metadata), "ContentType": "application/gzip"}
    with aws_access(), archive.open("rb") as body:
        try:
            s3.upload_fileobj(body, bucket, key, ExtraArgs=extra, Callback=callback)
        except ClientError as exc:
            code = _code(exc)
            if code == "NoSuchBucket":
                raise PushError("--bucket", f"bucket {bucket!r} does not exist; nothing was uploaded") from exc
            if code in ("AccessDenied", "AllAccessDisabled", "403"):
                raise PushRefusedError(
                    f"access denied writing s3://{bucket}/{key}; nothing was uploaded (check the bucket and the "
                    "credentials' s3:PutObject permission on incoming/)"
                ) from exc
            raise


def _code(exc: Any) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


@contextlib.contextmanager
def aws_access() -> Iterator[None]:
    """Turn a missing credential or an unreachable endpoint into one readable refusal."""
    from botocore.exceptions import EndpointConnectionError, NoCredentialsError, NoRegionError

    try:
        yield
    except NoCredentialsError as exc:
        raise PushRefusedError("no AWS credentials found (set a profile with --profile or AWS_PROFILE)") from exc
    except NoRegionError as exc:
        raise PushRefusedError("no AWS region set (use --region or AWS_REGION)") from exc
    except EndpointConnectionError as exc:
        raise PushRefusedError(f"cannot reach {exc.kwargs.get('endpoint_url', 'the AWS endpoint')}") from exc


@contextlib.contextmanager
def progress_bar(size: int, *, label: str) -> Iterator[Callable[[int], None]]:
    """Show a rich upload progress bar on stderr and yield the callback that advances it."""
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        DownloadColumn,
        Progress,
        TextColumn,
        TimeRemainingColumn,
        TransferSpeedColumn,
    )

    columns = (TextColumn("{task.description}"), BarColumn(), DownloadColumn(), TransferSpeedColumn())
    with Progress(*columns, TimeRemainingColumn(), console=Console(stderr=True), transient=True) as progress:
        task = progress.add_task(label, total=size)
        yield lambda sent: progress.advance(task, sent)
