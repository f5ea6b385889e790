"""Step Functions tasks that alert: "could not submit" after a submission failed for good (TrainingStateMachine), and
the summary of a `[strategy]` push when its last job has ended (MatrixStateMachine); every format, fitted to SNS."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit

from sagepush import alerts, aws, pushes
from sagepush.config import NotifySettings
from sagepush.events import submit_failure
from sagepush.ledger import DynamoDBLedger

if TYPE_CHECKING:
    from aws_lambda_powertools.utilities.typing import LambdaContext

logger = Logger()
metrics = Metrics()
settings = NotifySettings.from_env()


@logger.inject_lambda_context
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    if "push" in event:
        return _summarize(event)
    failure = submit_failure(event)
    logger.append_keys(project=failure.project, job_name=failure.job_name)
    alert = alerts.submit_failed_alert(
        job_name=failure.job_name,
        project=failure.project,
        error=failure.error,
        cause=failure.cause,
        execution_arn=failure.execution_arn,
        region=settings.aws_region,
        log_group=settings.submit_log_group,
        source=failure.source,
        code_uri=failure.code_uri,
        time=failure.time,
    )
    message_id = alerts.publish_alert(alert, topic_arn=settings.alerts_topic_arn, sns=aws.client("sns"))
    metrics.add_metric(name="AlertsPublished", unit=MetricUnit.Count, value=1)
    return {"job_name": failure.job_name, "alert": "published", "message_id": message_id}


def _summarize(event: dict[str, Any]) -> dict[str, Any]:
    document = pushes.push_document(event["push"])
    logger.append_keys(project=document.project, push=document.push)
    outcome = pushes.summarize(
        document,
        region=settings.aws_region,
        topic_arn=settings.alerts_topic_arn,
        execution_arn=str(event.get("execution_arn", "")),
        time=str(event.get("time", "")),
        stop_running=bool(event.get("stop_running")),
        training_state_machine_arn=event.get("training_state_machine_arn"),
        sagemaker=aws.client("sagemaker"),
        sfn=aws.client("stepfunctions"),
        sns=aws.client("sns"),
        s3=aws.client("s3"),
        ledger=DynamoDBLedger(settings.ledger_table, dynamodb=aws.client("dynamodb")),
    )
    if outcome["alert"] == "published":
        metrics.add_metric(name="AlertsPublished", unit=MetricUnit.Count, value=1)
    return outcome
