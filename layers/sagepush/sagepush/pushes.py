"""The end of a `[strategy]` push: when its last job has ended, every job's outcome in one summary alert, the best
job by the objective named; with `fail_fast`, the jobs still running are stopped first. NotifyFunction's use case,
run by MatrixStateMachine after its Map of jobs."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sagepush import alerts
from sagepush.events import PROJECT_TAG, TrainingJobStatus, described_training_job

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping, Sequence

    from mypy_boto3_s3 import S3Client
    from mypy_boto3_s3.type_defs import TagTypeDef
    from mypy_boto3_sagemaker import SageMakerClient
    from mypy_boto3_sns import SNSClient
    from mypy_boto3_stepfunctions import SFNClient

    from sagepush.ledger import Ledger

logger = logging.getLogger(__name__)

UPLOAD_ENDED_TAG = "sagepush-push-ended"
"""Tag put on a push's upload when its last job has ended: `<completed>/<jobs>` (`push --wait` stops on it)."""
SUMMARY_ALERT_KEY = "push-summary"
"""The ledger key the summary alert is claimed under, on the push's first job: one summary per push."""
NOT_CREATED = "NotCreated"
"""A job of the push SageMaker never created (its submission failed, or the push stopped before it)."""
_LEASE_MS = 120_000
_RUNNING = frozenset({TrainingJobStatus.IN_PROGRESS, TrainingJobStatus.STOPPING})


@dataclass(frozen=True, slots=True)
class PushDocument:
    """What MatrixStateMachine's execution input says about a push (StageFunction writes it)."""

    push: str
    project: str
    code_uri: str | None
    source: Mapping[str, str]
    jobs: tuple[tuple[str, Mapping[str, Any]], ...]  # (job name, matrix values), in matrix order
    objective_metric_name: str | None
    objective_type: str
    upload: Mapping[str, Any] | None = None  # bucket, key, version_id of the upload it came from


def push_document(document: Mapping[str, Any]) -> PushDocument:
    """Read a matrix execution's input.

    Raises:
        ValueError: a required field is missing or of the wrong type, named by its JSON path.
    """

    def text(key: str) -> str:
        value = document.get(key)
        if not isinstance(value, str) or not value:
            raise ValueError(f"$.{key} is {value!r}, expected a non-empty string")
        return value

    push, project = text("push"), text("project")
    jobs = document.get("jobs")
    if not isinstance(jobs, list) or not jobs:
        raise ValueError(f"$.jobs is {jobs!r}, expected the push's jobs")
    listed = []
    for index, job in enumerate(jobs):
        matrix = job.get("matrix") if isinstance(job, dict) else None
        if not isinstance(job, dict) or not isinstance(job.get("job_name"), str) or not isinstance(matrix, dict):
            raise ValueError(f"$.jobs[{index}] is not a job of a push (job_name, matrix)")
        listed.append((job["job_name"], dict(matrix.get("values") or {})))
    source = document.get("source") or {}
    return PushDocument(
        push=push,
        project=project,
        code_uri=document.get("code_uri") if isinstance(document.get("code_uri"), str) else None,
        source={k: v for k, v in source.items() if isinstance(v, str)} if isinstance(source, dict) else {},
        jobs=tuple(listed),
        objective_metric_name=document.get("objective_metric_name") or None,
        objective_type=str(document.get("objective_type") or "Maximize"),
        upload=document.get("upload") if isinstance(document.get("upload"), dict) else None,
    )


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


def summarize(
    document: PushDocument,
    *,
    region: str,
    topic_arn: str,
    execution_arn: str,
    time: str,
    stop_running: bool,
    training_state_machine_arn: str | None,
    sagemaker: SageMakerClient,
    sfn: SFNClient,
    sns: SNSClient,
    s3: S3Client,
    ledger: Ledger,
    clock: Callable[[], int] = _now_ms,
) -> dict[str, Any]:
    """Describe every job of the push, publish the summary alert once, tag the upload as ended, and return the
    outcome for the execution.

    With `stop_running` (a `fail_fast` push after its first failure), the executions of jobs still under way are
    stopped (no job is created after it) and their training jobs too, before the summary is taken. The alert is
    claimed in the ledger under `SUMMARY_ALERT_KEY` on the push's first job, so a retried task does not send it twice.
    """
    if stop_running:
        stop_push(document, training_state_machine_arn=training_state_machine_arn, sagemaker=sagemaker, sfn=sfn)
    jobs = [describe_job(name, values, document, region=region, sagemaker=sagemaker) for name, values in document.jobs]
    best = best_job(jobs, document.objective_type)
    completed = sum(job.status == TrainingJobStatus.COMPLETED for job in jobs)
    outcome = {
        "push": document.push,
        "jobs": len(jobs),
        "completed": completed,
        "all_completed": completed == len(jobs),
        "best": best,
        "alert": "duplicate",
    }
    ended = {UPLOAD_ENDED_TAG: f"{completed}/{len(jobs)}"}
    first = document.jobs[0][0]
    claim = ledger.claim_alert(first, SUMMARY_ALERT_KEY, now_ms=clock(), lease_until_ms=clock() + _LEASE_MS)
    if claim is None and ledger.get(first) is not None:
        if document.upload:
            _tag_upload(s3, document.upload, ended)
        return outcome  # sent (or being sent) by an earlier attempt
    alert = alerts.push_summary_alert(
        push=document.push,
        project=document.project,
        region=region,
        jobs=jobs,
        objective_metric_name=document.objective_metric_name,
        objective_type=document.objective_type,
        best=best,
        source=document.source,
        code_uri=document.code_uri,
        execution_arn=execution_arn,
        time=time,
    )
    message_id = alerts.publish_claimed(alert, claim=claim, ledger=ledger, topic_arn=topic_arn, sns=sns, clock=clock)
    if claim is None:
        # The first job never reached the ledger (its submission never ran): nothing to claim on, sent unclaimed.
        logger.warning("push summary sent without a ledger claim", extra={"push": document.push})
    if document.upload:
        _tag_upload(s3, document.upload, ended)  # after the alert: `push --wait` ends on it
    return outcome | {"alert": "published", "message_id": message_id}


def describe_job(
    job_name: str, values: Mapping[str, Any], document: PushDocument, *, region: str, sagemaker: SageMakerClient
) -> alerts.MatrixJob:
    """One job's row of the summary, from DescribeTrainingJob (`NOT_CREATED` when SageMaker has no such job)."""
    try:
        description = sagemaker.describe_training_job(TrainingJobName=job_name)
    except sagemaker.exceptions.ClientError as exc:
        # A job that does not exist is answered ValidationException ("Could not find"), on AWS as on moto.
        if exc.response.get("Error", {}).get("Code") not in {"ValidationException", "ResourceNotFound"}:
            raise
        return alerts.MatrixJob(job_name=job_name, matrix=values, status=NOT_CREATED)
    state = described_training_job(dict(description), region=region, tags={PROJECT_TAG: document.project})
    start, end = state.training_start_ms, state.training_end_ms
    metric = document.objective_metric_name
    return alerts.MatrixJob(
        job_name=job_name,
        matrix=values,
        status=state.status,
        secondary_status=state.secondary_status,
        duration_seconds=(end - start) // 1000 if start and end and end >= start else None,
        billable_seconds=state.billable_seconds,
        objective=state.final_metrics.get(metric) if metric else None,
        failure_reason=state.failure_reason,
    )


def best_job(jobs: Sequence[alerts.MatrixJob], objective_type: str) -> str | None:
    """The completed job with the best objective value (the first in matrix order on a tie); None without one."""
    scored = [job for job in jobs if job.status == TrainingJobStatus.COMPLETED and job.objective is not None]
    if not scored:
        return None
    sign = -1 if objective_type == "Minimize" else 1
    best = max(scored, key=lambda job: sign * (job.objective or 0.0))
    return best.job_name


def stop_push(
    document: PushDocument,
    *,
    training_state_machine_arn: str | None,
    sagemaker: SageMakerClient,
    sfn: SFNClient,
) -> list[str]:
    """Stop the push's job executions still running, then its training jobs still running; return the jobs stopped.

    The executions go first, so a submission still waiting (for capacity, say) creates no job afterwards.
    """
    if training_state_machine_arn:
        executions = training_state_machine_arn.replace(":stateMachine:", ":execution:")
        for job_name, _ in document.jobs:
            try:
                sfn.stop_execution(
                    executionArn=f"{executions}:{job_name}", error="sagepush.FailFast", cause="another job failed"
                )
            except sfn.exceptions.ExecutionDoesNotExist:
                continue
    stopped = []
    for job_name, _ in document.jobs:
        try:
            status = sagemaker.describe_training_job(TrainingJobName=job_name)["TrainingJobStatus"]
            if status in _RUNNING:
                sagemaker.stop_training_job(TrainingJobName=job_name)
                stopped.append(job_name)
        except sagemaker.exceptions.ClientError as exc:
            if exc.response.get("Error", {}).get("Code") not in {"ValidationException", "ResourceNotFound"}:
                raise
    logger.info("push stopped after a failure", extra={"push": document.push, "stopped": stopped})
    return stopped


def _tag_upload(s3: S3Client, upload: Mapping[str, Any], tags: Mapping[str, str]) -> None:
    """Add `tags` to the upload's version, keeping its others; logged, not raised, when it cannot be done (the
    upload was deleted, say): the alert matters more than the tag."""
    version = upload.get("version_id")
    extra: dict[str, Any] = {"VersionId": version} if version not in (None, "null") else {}
    try:
        current = s3.get_object_tagging(Bucket=upload["bucket"], Key=upload["key"], **extra)["TagSet"]
        merged: list[TagTypeDef] = [{"Key": k, "Value": v} for k, v in tags.items()]
        merged += [tag for tag in current if tag["Key"] not in tags]
        s3.put_object_tagging(Bucket=upload["bucket"], Key=upload["key"], Tagging={"TagSet": merged[:10]}, **extra)
    except Exception:  # best effort by design: the summary alert is what tells the project
        logger.warning("could not tag the push's upload", extra={"upload": dict(upload)}, exc_info=True)
