"""Every test session keeps sagepush's caches in a temporary directory: no test reads or writes the user's.

Set in this process's environment before collection, so the processes tests start (the CLI, `uv run`, a job's
toolkit) inherit it too:
- XDG_CACHE_HOME: whatever follows the XDG convention (sagepush's own cache under it, `sagepush/`, included);
- SAGEPUSH_LOCAL_HOME: the local stack's job directories, job environments and kept staged code.
uv keeps the package cache it had (UV_CACHE_DIR, when not set already): job environments are built from it, and it
is uv's cache, not sagepush's. An audit hook records whatever this process writes under the user's sagepush cache,
and the session fails if it wrote anything there.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

if TYPE_CHECKING:
    import pytest

CACHE_VARIABLES = ("XDG_CACHE_HOME", "SAGEPUSH_LOCAL_HOME", "UV_CACHE_DIR")
_WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_APPEND
_PATH_EVENTS = {"os.mkdir", "os.remove", "os.rmdir", "os.utime", "os.truncate", "os.chmod", "shutil.rmtree"}
_TWO_PATH_EVENTS = {"os.rename", "os.link", "os.symlink"}  # os.replace is audited as os.rename


class CacheWriteGuard:
    """Records the writes this process makes under `protected` directories, from a `sys.addaudithook` hook.

    Audit hooks cannot be removed, so one hook serves every guard and a guard only records while it is active.
    """

    _active: ClassVar[list[CacheWriteGuard]] = []
    _hooked: ClassVar[bool] = False
    _lock: ClassVar[threading.Lock] = threading.Lock()

    def __init__(self, protected: list[Path]) -> None:
        self.prefixes = tuple(str(path.absolute()) for path in protected)
        self.writes: list[tuple[str, str]] = []

    def __enter__(self) -> CacheWriteGuard:
        with CacheWriteGuard._lock:
            if not CacheWriteGuard._hooked:
                sys.addaudithook(CacheWriteGuard._audit)
                CacheWriteGuard._hooked = True
            CacheWriteGuard._active.append(self)
        return self

    def __exit__(self, *exc: object) -> None:
        with CacheWriteGuard._lock:
            CacheWriteGuard._active.remove(self)

    def _record(self, event: str, path: Any) -> None:
        if isinstance(path, int):
            return  # a file descriptor: the open that made it was recorded
        # Every open in the process passes here: os.path, not Path.resolve (which would stat each component).
        name = os.path.abspath(os.fsdecode(path))  # noqa: PTH100
        if any(name == prefix or name.startswith(prefix + os.sep) for prefix in self.prefixes):
            self.writes.append((event, name))

    @staticmethod
    def _audit(event: str, args: tuple[Any, ...]) -> None:
        if not CacheWriteGuard._active:
            return
        if event == "open":
            paths = args[:1] if args[0] is not None and (args[2] or 0) & _WRITE_FLAGS else ()
        elif event in _PATH_EVENTS:
            paths = args[:1]
        elif event in _TWO_PATH_EVENTS:
            paths = args[:2]
        else:
            return
        for guard in list(CacheWriteGuard._active):
            for path in paths:
                guard._record(event, path)


def users_caches(environ: dict[str, str] | os._Environ[str]) -> list[Path]:
    """Where sagepush caches for this user, given the environment the tests were started with."""
    cache = Path(environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    protected = [cache / "sagepush"]
    if environ.get("SAGEPUSH_LOCAL_HOME"):
        protected.append(Path(environ["SAGEPUSH_LOCAL_HOME"]))
    return protected


_session: dict[str, Any] = {}


def pytest_configure(config: pytest.Config) -> None:
    saved = {name: os.environ.get(name) for name in CACHE_VARIABLES}
    users_cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    protected = users_caches(os.environ)
    root = Path(tempfile.mkdtemp(prefix="sagepush-tests-cache-"))
    os.environ["XDG_CACHE_HOME"] = str(root)
    os.environ["SAGEPUSH_LOCAL_HOME"] = str(root / "sagepush" / "local")
    os.environ.setdefault("UV_CACHE_DIR", str(users_cache / "uv"))
    guard = CacheWriteGuard(protected).__enter__()
    _session.update(root=root, saved=saved, guard=guard, protected=protected)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    guard: CacheWriteGuard | None = _session.get("guard")
    if guard is not None and guard.writes:
        session.exitstatus = 1


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    guard: CacheWriteGuard | None = _session.get("guard")
    if guard is not None and guard.writes:
        terminalreporter.section("writes to the user's sagepush cache (tests must use the session's)", red=True)
        for event, path in guard.writes[:50]:
            terminalreporter.write_line(f"{event} {path}")


def pytest_unconfigure(config: pytest.Config) -> None:
    if not _session:
        return
    _session["guard"].__exit__(None, None, None)
    for name, value in _session["saved"].items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value
    shutil.rmtree(_session["root"], ignore_errors=True)
    _session.clear()
