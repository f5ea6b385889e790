"""The model registry and hosting: register a completed job's model (a Step Functions task of TrainingStateMachine
and MatrixStateMachine), deploy an approved version ("SageMaker Model Package State Change"), and alert an endpoint's
end states ("SageMaker Endpoint State Change")."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.data_classes import EventBridgeEvent

from sagepush import aws, hosting
from sagepush.config import HostingSettings
from sagepush.ledger import DynamoDBLedger

if TYPE_CHECKING:
    from aws_lambda_powertools.utilities.typing import LambdaContext

logger = Logger()
metrics = Metrics()
settings = HostingSettings.from_env()

PACKAGE_CHANGE = "SageMaker Model Package State Change"
ENDPOINT_CHANGE = "SageMaker Endpoint State Change"


@logger.inject_lambda_context
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    outcome = _handle(event)
    registered = outcome.get("registered")
    count = len(registered) if isinstance(registered, list) else int(registered is True and not outcome.get("already"))
    metrics.add_metric(name="ModelsRegistered", unit=MetricUnit.Count, value=count)
    deployment = outcome.get("deployment") or {}
    metrics.add_metric(
        name="Deployments", unit=MetricUnit.Count, value=int(deployment.get("action") in ("created", "updated"))
    )
    return outcome


def _handle(event: dict[str, Any]) -> dict[str, Any]:
    sagemaker, s3, sns = aws.client("sagemaker"), aws.client("s3"), aws.client("sns")
    ledger = DynamoDBLedger(settings.ledger_table, dynamodb=aws.client("dynamodb"))
    if "register" in event:
        request = hosting.register_request(event["register"])
        logger.append_keys(project=request.project, job_name=request.job_name)
        return hosting.register_job(request, settings=settings, sagemaker=sagemaker, s3=s3, sns=sns, ledger=ledger)
    if "register_push" in event:
        logger.append_keys(push=event["register_push"].get("push"))
        return hosting.register_push(
            event["register_push"],
            best=event.get("best"),
            settings=settings,
            sagemaker=sagemaker,
            s3=s3,
            sns=sns,
            ledger=ledger,
        )
    change = EventBridgeEvent(event)
    if change.detail_type == PACKAGE_CHANGE:
        logger.append_keys(model_package=change.detail.get("ModelPackageArn"))
        return hosting.on_package_change(change.detail, settings=settings, sagemaker=sagemaker, sns=sns, ledger=ledger)
    if change.detail_type == ENDPOINT_CHANGE:
        logger.append_keys(endpoint=change.detail.get("EndpointName"))
        return hosting.on_endpoint_change(change.detail, settings=settings, sagemaker=sagemaker, sns=sns, ledger=ledger)
    logger.warning("event ignored", extra={"detail_type": change.detail_type})
    return {"ignored": change.detail_type}
