"""The local runner of template functions (cli/sagepush_cli/functions.py): a handler runs as Lambda runs it."""

from __future__ import annotations

from typing import TYPE_CHECKING

from sagepush_cli.functions import load_function
from sagepush_cli.template import FunctionSource

if TYPE_CHECKING:
    from pathlib import Path

    import pytest

HANDLER = """\
from aws_lambda_powertools import Metrics
from aws_lambda_powertools.metrics import MetricUnit

metrics = Metrics(namespace="sagepush", service="sagepush")


@metrics.log_metrics
def handler(event, context):
    metrics.add_metric(name="AlertsPublished", unit=MetricUnit.Count, value=1)
    return event["n"]
"""


def test_metrics_disabled_locally_never_reach_stdout_however_many_invocations(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # Powertools keeps the values of disabled metrics and prints the whole set once one metric holds 100 of them:
    # under `sagepush push --wait` or a test's captured stdout, that is a JSON blob in the middle of the output.
    monkeypatch.setenv("POWERTOOLS_METRICS_DISABLED", "true")
    (tmp_path / "app.py").write_text(HANDLER)
    source = FunctionSource(logical_id="CountFunction", code_dir=tmp_path, handler="app.handler")
    loaded = load_function(
        source, name="count", arn="arn:aws:lambda:us-east-1:123456789012:function:count", variables={}
    )

    results = [loaded.invoke({"n": n}) for n in range(250)]

    assert results == list(range(250))
    assert capsys.readouterr().out == ""
