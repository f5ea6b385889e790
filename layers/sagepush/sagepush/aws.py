"""Lazy, cached AWS clients that share one botocore Config and honour AWS_ENDPOINT_URL."""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING, Any, Literal, overload

if TYPE_CHECKING:
    from botocore.config import Config
    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_logs import CloudWatchLogsClient
    from mypy_boto3_s3 import S3Client
    from mypy_boto3_sagemaker import SageMakerClient
    from mypy_boto3_sns import SNSClient
    from mypy_boto3_sqs import SQSClient
    from mypy_boto3_stepfunctions import SFNClient


@functools.cache
def _config() -> Config:
    from botocore.config import Config

    # Standard retry mode backs off on throttling with jitter; explicit timeouts keep a stuck call inside the
    # function's own timeout so Lambda's retry and the DLQ take over.
    return Config(retries={"mode": "standard", "max_attempts": 5}, connect_timeout=5, read_timeout=60)


@overload
def client(service: Literal["s3"]) -> S3Client: ...
@overload
def client(service: Literal["stepfunctions"]) -> SFNClient: ...
@overload
def client(service: Literal["sagemaker"]) -> SageMakerClient: ...
@overload
def client(service: Literal["dynamodb"]) -> DynamoDBClient: ...
@overload
def client(service: Literal["sns"]) -> SNSClient: ...
@overload
def client(service: Literal["logs"]) -> CloudWatchLogsClient: ...
@overload
def client(service: Literal["sqs"]) -> SQSClient: ...
def client(service: str) -> Any:
    """Return the process-wide client for `service`, made on first use (never at import).

    No endpoint is passed: botocore reads AWS_ENDPOINT_URL and AWS_ENDPOINT_URL_<SERVICE> itself, so the same code
    runs on AWS and against a local moto server.
    """
    return _client(service)


@functools.cache
def _client(service: str) -> Any:
    import boto3

    return boto3.client(service, config=_config())  # type: ignore[call-overload]


def clear_clients() -> None:
    """Forget every cached client, for tests that change the environment."""
    _client.cache_clear()
