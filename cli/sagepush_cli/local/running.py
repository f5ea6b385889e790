"""What a running `sagepush local up` tells the other commands: its endpoint, region and stack.

`local up` writes `<local home>/running.json` while it runs and removes it when it stops; `push`, `status`, `logs`
and `stop` with `--local` read it, so nothing has to be exported. A file left by a process that died (its pid no
longer runs) is ignored.
"""

from __future__ import annotations

import contextlib
import json
import os
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING

from sagepush_cli.local.cache import home

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

DEFAULT_PORT = 4599
"""The port `local up` listens on unless told otherwise (`--port`, `$SAGEPUSH_LOCAL_PORT`; 0 picks a free one)."""
PORT_ENV = "SAGEPUSH_LOCAL_PORT"
CREDENTIALS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}
"""What the local stack accepts: moto checks no signature."""


@dataclass(frozen=True, slots=True)
class Running:
    """A `sagepush local up` process and where its stack answers."""

    endpoint: str
    region: str
    stack_name: str
    pid: int

    def environment(self) -> dict[str, str]:
        """The variables that point an AWS client (boto3, the AWS CLI) at this stack."""
        return {"AWS_ENDPOINT_URL": self.endpoint, **CREDENTIALS, "AWS_REGION": self.region}


def state_file() -> Path:
    return home() / "running.json"


@contextlib.contextmanager
def announced(endpoint: str, region: str, stack_name: str) -> Iterator[Running]:
    """Tell the other commands this process runs a stack at `endpoint`, until the block ends."""
    running = Running(endpoint=endpoint, region=region, stack_name=stack_name, pid=os.getpid())
    path = state_file()
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.{running.pid}")
    partial.write_text(json.dumps(asdict(running)))
    partial.replace(path)
    try:
        yield running
    finally:
        with contextlib.suppress(FileNotFoundError, ValueError, KeyError, TypeError):
            if find_in(path) == running:
                path.unlink()


def find() -> Running | None:
    """The stack `sagepush local up` runs on this machine, or None."""
    return find_in(state_file())


def find_in(path: Path) -> Running | None:
    try:
        document = json.loads(path.read_text())
        running = Running(**document)
    except (OSError, ValueError, TypeError):
        return None
    return running if _alive(running.pid) else None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, another user's
        return True
    return True
