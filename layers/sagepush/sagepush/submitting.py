"""SubmitFunction's use case: a submit task becomes a training job, recorded in the ledger first; the errors the
state machine retries by name (ThrottledError, CapacityError, UnansweredError) are raised here."""

from __future__ import annotations

import hashlib
import json
import logging
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from sagepush import alerts, jobs, naming, spec, strategy
from sagepush.errors import SagepushError
from sagepush.ledger import Submission

if TYPE_CHECKING:
    from collections.abc import Mapping

    from mypy_boto3_sagemaker import SageMakerClient
    from mypy_boto3_sns import SNSClient

    from sagepush.config import SubmitSettings
    from sagepush.events import SubmitTask
    from sagepush.ledger import Ledger

logger = logging.getLogger(__name__)

CAPACITY_TRANSITION = "WaitingForCapacity"
"""The ledger's alert key for a job's wait for capacity: its one alert, and when the wait began."""


_CAPACITY_LEASE_MS = 120_000


# Errors an AWS service answers when it could not serve a request this time; retrying later succeeds.
# https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/Programming.Errors.html
_THROTTLED = frozenset({"ThrottlingException", "Throttling", "TooManyRequestsException"})


_TRANSIENT = _THROTTLED | {
    "InternalServerError",
    "InternalFailure",
    "ServiceUnavailable",
    "ProvisionedThroughputExceededException",
    "RequestLimitExceeded",
}


class ThrottledError(SagepushError):
    """An AWS service throttled the request or failed it transiently; the state machine retries with backoff."""


class CapacityError(SagepushError):
    """The account has no capacity left for this job yet (ResourceLimitExceeded); retried with backoff for hours."""


class CapacityExhaustedError(SagepushError):
    """No capacity freed up within the deployment's CAPACITY_WAIT_SECONDS: the submission fails, with its alert."""


class UnansweredError(SagepushError):
    """CreateTrainingJob got no answer (timeout, dropped connection): the job may exist; the retry attaches to it."""


@dataclass(frozen=True, slots=True)
class SubmittedJob:
    """What SubmitFunction did with one task: the job it created, or attached to when it already existed."""

    job_name: str
    job_arn: str
    attached: bool
    request: Mapping[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        """Return a JSON-ready dict: `{job_name, job_arn, attached, request}`."""
        return {"job_name": self.job_name, "job_arn": self.job_arn, "attached": self.attached, "request": self.request}


def submit_job(
    task: SubmitTask, *, settings: SubmitSettings, sagemaker: SageMakerClient, ledger: Ledger, sns: SNSClient
) -> SubmittedJob:
    """Build, validate and send CreateTrainingJob for `task`; a job that already exists is attached to, not an error.

    The job and its task token are recorded in the ledger first, so that whatever happens after CreateTrainingJob is
    sent (a crash, a lost event), the status logic and the reconciler know the job and can settle its execution.

    A job SageMaker has no capacity for yet (ResourceLimitExceeded) waits: one `waiting-for-capacity` alert, then
    CapacityError, which the state machine retries with backoff, until `capacity_wait_seconds` after the first
    refusal (then CapacityExhaustedError, which fails the submission).

    Raises:
        InputError: the spec or the request is wrong, naming the manifest field.
        ThrottledError, CapacityError, UnansweredError: retryable; the state machine backs off and tries again.
        CapacityExhaustedError: still no capacity after the deployment's wait.
    """
    from botocore.exceptions import ClientError, HTTPClientError
    from botocore.exceptions import ConnectionError as TransportError

    naming.check_project(task.project, where="project")
    resolved = spec.resolve_spec(
        spec.Manifest(source="spec", table=task.spec), jobs.defaults_from(settings, task.project)
    )
    digest = task.code_digest or hashlib.sha256(task.code_uri.encode()).hexdigest()
    job_name = task.job_name or naming.job_name(task.project, digest, _task_fingerprint(task))
    built = jobs.build_job_request(
        resolved,
        job_policy=settings.job_policy,
        deployment=jobs.deployment_of(settings, project=task.project, code_uri=task.code_uri),
        job_name=job_name,
        tags=jobs.job_tags(task.project, digest, task.source) | strategy.job_tags(task.push, task.matrix),
    )
    submission = Submission(
        job_name=job_name,
        project=task.project,
        code_uri=task.code_uri,
        code_digest=digest,
        source={name: task.source[name] for name in jobs.SOURCE_FIELDS if task.source.get(name)},
        task_token=task.task_token,
        attempt=task.attempt,
        push=task.push,
    )
    try:
        if not ledger.record_submission(submission, now_ms=time.time_ns() // 1_000_000):
            logger.info("job already in the ledger", extra={"job_name": job_name})
    except ClientError as exc:
        # Nothing was sent to SageMaker yet: a ledger that failed for a moment is retried like a throttle, rather
        # than ending the execution with a could-not-submit alert and losing the upload.
        if jobs.error_code(exc) in _TRANSIENT:
            raise ThrottledError(f"{job_name}: the ledger failed transiently ({jobs.error_code(exc)})") from exc
        raise
    try:
        response = sagemaker.create_training_job(**built)
    except sagemaker.exceptions.ResourceInUse:
        arn = sagemaker.describe_training_job(TrainingJobName=job_name)["TrainingJobArn"]
        logger.info("training job already exists, attaching", extra={"job_name": job_name})
        return SubmittedJob(job_name=job_name, job_arn=arn, attached=True, request=built)
    except sagemaker.exceptions.ResourceLimitExceeded as exc:
        reason = f"{job_name}: {exc.response['Error'].get('Message', 'resource limit exceeded')}"
        raise _waiting_for_capacity(task, job_name, reason, settings=settings, ledger=ledger, sns=sns) from exc
    except (TransportError, HTTPClientError) as exc:
        # botocore gave up retrying the transport; the request may have reached SageMaker all the same. A retry of
        # this task finds the job (ResourceInUse) and attaches, so retrying is safe and no job is created twice.
        raise UnansweredError(f"{job_name}: CreateTrainingJob got no answer ({type(exc).__name__})") from exc
    except ClientError as exc:
        code = jobs.error_code(exc)
        if code in _THROTTLED:
            raise ThrottledError(f"{job_name}: SageMaker throttled CreateTrainingJob") from exc
        if code in _TRANSIENT:
            # A 5xx that outlasted botocore's retries may still have created the job: the retry attaches to it.
            raise UnansweredError(f"{job_name}: CreateTrainingJob failed transiently ({code})") from exc
        # SageMaker refused for good (validation, access, a missing resource): no job exists and none will, so the
        # ledger says so now; the execution ends with a could-not-submit alert and the reconciler skips the job.
        ledger.mark_not_created(job_name, now_ms=time.time_ns() // 1_000_000)
        raise
    logger.info("training job created", extra={"job_name": job_name})
    return SubmittedJob(job_name=job_name, job_arn=response["TrainingJobArn"], attached=False, request=built)


def _waiting_for_capacity(
    task: SubmitTask, job_name: str, reason: str, *, settings: SubmitSettings, ledger: Ledger, sns: SNSClient
) -> SagepushError:
    """Return the error a capacity refusal ends this attempt with, alerting the first refusal once.

    The first refusal claims the `WaitingForCapacity` transition in the ledger and publishes its alert; the time it
    was sent is when the wait began. An alert that cannot be sent now is released and tried again on the next attempt.
    """
    from botocore.exceptions import BotoCoreError, ClientError

    now = time.time_ns() // 1_000_000
    since = now
    claim = ledger.claim_alert(job_name, CAPACITY_TRANSITION, now_ms=now, lease_until_ms=now + _CAPACITY_LEASE_MS)
    if claim is not None:
        alert = alerts.waiting_for_capacity_alert(
            job_name=job_name,
            project=task.project,
            region=settings.aws_region,
            reason=reason,
            give_up_after_seconds=settings.capacity_wait_seconds,
            source={name: task.source[name] for name in jobs.SOURCE_FIELDS if task.source.get(name)},
            code_uri=task.code_uri,
            time=alerts.iso_time(now),
        )
        try:
            message_id = alerts.publish_alert(alert, topic_arn=settings.alerts_topic_arn, sns=sns)
        except (BotoCoreError, ClientError):
            logger.warning("waiting-for-capacity alert not sent; the next attempt sends it", exc_info=True)
            ledger.release_alert(claim)
        else:
            ledger.mark_alert_sent(claim, message_id=message_id, now_ms=now)
    else:
        entry = ledger.get(job_name)
        record = entry.alerts.get(CAPACITY_TRANSITION, {}) if entry is not None else {}
        since = int(record.get("at", now))
    if now - since > settings.capacity_wait_seconds * 1000:
        hours = settings.capacity_wait_seconds / 3600
        return CapacityExhaustedError(f"{reason}; no capacity freed up in {hours:g} h of waiting")
    logger.info("waiting for capacity", extra={"job_name": job_name, "waited_ms": now - since})
    return CapacityError(reason)


def _task_fingerprint(task: SubmitTask) -> str:
    """Hash what a direct invoke asked for, so invoking the same request twice names (and attaches to) one job."""
    material = json.dumps({"code": task.code_uri, "spec": task.spec, "source": task.source}, sort_keys=True)
    return hashlib.sha256(material.encode()).hexdigest()
