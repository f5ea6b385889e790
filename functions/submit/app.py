"""Step Functions task (with or without a task token) or direct invoke: build and send CreateTrainingJob; for an
execution started by hand, first turn its input into the document an upload's execution carries."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit

from sagepush import aws, starting, submitting
from sagepush.config import SubmitSettings
from sagepush.events import direct_start, submit_task
from sagepush.ledger import DynamoDBLedger

if TYPE_CHECKING:
    from aws_lambda_powertools.utilities.typing import LambdaContext

logger = Logger()
metrics = Metrics()
settings = SubmitSettings.from_env()


@logger.inject_lambda_context
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    if "direct_start" in event:
        # TrainingStateMachine started by hand: its input becomes the document an upload's execution carries.
        start = direct_start(event["direct_start"])
        logger.append_keys(project=start.project)
        return starting.prepare_direct_start(start, execution_name=event.get("execution", ""), settings=settings)
    task = submit_task(event)
    logger.append_keys(project=task.project, job_name=task.job_name)
    submitted = submitting.submit_job(
        task,
        settings=settings,
        sagemaker=aws.client("sagemaker"),
        ledger=DynamoDBLedger(settings.ledger_table, dynamodb=aws.client("dynamodb")),
        sns=aws.client("sns"),
    )
    logger.append_keys(job_name=submitted.job_name)
    metrics.add_metric(name="JobsAttached" if submitted.attached else "JobsSubmitted", unit=MetricUnit.Count, value=1)
    return submitted.as_dict()
