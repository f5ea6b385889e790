"""Step Functions task after a submission failed for good: alert "could not submit" in every format, fitted to SNS."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit

from sagepush import alerts, aws
from sagepush.config import NotifySettings

if TYPE_CHECKING:
    from aws_lambda_powertools.utilities.typing import LambdaContext

logger = Logger()
metrics = Metrics()
settings = NotifySettings.from_env()


@logger.inject_lambda_context
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    # The state machine's payload (statemachine/training.asl.json, NotifySubmitFailed): the execution's input as
    # StageFunction started it, the Submit task's error, the execution's ARN and when the failure was caught.
    execution: dict[str, Any] = event.get("input") or {}
    failure: dict[str, Any] = event.get("error") or {}
    execution_arn: str = event["execution_arn"]
    # An execution is named after its job, so a hand-started one with an odd input still names it.
    job_name: str = execution.get("job_name") or execution_arn.rpartition(":")[2]
    project: str = execution.get("project") or "unknown"
    logger.append_keys(project=project, job_name=job_name)
    alert = alerts.submit_failed_alert(
        job_name=job_name,
        project=project,
        error=str(failure.get("Error") or "States.Unknown"),
        cause=failure.get("Cause"),
        execution_arn=execution_arn,
        region=settings.aws_region,
        log_group=settings.submit_log_group,
        source=execution.get("source") or {},
        code_uri=execution.get("code_uri"),
        time=event["time"],
    )
    message_id = alerts.publish_alert(alert, topic_arn=settings.alerts_topic_arn, sns=aws.client("sns"))
    metrics.add_metric(name="AlertsPublished", unit=MetricUnit.Count, value=1)
    return {"job_name": job_name, "alert": "published", "message_id": message_id}
