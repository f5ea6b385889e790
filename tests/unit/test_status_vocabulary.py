"""SageMaker's status names are spelled once, in `sagepush.events`; everything else uses its enums."""

from __future__ import annotations

import ast
from pathlib import Path

from sagepush import alerts, ledger
from sagepush.events import (
    FAILED_SECONDARY_STATUSES,
    SECONDARY_STATUSES,
    TERMINAL_STATUSES,
    SecondaryStatus,
    TrainingJobStatus,
)

ROOT = Path(__file__).resolve().parents[2]
PRODUCT = ("layers/sagepush/sagepush", "cli/sagepush_cli", "functions")
VOCABULARY = ROOT / "layers/sagepush/sagepush/events.py"
NAMES = {str(status) for status in (*TrainingJobStatus, *SecondaryStatus)}


def spelled_statuses(path: Path) -> list[str]:
    """Each string literal in `path` that is a SageMaker status name, as `file:line name`."""
    tree = ast.parse(path.read_text(), filename=str(path))
    return [
        f"{path.relative_to(ROOT)}:{node.lineno} {node.value}"
        for node in ast.walk(tree)
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and node.value in NAMES
    ]


def test_status_names_are_spelled_only_in_events() -> None:
    found = [
        hit
        for folder in PRODUCT
        for path in sorted((ROOT / folder).rglob("*.py"))
        if path != VOCABULARY
        for hit in spelled_statuses(path)
    ]

    assert found == [], "use sagepush.events.TrainingJobStatus / SecondaryStatus instead of the literal"
    assert spelled_statuses(VOCABULARY)  # the scan does find them where they belong


def test_the_vocabulary_is_sagemakers() -> None:
    assert set(TrainingJobStatus) == {"InProgress", "Stopping", "Completed", "Failed", "Stopped"}
    assert set(TERMINAL_STATUSES) == {"Completed", "Failed", "Stopped"}
    assert SECONDARY_STATUSES[0] == "Starting"
    assert len(SECONDARY_STATUSES) == 17
    assert set(FAILED_SECONDARY_STATUSES) == {"Failed", "MaxRuntimeExceeded", "MaxWaitTimeExceeded"}


def test_every_secondary_status_has_a_headline_and_a_rank() -> None:
    assert set(SecondaryStatus) <= alerts.HEADLINES.keys()
    assert alerts.HEADLINES["MaxRuntimeExceeded"] == "stopped: maximum runtime exceeded"
    assert set(alerts.WITH_LOGS) == {"Failed", "MaxRuntimeExceeded", "MaxWaitTimeExceeded"}
    ranks = [ledger.state_seq("InProgress", status, 1000) for status in SecondaryStatus]
    assert ranks == sorted(set(ranks))


def test_an_end_status_outranks_every_running_one_whatever_the_clock() -> None:
    running = ledger.state_seq(TrainingJobStatus.IN_PROGRESS, SecondaryStatus.TRAINING, 10**13)
    stopping = ledger.state_seq(TrainingJobStatus.STOPPING, SecondaryStatus.STOPPING, 10**13)
    ended = [ledger.state_seq(status, status, 1) for status in TERMINAL_STATUSES]

    assert running < stopping < min(ended)
    assert len({seq // 10**16 for seq in ended}) == 1  # one primary rank: among end states the later event wins
