"""SageMaker "Training Job State Change" via EventBridge: record the state, alert once, settle the execution."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.metrics import MetricUnit

from sagepush import aws, refusals, status
from sagepush.config import StatusSettings
from sagepush.events import EventError, training_state_change
from sagepush.ledger import DynamoDBLedger

if TYPE_CHECKING:
    from aws_lambda_powertools.utilities.typing import LambdaContext

logger = Logger()
metrics = Metrics()
settings = StatusSettings.from_env()


@logger.inject_lambda_context(correlation_id_path=correlation_paths.EVENT_BRIDGE)
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    try:
        state = training_state_change(event)
    except EventError as exc:
        # A malformed event can never succeed: park it once with the reason (not three times through Lambda's
        # retries); the EventsDropped alarm and the queue-depth alarm tell the operator.
        refusals.park(
            event,
            exc,
            function_arn=context.invoked_function_arn,
            queue_url=settings.dead_letter_queue_url,
            sqs=aws.client("sqs"),
        )
        logger.error("malformed state-change event parked", extra={"where": exc.where, "problem": exc.message})
        metrics.add_metric(name="EventsDropped", unit=MetricUnit.Count, value=1)
        return {"parked": True, "where": exc.where, "problem": exc.message}
    logger.append_keys(project=state.project, job_name=state.job_name)
    outcome = status.handle_state_change(
        state,
        settings=settings,
        ledger=DynamoDBLedger(settings.ledger_table, dynamodb=aws.client("dynamodb")),
        sns=aws.client("sns"),
        sfn=aws.client("stepfunctions"),
        logs=aws.client("logs"),
        deadline_ms=time.time_ns() // 1_000_000 + context.get_remaining_time_in_millis(),
    )
    metrics.add_metric(
        name="AlertsPublished" if outcome.alert == "published" else "AlertsSuppressed", unit=MetricUnit.Count, value=1
    )
    return outcome.as_dict()
