"""Following a push: from the uploaded object to its training job, the job's transitions, its logs and its end.

Everything here reads what the deployed application leaves behind, with the fewest permissions that allow it:
the tag StageFunction puts on the upload (`sagepush-job` or `sagepush-refused`), DescribeTrainingJob, and the job's
CloudWatch Logs stream.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final

from sagepush.errors import SagepushError
from sagepush.events import TERMINAL_STATUSES, TrainingJobStatus
from sagepush.naming import matrix_job_names
from sagepush.starting import UPLOAD_JOB_TAG as JOB_TAG
from sagepush.starting import UPLOAD_JOBS_TAG as JOBS_TAG
from sagepush.starting import UPLOAD_PUSH_TAG as PUSH_TAG
from sagepush.starting import refusal_of

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator, Mapping, Sequence

    from mypy_boto3_logs import CloudWatchLogsClient
    from mypy_boto3_s3 import S3Client
    from mypy_boto3_sagemaker import SageMakerClient

LOG_GROUP: Final = "/aws/sagemaker/TrainingJobs"
"""Where SageMaker writes training jobs' output: one stream per host, `<job>/algo-<n>-<epoch>`."""
POLL_SECONDS: Final = 2.0


class FollowError(SagepushError):
    """Following the push cannot go on: nothing happened before the deadline."""


class UploadRefusedError(FollowError):
    """StageFunction refused the upload; the message is its reason."""


@dataclass(frozen=True, slots=True)
class JobView:
    """A training job as a person following it wants to see it."""

    name: str
    status: str
    secondary_status: str | None = None
    failure_reason: str | None = None
    transitions: tuple[tuple[str, str | None, str], ...] = ()  # (status, start time ISO, message)
    metrics: Mapping[str, float] = field(default_factory=dict)
    model_uri: str | None = None
    created: str | None = None
    ended: str | None = None
    training_seconds: int | None = None
    billable_seconds: int | None = None

    @property
    def completed(self) -> bool:
        return self.status == TrainingJobStatus.COMPLETED

    @property
    def finished(self) -> bool:
        return self.status in TERMINAL_STATUSES

    def as_dict(self) -> dict[str, Any]:
        """Return a JSON-ready dict."""
        return {
            "job_name": self.name,
            "status": self.status,
            "secondary_status": self.secondary_status,
            "failure_reason": self.failure_reason,
            "transitions": [{"status": s, "start": t, "message": m} for s, t, m in self.transitions],
            "metrics": dict(self.metrics),
            "model_uri": self.model_uri,
            "created": self.created,
            "ended": self.ended,
            "training_seconds": self.training_seconds,
            "billable_seconds": self.billable_seconds,
        }


def job_view(description: Mapping[str, Any]) -> JobView:
    """Return the view of a DescribeTrainingJob response."""
    return JobView(
        name=description["TrainingJobName"],
        status=description["TrainingJobStatus"],
        secondary_status=description.get("SecondaryStatus"),
        failure_reason=description.get("FailureReason"),
        transitions=tuple(
            (t["Status"], _iso(t["StartTime"]), t.get("StatusMessage", ""))
            for t in description.get("SecondaryStatusTransitions", [])
        ),
        metrics={m["MetricName"]: m["Value"] for m in description.get("FinalMetricDataList", [])},
        model_uri=description.get("ModelArtifacts", {}).get("S3ModelArtifacts"),
        created=_iso(description.get("CreationTime")),
        ended=_iso(description.get("TrainingEndTime")),
        training_seconds=_seconds_between(description.get("TrainingStartTime"), description.get("TrainingEndTime")),
        billable_seconds=description.get("BillableTimeInSeconds"),
    )


def _seconds_between(start: Any, end: Any) -> int | None:
    if not hasattr(start, "timestamp") or not hasattr(end, "timestamp") or end < start:
        return None
    return int(end.timestamp() - start.timestamp())


def _iso(value: Any) -> str | None:
    return value.isoformat(timespec="seconds") if hasattr(value, "isoformat") else None


def upload_version(s3: S3Client, *, bucket: str, key: str) -> str | None:
    """Return the version id of the object now at `key` (None on an unversioned bucket)."""
    version = s3.get_object_tagging(Bucket=bucket, Key=key).get("VersionId")
    return version if version and version != "null" else None


@dataclass(frozen=True, slots=True)
class StagedUpload:
    """What StageFunction made of an upload: one job, or the jobs of a `[strategy]` push."""

    jobs: tuple[str, ...]
    push: str | None = None


def job_of_upload(
    s3: S3Client,
    *,
    bucket: str,
    key: str,
    version_id: str | None,
    timeout: float,
    poll: float = POLL_SECONDS,
    clock: Callable[[], float] = time.monotonic,
) -> str:
    """Wait until StageFunction has tagged the upload; return the job it became (a push's first job).

    Raises:
        FollowError: as `jobs_of_upload`.
    """
    staged = jobs_of_upload(s3, bucket=bucket, key=key, version_id=version_id, timeout=timeout, poll=poll, clock=clock)
    return staged.jobs[0]


def jobs_of_upload(
    s3: S3Client,
    *,
    bucket: str,
    key: str,
    version_id: str | None,
    timeout: float,
    poll: float = POLL_SECONDS,
    clock: Callable[[], float] = time.monotonic,
) -> StagedUpload:
    """Wait until StageFunction has tagged the upload; return the job, or the push and its jobs, it became.

    Raises:
        FollowError: the upload was refused (the message is StageFunction's reason), or it was not staged in time.
    """
    version: dict[str, Any] = {"VersionId": version_id} if version_id else {}
    deadline = clock() + timeout
    while True:
        tags = {t["Key"]: t["Value"] for t in s3.get_object_tagging(Bucket=bucket, Key=key, **version)["TagSet"]}
        if PUSH_TAG in tags and tags.get(JOBS_TAG, "").isdigit():
            push = tags[PUSH_TAG]
            return StagedUpload(jobs=tuple(matrix_job_names(push, int(tags[JOBS_TAG]))), push=push)
        if JOB_TAG in tags:
            return StagedUpload(jobs=(tags[JOB_TAG],))
        refusal = refusal_of(tags)
        if refusal is not None:
            raise UploadRefusedError(f"s3://{bucket}/{key} was refused: {refusal}")
        if clock() >= deadline:
            raise FollowError(
                f"s3://{bucket}/{key} was not staged within {timeout:g}s; see StageFunction's logs and its "
                "dead-letter queue (StageDeadLetterQueueUrl)"
            )
        time.sleep(poll)  # polling S3: the tag appears when StageFunction, elsewhere, has staged the upload


def describe(sagemaker: SageMakerClient, job_name: str) -> JobView | None:
    """Return the job's view, or None while it does not exist yet."""
    from botocore.exceptions import ClientError

    try:
        description = sagemaker.describe_training_job(TrainingJobName=job_name)
    except ClientError as exc:
        # SageMaker answers ValidationException "Requested resource not found" for a job that does not exist.
        if exc.response.get("Error", {}).get("Code") in ("ValidationException", "ResourceNotFound"):
            return None
        raise
    return job_view(description)


def watch(
    sagemaker: SageMakerClient,
    job_name: str,
    *,
    timeout: float | None,
    poll: float = POLL_SECONDS,
    clock: Callable[[], float] = time.monotonic,
) -> Iterator[JobView]:
    """Yield the job's view each time it changes, until it ends (the last view yielded is the end).

    Raises:
        FollowError: the job did not end (or was not created) before `timeout` seconds.
    """
    deadline = None if timeout is None else clock() + timeout
    last: tuple[Any, ...] | None = None
    while True:
        view = describe(sagemaker, job_name)
        if view is not None:
            marker = (view.status, view.secondary_status, len(view.transitions))
            if marker != last:
                last = marker
                yield view
            if view.finished:
                return
        if deadline is not None and clock() >= deadline:
            state = view.secondary_status if view else "not created yet"
            raise FollowError(f"{job_name} did not end within {timeout:g}s (last seen: {state})")
        time.sleep(poll)  # polling SageMaker: the job runs elsewhere


def watch_all(
    sagemaker: SageMakerClient,
    job_names: Sequence[str],
    *,
    timeout: float | None,
    poll: float = POLL_SECONDS,
    clock: Callable[[], float] = time.monotonic,
    given_up: Callable[[], bool] = lambda: False,
) -> Iterator[dict[str, JobView | None]]:
    """Yield every job's view (None while not created) each time one changes, until all have ended (the last yield),
    or until `given_up` says no job not yet ended will (a push that ended with jobs it never created).

    Raises:
        FollowError: not every job ended before `timeout` seconds.
    """
    deadline = None if timeout is None else clock() + timeout
    last: tuple[Any, ...] | None = None
    ended: dict[str, JobView] = {}
    while True:
        views = {name: ended.get(name) or describe(sagemaker, name) for name in job_names}
        ended.update({name: view for name, view in views.items() if view is not None and view.finished})
        marker = tuple((v.status, v.secondary_status, len(v.transitions)) if v else None for v in views.values())
        if marker != last:
            last = marker
            yield views
        waiting = [name for name in job_names if name not in ended]
        if not waiting or (all(views[name] is None for name in waiting) and given_up()):
            return
        if deadline is not None and clock() >= deadline:
            running = [name for name in job_names if name not in ended]
            raise FollowError(f"{', '.join(running)} did not end within {timeout:g}s")
        time.sleep(poll)  # polling SageMaker: the jobs run elsewhere


def wait_until(
    check: Callable[[], bool],
    *,
    timeout: float,
    poll: float = POLL_SECONDS,
    clock: Callable[[], float] = time.monotonic,
) -> bool:
    """Poll `check` until it holds (True) or `timeout` seconds have passed (False)."""
    deadline = clock() + timeout
    while not check():
        if clock() >= deadline:
            return False
        time.sleep(poll)  # polling AWS: what is awaited happens elsewhere
    return True


class LogReader:
    """Reads a training job's log events from every host's stream, each call returning only what is new.

    It uses DescribeLogStreams on the group and GetLogEvents on the job's own streams only, so a role can be
    limited to its project's streams (`log-stream:<project>-*`).
    """

    def __init__(self, logs: CloudWatchLogsClient, job_name: str) -> None:
        self._logs = logs
        self._job_name = job_name
        self._tokens: dict[str, str] = {}  # stream → nextForwardToken of the last read

    def new_events(self) -> list[dict[str, Any]]:
        """Return the events logged since the last call (all of them the first time), in time order."""
        from botocore.exceptions import ClientError

        try:
            streams = self._logs.describe_log_streams(logGroupName=LOG_GROUP, logStreamNamePrefix=f"{self._job_name}/")[
                "logStreams"
            ]
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") == "ResourceNotFoundException":
                return []  # no training job has logged in this account and region yet
            raise
        events: list[dict[str, Any]] = []
        for stream in streams:
            name = stream["logStreamName"]
            while True:
                arguments: dict[str, Any] = {"logGroupName": LOG_GROUP, "logStreamName": name, "startFromHead": True}
                if name in self._tokens:
                    arguments["nextToken"] = self._tokens[name]
                page = self._logs.get_log_events(**arguments)
                batch = page.get("events", [])
                events.extend({**event, "logStreamName": name} for event in batch)
                if page.get("nextForwardToken"):
                    self._tokens[name] = page["nextForwardToken"]
                if not batch:  # a stream's pages end with an empty one
                    break
        events.sort(key=lambda event: event.get("timestamp", 0))  # stable: each stream keeps its own order
        return events


def log_tail(logs: CloudWatchLogsClient, job_name: str, lines: int = 20) -> list[str]:
    """Return the last `lines` lines the job logged."""
    return [event["message"].rstrip("\n") for event in LogReader(logs, job_name).new_events()[-lines:]]
