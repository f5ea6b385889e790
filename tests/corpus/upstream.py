"""Upstream files of the corpus, by repository, commit, path and SHA-256: read from a cache, a local git copy or GitHub.

None of them is kept in this repository. Each is looked for, in this order:

1. the cache, `$SAGEPUSH_CORPUS_CACHE` (default `~/.cache/sagepush-corpus`), where a file is stored under its SHA-256;
2. local git copies named by `$SAGEPUSH_CORPUS_GIT`: directories (separated by `os.pathsep`), each a clone or bare
   repository of the project, or a folder holding them as `<owner>/<name>`, `<owner>+<name>` (optionally with a
   `repo` git directory inside, as a mirror lays them out) or `<name>`;
3. GitHub at the pinned commit (`raw.githubusercontent.com`), unless `$SAGEPUSH_CORPUS_OFFLINE` is set.

Whatever the source, the bytes must have the recorded SHA-256: a file that differs is refused, never used. A file
found in git or on GitHub is written to the cache, so later runs need neither.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import tempfile
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Iterator

CACHE_ENV = "SAGEPUSH_CORPUS_CACHE"
GIT_ENV = "SAGEPUSH_CORPUS_GIT"
OFFLINE_ENV = "SAGEPUSH_CORPUS_OFFLINE"
RAW_URL = "https://raw.githubusercontent.com/{repository}/{commit}/{path}"
DOWNLOAD_TIMEOUT_SECONDS = 30


class UnavailableError(Exception):
    """An upstream file could be found nowhere (or only with other bytes than the ones recorded)."""


@dataclass(frozen=True)
class UpstreamFile:
    """One file of a public repository at one commit, and the SHA-256 its bytes must have."""

    repository: str  # owner/name
    commit: str
    path: str
    sha256: str

    @property
    def url(self) -> str:
        return RAW_URL.format(repository=self.repository, commit=self.commit, path=self.path)

    def __str__(self) -> str:
        return f"{self.repository}@{self.commit[:12]}:{self.path}"


def cache_dir() -> Path:
    """Where fetched files are kept, each under its SHA-256 (outside sagepush's own caches, which tests isolate)."""
    configured = os.environ.get(CACHE_ENV)
    return Path(configured) if configured else Path.home() / ".cache" / "sagepush-corpus"


def read(file: UpstreamFile) -> bytes:
    """The file's bytes, checked against its SHA-256.

    Raises:
        UnavailableError: no source has it (the message says what was tried and how to provide it).
    """
    cached = cache_dir() / file.sha256
    if cached.is_file():
        data = cached.read_bytes()
        if _digest(data) == file.sha256:
            return data
    tried: list[str] = []
    for source, data in _sources(file, tried):
        if _digest(data) != file.sha256:
            tried.append(f"{source}: other bytes (SHA-256 {_digest(data)}, expected {file.sha256})")
            continue
        _store(cached, data)
        return data
    raise UnavailableError(
        f"{file} is not in the cache ({cache_dir()}) and could not be fetched: {'; '.join(tried) or 'no source'}. "
        f"Set {GIT_ENV} to a directory holding a clone of {file.repository}, or allow access to GitHub."
    )


def _sources(file: UpstreamFile, tried: list[str]) -> Iterator[tuple[str, bytes]]:
    """Each source's bytes for `file`, lazily: git copies first, then GitHub; what failed is added to `tried`."""
    for repository in _git_repositories(file.repository):
        data = _from_git(repository, file)
        if data is None:
            tried.append(f"{repository}: no {file.commit[:12]}:{file.path}")
        else:
            yield str(repository), data
    if os.environ.get(OFFLINE_ENV):
        tried.append(f"GitHub: not asked ({OFFLINE_ENV} is set)")
        return
    data = _download(file.url, tried)
    if data is not None:
        yield file.url, data


def _git_repositories(repository: str) -> list[Path]:
    owner, _, name = repository.partition("/")
    candidates: list[Path] = []
    for entry in os.environ.get(GIT_ENV, "").split(os.pathsep):
        if not entry:
            continue
        root = Path(entry).expanduser()
        for candidate in (
            root / f"{owner}+{name}" / "repo",
            root / f"{owner}+{name}",
            root / owner / name,
            root / name,
            root,
        ):
            if candidate.is_dir() and candidate not in candidates:
                candidates.append(candidate)
    return candidates


def _from_git(repository: Path, file: UpstreamFile) -> bytes | None:
    git_dir = repository / ".git" if (repository / ".git").exists() else repository  # a clone, or a bare repository
    done = subprocess.run(
        ["git", f"--git-dir={git_dir}", "cat-file", "blob", f"{file.commit}:{file.path}"],
        capture_output=True,
        check=False,
    )
    return done.stdout if done.returncode == 0 else None


def _download(url: str, tried: list[str]) -> bytes | None:
    try:
        with urllib.request.urlopen(url, timeout=DOWNLOAD_TIMEOUT_SECONDS) as response:  # a fixed https URL
            return bytes(response.read())
    except (urllib.error.URLError, OSError) as exc:
        tried.append(f"{url}: {getattr(exc, 'reason', exc)}")
        return None


def _store(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile(dir=path.parent, delete=False, prefix=".part-") as part:
        part.write(data)
    Path(part.name).replace(path)


def _digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()
