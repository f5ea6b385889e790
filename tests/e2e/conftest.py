"""The local stack the end-to-end tests share: real training, real alerts."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from sagepush_cli.local.stack import LocalStack, running_stack
from sagepush_cli.local.trainer import GRACE_ENV

if TYPE_CHECKING:
    from collections.abc import Iterator

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
STOP_GRACE_SECONDS = "10"


@pytest.fixture(scope="session")
def stack() -> Iterator[LocalStack]:
    """The local stack: the one the integration tests started, when they run in this process, else a new one.

    moto's backends are process-wide, so two stacks in one process would share (and redeploy over) one state.
    """
    running = running_stack()
    if running is not None:
        running.reset()
        trainer = running.trainer
        saved, trainer.grace_seconds = trainer.grace_seconds, float(STOP_GRACE_SECONDS)
        yield running
        trainer.grace_seconds = saved
        return
    with pytest.MonkeyPatch.context() as env:
        env.setenv(GRACE_ENV, STOP_GRACE_SECONDS)
        with LocalStack() as local:
            yield local
