"""Git repositories for tests: an isolated configuration and a fixed committer."""

from __future__ import annotations

import subprocess
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pathlib import Path

    import pytest

COMMITTER = ("-c", "user.name=Ada Lovelace", "-c", "user.email=ada@example.com", "-c", "commit.gpgsign=false")


def git(cwd: Path, *args: str) -> str:
    """Run git in `cwd` as the test committer; return its stdout."""
    done = subprocess.run(["git", *COMMITTER, *args], cwd=cwd, check=True, capture_output=True, text=True)
    return done.stdout.strip()


def isolate(monkeypatch: pytest.MonkeyPatch, home: Path) -> None:
    """Keep the user's and the system's git configuration out of the test."""
    monkeypatch.setenv("GIT_CONFIG_GLOBAL", str(home / "gitconfig"))
    monkeypatch.setenv("GIT_CONFIG_NOSYSTEM", "1")


def commit_all(root: Path, message: str = "first") -> None:
    """Make `root` a repository on branch main holding one commit of everything in it."""
    git(root, "init", "-q", "-b", "main")
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", message)
