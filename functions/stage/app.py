"""S3 "Object Created" via EventBridge: stage the upload as sourcedir.tar.gz and start its training execution."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.metrics import MetricUnit

from sagepush import aws, refusals, starting
from sagepush.config import StageSettings
from sagepush.errors import InputError
from sagepush.events import ObjectCreated, object_created, object_named
from sagepush.ledger import DynamoDBLedger

if TYPE_CHECKING:
    from aws_lambda_powertools.utilities.typing import LambdaContext

logger = Logger()
metrics = Metrics()
settings = StageSettings.from_env()


@logger.inject_lambda_context(correlation_id_path=correlation_paths.EVENT_BRIDGE)
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    upload: ObjectCreated | None = None  # None while the event itself has not been read
    try:
        upload = object_created(event)
        logger.append_keys(bucket=upload.bucket, key=upload.key)
        started = starting.start_from_upload(
            upload, settings=settings, s3=aws.client("s3"), sfn=aws.client("stepfunctions")
        )
    except InputError as exc:
        # Retrying cannot fix the input: park the event and tell the project once, instead of raising into
        # Lambda's retries (which would stage a bomb three times before anyone heard of it).
        refusal = refusals.refuse(
            event,
            exc,
            upload or object_named(event),
            function_arn=context.invoked_function_arn,
            queue_url=settings.dead_letter_queue_url,
            topic_arn=settings.alerts_topic_arn,
            region=settings.aws_region,
            ingest_prefix=settings.ingest_prefix,
            sqs=aws.client("sqs"),
            sns=aws.client("sns"),
            ledger=DynamoDBLedger(settings.ledger_table, dynamodb=aws.client("dynamodb")),
        )
        metrics.add_metric(name="UploadsRefused", unit=MetricUnit.Count, value=1)
        return refusal.as_dict()
    logger.append_keys(project=started.project, job_name=started.job_name)
    metrics.add_metric(name="UploadsStaged", unit=MetricUnit.Count, value=1)
    if started.code_reused:
        metrics.add_metric(name="StagedCodeReused", unit=MetricUnit.Count, value=1)
    return started.as_dict()
