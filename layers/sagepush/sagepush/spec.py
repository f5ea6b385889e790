"""What the user declares: the manifest in the upload, read into a TrainingSpec."""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sagepush.errors import InputError

if TYPE_CHECKING:
    from collections.abc import Mapping

MANIFEST_NAMES = ("sagepush.toml", "pyproject.toml")
"""Root-level files that may hold the manifest, in the order they are looked for."""

# PEP 723 reference regex: https://peps.python.org/pep-0723/#reference-implementation
_SCRIPT_BLOCK = re.compile(r"(?m)^# /// (?P<type>[a-zA-Z0-9-]+)$\s(?P<content>(^#(| .*)$\s)+)^# ///$")


class SpecError(InputError):
    """The manifest is wrong; `where` names the file and field."""


@dataclass(frozen=True, slots=True)
class Manifest:
    """The raw `[tool.sagepush]` table and the file it came from."""

    source: str
    table: Mapping[str, Any]
    dependencies: tuple[str, ...] = ()


def read_script_metadata(script: str, *, source: str) -> dict[str, Any] | None:
    """Return the PEP 723 `script` block of `script` as a dict, or None when it has none.

    Raises:
        SpecError: more than one block, or TOML that does not parse.
    """
    blocks = [m for m in _SCRIPT_BLOCK.finditer(script) if m.group("type") == "script"]
    if not blocks:
        return None
    if len(blocks) > 1:
        raise SpecError(source, "more than one `# /// script` block (PEP 723 allows one)")
    content = "".join(
        line[2:] if line.startswith("# ") else line[1:] for line in blocks[0].group("content").splitlines(keepends=True)
    )
    try:
        return tomllib.loads(content)
    except tomllib.TOMLDecodeError as exc:
        raise SpecError(source, f"the `# /// script` block is not valid TOML ({exc})") from exc


def find_manifest(files: Mapping[str, bytes], *, script: str | None = None) -> Manifest | None:
    """Find the manifest among root-level `files` (name → bytes), or in the PEP 723 block of `script`.

    `script` names the single uploaded script when the upload was a `.py` file; its bytes are in `files`.
    Returns None when there is no manifest at all: deployment defaults then fill the spec.

    Raises:
        SpecError: a manifest file exists but is not valid TOML, or its table is not a table.
    """
    if script is not None:
        metadata = read_script_metadata(_decode(files[script], script), source=script)
        if metadata is None:
            return None
        table = metadata.get("tool", {}).get("sagepush", {})
        deps = metadata.get("dependencies", [])
        if not isinstance(deps, list) or not all(isinstance(d, str) for d in deps):
            raise SpecError(f"{script}: dependencies", "must be a list of requirement strings")
        return Manifest(source=script, table=_table(table, f"{script}: [tool.sagepush]"), dependencies=tuple(deps))
    for name in MANIFEST_NAMES:
        if name not in files:
            continue
        try:
            document = tomllib.loads(_decode(files[name], name))
        except tomllib.TOMLDecodeError as exc:
            raise SpecError(name, f"is not valid TOML ({exc})") from exc
        if name == "sagepush.toml":
            table = document.get("tool", {}).get("sagepush", document)
            return Manifest(source=name, table=_table(table, name))
        if "sagepush" in document.get("tool", {}):
            return Manifest(source=name, table=_table(document["tool"]["sagepush"], f"{name}: [tool.sagepush]"))
    return None


def _decode(data: bytes, source: str) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise SpecError(source, f"is not UTF-8 text (byte {exc.start})") from exc


def _table(value: object, where: str) -> Mapping[str, Any]:
    if not isinstance(value, dict):
        raise SpecError(where, f"must be a table, found {type(value).__name__}")
    return value
