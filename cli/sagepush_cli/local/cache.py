"""The local stack's files on disk: where they live, which are in use, and pruning those nobody used lately.

Under `home()` ($SAGEPUSH_LOCAL_HOME, else $XDG_CACHE_HOME/sagepush/local, else ~/.cache/sagepush/local):
- jobs/<job>/             a job's /opt/ml, with its training.log;
- envs/<hash>/            a virtualenv per set of requirements (`.ready` is touched each time a job uses it);
- staged-code/<stack>/    the staged code a stack keeps from one run to the next (code/<project>/<digest>/...).

An entry's age is the time since anything in it was last written (or, for an environment, last used). Whoever uses
an entry holds it (`in_use`: a shared flock on the entry itself, so it holds across processes); pruning takes the
same lock exclusively, without waiting, and leaves alone whatever it cannot take.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import stat
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Iterator

HOME_ENV = "SAGEPUSH_LOCAL_HOME"
PRUNE_AFTER_ENV = "SAGEPUSH_LOCAL_PRUNE_AFTER"
DEFAULT_PRUNE_AFTER = "14d"
NEVER = "never"
KINDS = {"jobs": "job", "envs": "environment", "staged-code": "staged code"}
"""The folders of home() that pruning looks into, and what each holds; anything else there is left alone."""


def home() -> Path:
    """Where job directories, cached environments and kept staged code live."""
    configured = os.environ.get(HOME_ENV)
    if configured:
        return Path(configured)
    cache = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(cache) / "sagepush" / "local"


def parse_age(value: str, where: str) -> float | None:
    """Seconds from `7d`, `12h`, `1d12h`, `90m` or plain seconds; None for `never`.

    Raises:
        SpecError: the value is not a duration; `where` names the option or variable.
    """
    from sagepush.spec import parse_duration

    if value.strip().lower() == NEVER:
        return None
    return float(parse_duration(value, where))


def configured_prune_after() -> float | None:
    """How old an unused entry gets before a starting stack prunes it: $SAGEPUSH_LOCAL_PRUNE_AFTER, or 14 days."""
    return parse_age(os.environ.get(PRUNE_AFTER_ENV) or DEFAULT_PRUNE_AFTER, PRUNE_AFTER_ENV)


@contextlib.contextmanager
def in_use(path: Path) -> Iterator[None]:
    """Hold `path` (a file or directory) as in use until the block ends: pruning leaves it alone meanwhile.

    Waits while a prune is removing it. Callers check that it still exists once held.

    Raises:
        FileNotFoundError: `path` is not there.
    """
    descriptor = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    try:
        fcntl.flock(descriptor, fcntl.LOCK_SH)
        yield
    finally:
        os.close(descriptor)  # closing releases the lock


def touch(path: Path) -> None:
    """Record a use of `path` now (its age is the time since its newest modification)."""
    with contextlib.suppress(FileNotFoundError):
        os.utime(path)


@dataclass(frozen=True)
class Entry:
    """One job directory, environment or staged-code file, as pruning found it."""

    kind: str
    path: Path
    last_used: float
    """The newest modification time in it (seconds since the epoch)."""
    size: int
    """Bytes that removing it frees: its files' sizes, a file hard-linked from elsewhere (a uv cache) not counted."""


@dataclass
class Pruned:
    """What a prune removed (or, dry, would remove), and what it left because it is in use or could not go."""

    root: Path
    older_than: float
    dry_run: bool
    removed: list[Entry] = field(default_factory=list)
    in_use: list[Path] = field(default_factory=list)
    failed: list[tuple[Path, str]] = field(default_factory=list)

    @property
    def bytes_freed(self) -> int:
        return sum(entry.size for entry in self.removed)


def prune(root: Path | None = None, *, older_than: float, dry_run: bool = False, now: float | None = None) -> Pruned:
    """Remove the job directories, environments and staged code under `root` (default: `home()`) whose last use is
    more than `older_than` seconds ago, leaving alone any entry held by `in_use`, in this process or another."""
    root = home() if root is None else root
    cutoff = (time.time() if now is None else now) - older_than
    pruned = Pruned(root=root, older_than=older_than, dry_run=dry_run)
    for path, kind in _entries(root):
        try:
            descriptor = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
        except FileNotFoundError:
            continue  # removed meanwhile
        except OSError as exc:  # a symlink (O_NOFOLLOW refuses it) or no permission
            if not path.is_symlink():
                pruned.failed.append((path, exc.strerror or str(exc)))
                continue
            descriptor = None
        try:
            if descriptor is not None:
                try:
                    fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    pruned.in_use.append(path)
                    continue
            # Measured under the lock: a user that held it until just now has left its last use in the mtimes.
            entry = _measure(path, kind)
            if entry is None or entry.last_used > cutoff:
                continue
            if not dry_run:
                try:
                    _remove(path)
                except OSError as exc:
                    pruned.failed.append((path, exc.strerror or str(exc)))
                    continue
            pruned.removed.append(entry)
        finally:
            if descriptor is not None:
                os.close(descriptor)
    if not dry_run:
        _remove_emptied_folders(
            root / "staged-code", [e.path for e in pruned.removed if e.kind == KINDS["staged-code"]]
        )
    return pruned


def _entries(root: Path) -> Iterator[tuple[Path, str]]:
    """Each job directory, environment (finished or left half-built) and staged-code file, in a stable order."""
    for folder in ("jobs", "envs"):
        with contextlib.suppress(FileNotFoundError, NotADirectoryError):
            for child in sorted((root / folder).iterdir()):
                yield child, KINDS[folder]
    staged = root / "staged-code"
    for directory, _folders, files in sorted(os.walk(staged)):
        for name in sorted(files):
            yield Path(directory) / name, KINDS["staged-code"]


def _measure(path: Path, kind: str) -> Entry | None:
    """The entry's last use (its newest mtime) and the bytes removing it frees; None if it vanished."""
    try:
        top = path.lstat()
    except FileNotFoundError:
        return None
    newest = top.st_mtime
    links: dict[tuple[int, int], list[int]] = {}  # inode -> [links seen here, its link count, its size]

    def count(info: os.stat_result) -> None:
        if stat.S_ISREG(info.st_mode):
            seen = links.setdefault((info.st_dev, info.st_ino), [0, info.st_nlink, info.st_size])
            seen[0] += 1

    count(top)
    pending = [path] if stat.S_ISDIR(top.st_mode) else []
    while pending:
        with contextlib.suppress(FileNotFoundError, NotADirectoryError), os.scandir(pending.pop()) as children:
            for child in children:
                with contextlib.suppress(FileNotFoundError):
                    info = child.stat(follow_symlinks=False)
                    newest = max(newest, info.st_mtime)
                    count(info)
                    if stat.S_ISDIR(info.st_mode):
                        pending.append(Path(child.path))
    # A file is freed only when every link to it goes: one also linked from a uv cache outside stays.
    size = sum(stored for seen, total, stored in links.values() if seen >= total)
    return Entry(kind=kind, path=path, last_used=newest, size=size)


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    else:
        path.unlink(missing_ok=True)


def _remove_emptied_folders(top: Path, removed: list[Path]) -> None:
    """Remove the folders below `top` that removing these staged-code files left empty."""
    for path in removed:
        for folder in path.parents:
            if folder == top or not folder.is_relative_to(top):
                break
            try:
                folder.rmdir()
            except OSError:  # not empty (or gone): nor are its parents
                break
