"""The stored top-level help (sagepush_cli.entry) is typer's own, and is printed only where typer would print it."""

from __future__ import annotations

import io
import os
import subprocess
import sys

import pytest

from sagepush_cli import entry

RENDER = "import sys; sys.argv = ['sagepush', '--help']; from sagepush_cli.main import app; app()"


def typer_help(*, terminal: bool) -> str:
    """What typer prints for `sagepush --help` 80 columns wide: on a colour terminal, or to a pipe."""
    env = {k: v for k, v in os.environ.items() if k not in entry.RENDERING_VARIABLES}
    env["COLUMNS"] = str(entry.WIDTH)
    if terminal:
        env.update(FORCE_COLOR="1", TERM="xterm-256color")
    done = subprocess.run([sys.executable, "-c", RENDER], capture_output=True, text=True, env=env, check=True)
    return done.stdout


@pytest.mark.parametrize("terminal", [False, True], ids=["plain", "terminal"])
def test_the_stored_help_is_what_typer_prints(terminal: bool) -> None:
    stored = entry.TERMINAL if terminal else entry.PLAIN
    assert stored.read_text(encoding="utf-8") == typer_help(terminal=terminal), (
        "the CLI's help changed: run python -m tests.unit.test_help --write"
    )


class Pipe(io.StringIO):
    def isatty(self) -> bool:
        return False


def test_only_sagepush_help_alone_with_nothing_that_changes_rendering_is_stored() -> None:
    assert entry.stored_help(["/usr/bin/sagepush", "--help"], Pipe(), {}) == entry.PLAIN
    assert entry.stored_help(["/usr/bin/sagepush", "push", "--help"], Pipe(), {}) is None
    assert entry.stored_help(["/usr/bin/sagepush"], Pipe(), {}) is None
    assert entry.stored_help(["/usr/bin/sagepush", "--help", "--json"], Pipe(), {}) is None
    assert entry.stored_help(["-m", "--help"], Pipe(), {}) is None  # python -m sagepush_cli: another program name
    for name in entry.RENDERING_VARIABLES:
        assert entry.stored_help(["sagepush", "--help"], Pipe(), {name: "1"}) is None, name


def test_a_narrow_or_dumb_terminal_gets_typers_rendering() -> None:
    primary, secondary = os.openpty()
    try:
        with os.fdopen(secondary, "w", closefd=False) as stream:
            os.set_blocking(secondary, True)
            import fcntl
            import struct
            import termios

            for columns, term, expected in ((120, "xterm", entry.TERMINAL), (79, "xterm", None), (120, "dumb", None)):
                fcntl.ioctl(secondary, termios.TIOCSWINSZ, struct.pack("HHHH", 40, columns, 0, 0))
                assert entry.stored_help(["sagepush", "--help"], stream, {"TERM": term}) == expected
    finally:
        os.close(primary)
        os.close(secondary)


if __name__ == "__main__" and sys.argv[1:] == ["--write"]:
    entry.HELP.mkdir(exist_ok=True)
    entry.PLAIN.write_text(typer_help(terminal=False), encoding="utf-8")
    entry.TERMINAL.write_text(typer_help(terminal=True), encoding="utf-8")
