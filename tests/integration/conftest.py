"""One local stack (moto server over HTTP + the real template) for the whole run, reset between tests."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import boto3
import pytest

from sagepush_cli.local.stack import LocalStack
from tests.integration.faults import EmulatedWaits

if TYPE_CHECKING:
    from collections.abc import Iterator

EVENTS = Path(__file__).resolve().parents[2] / "events"
BURST_FIGURES: list[str] = []
"""What each burst did, printed in pytest's terminal summary (so `make burst` shows the figures without -s)."""


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if BURST_FIGURES:
        terminalreporter.section("burst figures")
        for line in BURST_FIGURES:
            terminalreporter.write_line(line)


@pytest.fixture(scope="session")
def _session_stack() -> Iterator[LocalStack]:
    with LocalStack() as stack:
        yield stack


@pytest.fixture
def stack(_session_stack: LocalStack) -> LocalStack:
    """The local stack, with every AWS resource forgotten and the template deployed afresh."""
    _session_stack.reset()
    return _session_stack


@pytest.fixture
def s3(stack: LocalStack) -> Any:
    return boto3.client("s3")


@pytest.fixture
def sfn(stack: LocalStack) -> Any:
    return boto3.client("stepfunctions")


@pytest.fixture
def sagemaker(stack: LocalStack) -> Any:
    return boto3.client("sagemaker")


@pytest.fixture
def instant_jobs(monkeypatch: pytest.MonkeyPatch) -> None:
    """Jobs stay as moto makes them (no local training, no events of their own): the test sends their states."""
    from sagepush_cli.local.trainer import LocalTrainer

    monkeypatch.setattr(LocalTrainer, "start", lambda self, job, **_: None)


@pytest.fixture
def waits(monkeypatch: pytest.MonkeyPatch) -> EmulatedWaits:
    """The waits retries ask for, recorded and skipped (tests/integration/faults.py)."""
    return EmulatedWaits(monkeypatch)


Ledger = Callable[[str], dict[str, Any]]
"""Reads one job's ledger item, deserialized (an empty dict when there is none)."""


@pytest.fixture
def ledger(stack: LocalStack) -> Ledger:
    from boto3.dynamodb.types import TypeDeserializer

    client = boto3.client("dynamodb")
    deserializer = TypeDeserializer()

    def read(job_name: str) -> dict[str, Any]:
        item = client.get_item(
            TableName=stack.resources["LedgerTable"], Key={"job_name": {"S": job_name}}, ConsistentRead=True
        )
        return {k: deserializer.deserialize(v) for k, v in item.get("Item", {}).items()}

    return read


def load_event(name: str) -> dict[str, Any]:
    """Load events/<name>.json."""
    document: dict[str, Any] = json.loads((EVENTS / f"{name}.json").read_text())
    return document
