"""Schedule: describe jobs the ledger has not heard from lately and feed them through the status logic."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit

from sagepush import aws, status
from sagepush.config import ReconcileSettings
from sagepush.ledger import DynamoDBLedger

if TYPE_CHECKING:
    from aws_lambda_powertools.utilities.typing import LambdaContext

logger = Logger()
metrics = Metrics()
settings = ReconcileSettings.from_env()


@logger.inject_lambda_context
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    report = status.reconcile(
        settings=settings,
        ledger=DynamoDBLedger(settings.ledger_table, dynamodb=aws.client("dynamodb")),
        sagemaker=aws.client("sagemaker"),
        sns=aws.client("sns"),
        sfn=aws.client("stepfunctions"),
        logs=aws.client("logs"),
        deadline_ms=time.time_ns() // 1_000_000 + context.get_remaining_time_in_millis(),
    )
    metrics.add_metric(name="JobsReconciled", unit=MetricUnit.Count, value=report.checked)
    published = sum(1 for outcome in report.outcomes if outcome.alert == "published")
    metrics.add_metric(name="AlertsPublished", unit=MetricUnit.Count, value=published)
    metrics.add_metric(name="ReconcileFailures", unit=MetricUnit.Count, value=len(report.failed))
    return report.as_dict()
