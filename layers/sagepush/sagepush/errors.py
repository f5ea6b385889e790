"""The error hierarchy every sagepush module raises from."""

from __future__ import annotations


class SagepushError(Exception):
    """Root of every error sagepush raises on purpose."""


class InputError(SagepushError):
    """A user's input is wrong: `where` names the manifest field, archive member, variable or event path."""

    def __init__(self, where: str, message: str) -> None:
        self.where = where
        self.message = message
        super().__init__(f"{where}: {message}")


def shorten(value: object, limit: int = 60) -> str:
    """Return `repr(value)` cut to `limit` characters, for quoting user input in a message."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"
