from __future__ import annotations

import inspect
import json
from pathlib import Path
from typing import Any

import sagepush
from sagepush import jobs

ASL = json.loads((Path(__file__).resolve().parents[2] / "statemachine" / "training.asl.json").read_text())
# Error names Step Functions and Lambda define themselves, and the codes StatusFunction settles a token with.
FOREIGN_PREFIXES = ("States.", "Lambda.", "sagepush.")


def _error_names(document: Any) -> set[str]:
    names: set[str] = set()
    if isinstance(document, dict):
        for key, value in document.items():
            if key == "ErrorEquals":
                names.update(value)
            else:
                names |= _error_names(value)
    elif isinstance(document, list):
        for item in document:
            names |= _error_names(item)
    return names


def test_every_retried_or_caught_lambda_error_is_an_exception_class_in_the_core() -> None:
    classes = {
        name
        for module in (jobs,)
        for name, value in inspect.getmembers(module, inspect.isclass)
        if issubclass(value, sagepush.errors.SagepushError)
    }
    ours = {name for name in _error_names(ASL) if not name.startswith(FOREIGN_PREFIXES)}
    assert ours, "the state machine retries no error of its own"
    assert ours <= classes


def test_submit_waits_for_its_task_token_and_passes_it_to_the_function() -> None:
    submit = ASL["States"][ASL["StartAt"]]
    assert submit["Resource"] == "arn:aws:states:::lambda:invoke.waitForTaskToken"
    assert submit["Parameters"]["Payload"]["task_token.$"] == "$$.Task.Token"


def test_throttling_and_capacity_retries_back_off_with_jitter() -> None:
    retry = ASL["States"]["Submit"]["Retry"][0]
    assert {"ThrottledError", "CapacityError"} <= set(retry["ErrorEquals"])
    assert retry["BackoffRate"] > 1 and retry["JitterStrategy"] == "FULL"
