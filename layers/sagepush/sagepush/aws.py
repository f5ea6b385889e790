"""Lazy, cached AWS clients that share one retry policy and explicit timeouts, and honour AWS_ENDPOINT_URL."""

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


# Seconds one attempt waits for each read of its answer, where botocore's 60 s does not fit. SageMaker's and
# DynamoDB's calls (CreateTrainingJob, DescribeTrainingJob, one-item writes) answer in well under a second, so 10 s is
# still far above their slow tail, and it bounds botocore's whole retry sequence for one such call at 6 attempts (the
# first and 5 retries) x (5 s connect + 10 s read) + at most 56 s of backoff (1 + 2 + 4 + 8 + 16 s, each up to 5 s
# more when the answer asks for it) = 146 s. SubmitFunction makes at most four such calls (584 s), so its 660 s
# timeout outlasts them: a CreateTrainingJob whose answer is lost is resent (the resend attaches to the job) or given
# up on as UnansweredError inside the invocation. With 60 s, one lost answer took Submit's whole 60 s timeout.
# tests/unit/test_template_reliability.py holds template.yaml's timeouts to these figures.
_READ_TIMEOUTS = {"sagemaker": 10, "dynamodb": 10}


@functools.cache
def config(service: str) -> Config:
    """Return the client configuration every sagepush client of `service` uses: one retry policy, explicit timeouts."""
    from botocore.config import Config

    # Standard retry mode backs off on throttling with jitter; explicit timeouts keep a stuck call inside the
    # function's own timeout so the caller's retry (Lambda's, the state machine's) and the DLQ take over.
    return Config(
        retries={"mode": "standard", "max_attempts": 5},
        connect_timeout=5,
        read_timeout=_READ_TIMEOUTS.get(service, 60),  # S3 moves staged code in multi-MiB parts: botocore's 60 s
    )


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
    return new_client(service)


def new_client(service: str) -> Any:
    """Return a new client for `service` with the shared retry policy and timeouts, for callers whose endpoint or
    credentials change within one process (the local stack and its demo); handlers use `client`."""
    import boto3

    return boto3.client(service, config=config(service))  # type: ignore[call-overload]


def clear_clients() -> None:
    """Forget every cached client, for tests that change the environment."""
    _client.cache_clear()
