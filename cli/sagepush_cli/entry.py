"""The `sagepush` command's entry point: `sagepush --help` at once, everything else through typer.

Importing typer and rich takes longer than the rest of a `--help` start together. The top-level help is the same text
every time, so it is installed with the CLI as typer renders it at 80 columns, as plain text and for a colour
terminal (`sagepush_cli/help/`), and printed from there when nothing could make typer render it differently: the
program is `sagepush`, the argument is `--help` alone, no variable that typer or rich read is set, and a terminal is
at least 80 columns wide. Otherwise typer renders it. A unit test keeps the stored text equal to typer's
(`python -m tests.unit.test_help --write` rewrites it).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

HELP = Path(__file__).with_name("help")
PLAIN = HELP / "plain.txt"
TERMINAL = HELP / "terminal.txt"
WIDTH = 80
"""The width the stored help is rendered at: rich's width when it writes to no terminal."""
RENDERING_VARIABLES = (
    "COLUMNS",
    "LINES",
    "NO_COLOR",
    "FORCE_COLOR",
    "PY_COLORS",
    "GITHUB_ACTIONS",
    "TERMINAL_WIDTH",
    "TTY_COMPATIBLE",
    "TTY_INTERACTIVE",
    "JUPYTER_COLUMNS",
    "JUPYTER_LINES",
    "TYPER_USE_RICH",
    "TYPER_RICH_MARKUP_MODE",
    "_TYPER_FORCE_DISABLE_TERMINAL",
)
"""What typer or rich read to decide the help's width, colours or layout."""


def stored_help(argv: Sequence[str], stream: TextIO, environ: Mapping[str, str]) -> Path | None:
    """Return the stored help to print for `argv` on `stream`, or None to let typer render it.

    Off a terminal, the stored text is byte for byte what typer prints; on a terminal, it is what typer prints on one
    80 columns wide (typer would fill a wider one).
    """
    if list(argv[1:]) != ["--help"] or Path(argv[0]).name != "sagepush" or os.name != "posix":
        return None
    if any(name in environ for name in RENDERING_VARIABLES):
        return None
    try:
        terminal = stream.isatty()
    except (AttributeError, ValueError):
        return None
    if not terminal:
        return PLAIN
    if environ.get("TERM", "") in ("", "dumb", "unknown"):
        return None
    try:
        columns = os.get_terminal_size(stream.fileno()).columns
    except (OSError, ValueError):
        return None
    return TERMINAL if columns >= WIDTH else None


def main() -> None:
    """Run the `sagepush` command."""
    text = stored_help(sys.argv, sys.stdout, os.environ)
    if text is not None and text.is_file():
        sys.stdout.write(text.read_text(encoding="utf-8"))
        return
    from sagepush_cli.main import app

    app()
