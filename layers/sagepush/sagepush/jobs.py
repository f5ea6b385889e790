"""A training job's start: an upload becomes staged code and an execution; a submit task becomes a training job."""

from __future__ import annotations

import base64
import contextlib
import difflib
import hashlib
import json
import logging
import re
import time
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from sagepush import alerts, images, naming, policy, request, spec, staging
from sagepush.errors import InputError, SagepushError
from sagepush.ledger import Submission

if TYPE_CHECKING:
    from collections.abc import Mapping

    from mypy_boto3_s3 import S3Client
    from mypy_boto3_s3.type_defs import TagTypeDef
    from mypy_boto3_sagemaker import SageMakerClient
    from mypy_boto3_sns import SNSClient
    from mypy_boto3_stepfunctions import SFNClient

    from sagepush.config import JobDefaultSettings, StageSettings, SubmitSettings
    from sagepush.events import ObjectCreated, SubmitTask
    from sagepush.ledger import Ledger

logger = logging.getLogger(__name__)

SOURCE_FIELDS = ("commit", "branch", "repo", "author")
"""Upload metadata (`x-amz-meta-sagepush-<field>`) carried into tags, the ledger and alerts."""
TAGGED_SOURCE_FIELDS = ("commit", "branch", "repo")
UPLOAD_JOB_TAG = "sagepush-job"
"""Tag StageFunction puts on an uploaded object: the training job it became."""
UPLOAD_REFUSED_TAG = "sagepush-refused"
"""Tag StageFunction puts on an uploaded object it refused: why, as a tag value allows (readable, not exact)."""
REFUSAL_PIECES = 8
"""Tags `sagepush-refused-1` … `-8` hold the exact refusal, base64 in 256-character pieces (S3 allows 10 tags)."""
CAPACITY_TRANSITION = "WaitingForCapacity"
"""The ledger's alert key for a job's wait for capacity: its one alert, and when the wait began."""
_CAPACITY_LEASE_MS = 120_000
# A job's own start-up, queueing and upload time beyond MaxRuntime + MaxWait before its execution gives up.
SETTLE_GRACE_SECONDS = 3600
# SageMaker tag values: https://docs.aws.amazon.com/sagemaker/latest/APIReference/API_Tag.html
_TAG_VALUE_DISALLOWED = re.compile(r"[^\w\s.:/=+\-@]", re.UNICODE)
_TAG_VALUE_MAX = 256
# S3's answers for a key that is not there: a versioned bucket answers a GET with a VersionId for a wrong key with
# NoSuchVersion, an unversioned one (or a GET without VersionId) with NoSuchKey.
_NO_SUCH_OBJECT = frozenset({"NoSuchKey", "NoSuchVersion"})
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


class UploadError(InputError):
    """The upload itself cannot be staged: wrong key, wrong kind of file, too large."""


class ThrottledError(SagepushError):
    """An AWS service throttled the request or failed it transiently; the state machine retries with backoff."""


class CapacityError(SagepushError):
    """The account has no capacity left for this job yet (ResourceLimitExceeded); retried with backoff for hours."""


class CapacityExhaustedError(SagepushError):
    """No capacity freed up within the deployment's CAPACITY_WAIT_SECONDS: the submission fails, with its alert."""


class UnansweredError(SagepushError):
    """CreateTrainingJob got no answer (timeout, dropped connection): the job may exist; the retry attaches to it."""


@dataclass(frozen=True, slots=True)
class StartedJob:
    """What StageFunction did with one upload."""

    job_name: str
    project: str
    code_uri: str
    code_digest: str
    code_reused: bool
    execution_arn: str
    already_started: bool
    dropped: tuple[str, ...] = ()

    def as_dict(self) -> dict[str, Any]:
        """Return a JSON-ready dict."""
        return asdict(self)


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


def defaults_from(settings: JobDefaultSettings, project: str) -> spec.Defaults:
    """Return the deployment defaults a manifest of `project` is resolved against (output under the project's prefix)."""
    return spec.Defaults(
        role=settings.sagemaker_role_arn,
        instance_type=settings.default_instance_type,
        volume_size=settings.default_volume_size,
        max_run=settings.default_max_run,
        output_path=policy.project_output_path(settings.output_path, project),
        output_kms_key=settings.output_kms_key,
        tags=settings.default_tags,
    )


def check_entry_point(resolved: spec.TrainingSpec, files: frozenset[str]) -> None:
    """Refuse a job whose entry point (under `source_dir`) is not in its staged code: it would fail on a paid instance.

    Raises:
        SpecError: naming `entry_point` (or `source_dir`), the path looked for and the nearest staged files.
    """
    base = [p for p in (resolved.source_dir or "").split("/") if p not in ("", ".")]
    path = request.program(resolved)
    if path in files:
        return
    if base and not any(name.startswith("/".join(base) + "/") for name in files):
        raise spec.SpecError(resolved.where("source_dir"), f"{resolved.source_dir!r} is not a directory of the code")
    scripts = sorted(name for name in files if name.endswith(".py"))
    close = difflib.get_close_matches(path, scripts, n=3) or scripts[:3]
    hint = f"; staged scripts: {', '.join(close)}" if close else "; the code holds no .py file"
    raise spec.SpecError(resolved.where("entry_point"), f"{path!r} is not in the staged code{hint}")


def deployment_of(settings: JobDefaultSettings, *, project: str, code_uri: str) -> policy.Deployment:
    """Return what the deployment owns for a job of `project`, which its request is checked against."""
    return policy.Deployment(
        project=project,
        region=settings.aws_region,
        role=settings.sagemaker_role_arn,
        output_path=settings.output_path,
        code_uri=code_uri,
        output_kms_key=settings.output_kms_key,
        framework_accounts=images.framework_accounts(settings.aws_region),
    )


def build_job_request(
    resolved: spec.TrainingSpec,
    *,
    job_policy: policy.Policy,
    deployment: policy.Deployment,
    job_name: str,
    tags: Mapping[str, str],
) -> dict[str, Any]:
    """Build the job's CreateTrainingJob request and check it against the deployment's policy.

    Raises:
        InputError: the spec or request is wrong (RequestError), or goes beyond the policy (PolicyError, listing every
            field with its value and limit).
    """
    built = request.build_request(
        resolved, job_name=job_name, code_uri=deployment.code_uri, region=deployment.region, tags=tags
    )
    policy.check(
        built,
        job_policy,
        deployment,
        overrides=resolved.request_overrides,
        manifest_tags=resolved.tags,
        where=lambda path: request.field_of(path, resolved),
    )
    return dict(built)


def job_tags(project: str, code_digest: str, source: Mapping[str, str]) -> dict[str, str]:
    """Return the `sagepush:*` tags of a job; the status rule selects jobs by `sagepush:project`."""
    tags = {"sagepush:project": project, "sagepush:code-digest": code_digest[:12]}
    for name in TAGGED_SOURCE_FIELDS:
        value = tag_value(source.get(name, ""))
        if value:
            tags[f"sagepush:{name}"] = value
    return tags


def start_from_upload(upload: ObjectCreated, *, settings: StageSettings, s3: S3Client, sfn: SFNClient) -> StartedJob:
    """Stage one upload and start its training execution, named after the job; tag the upload with the outcome.

    Idempotent: the staged code is content-addressed and the execution name is the job name, so a redelivered
    event reuses both. The uploaded object (its version) is tagged `sagepush-job=<job name>`, or
    `sagepush-refused=<reason>` when it is refused, so whoever pushed it can follow it (`sagepush push --wait`).

    Raises:
        InputError: the key, the archive or the manifest is wrong; the message names the culprit.
    """
    try:
        started = _start_from_upload(upload, settings=settings, s3=s3, sfn=sfn)
    except InputError as exc:
        if upload.key.startswith(settings.ingest_prefix):
            tag_upload(s3, upload, refusal_tags(str(exc)))
        raise
    tag_upload(s3, upload, {UPLOAD_JOB_TAG: started.job_name})
    return started


def tag_upload(s3: S3Client, upload: ObjectCreated, tags: Mapping[str, str]) -> None:
    """Add `tags` to the uploaded object's version, keeping the tags it has; a failure is logged, not raised.

    The tags only tell the pusher what became of the upload: they must never turn a staged job into a retry.
    """
    version: dict[str, Any] = {"VersionId": upload.version_id} if upload.version_id not in (None, "null") else {}
    for key in upload.candidate_keys:
        try:
            current = s3.get_object_tagging(Bucket=upload.bucket, Key=key, **version)["TagSet"]
            merged = {name: tag_value(value) for name, value in tags.items()}
            merged.update({tag["Key"]: tag["Value"] for tag in current if tag["Key"] not in merged})
            # S3 keeps at most 10 tags on an object: sagepush's come first.
            tag_set: list[TagTypeDef] = [{"Key": name, "Value": value} for name, value in merged.items()]
            s3.put_object_tagging(Bucket=upload.bucket, Key=key, Tagging={"TagSet": tag_set[:10]}, **version)
        except Exception as exc:  # best effort by design: the outcome is in the logs and the ledger anyway
            if _error_code(exc) in _NO_SUCH_OBJECT:
                continue
            logger.warning("could not tag the upload", extra={"key": key, "tags": dict(tags)}, exc_info=True)
        return


def tag_value(text: str) -> str:
    """Return `text` as an S3/SageMaker tag value: allowed characters only, at most 256 of them."""
    return _TAG_VALUE_DISALLOWED.sub("_", " ".join(text.split()))[:_TAG_VALUE_MAX]


def refusal_tags(reason: str) -> dict[str, str]:
    """The tags that tell the pusher why its upload was refused: `sagepush-refused`, the reason as a tag value allows
    (quotes, brackets and newlines replaced, cut at 256), and the exact reason in base64 pieces (`refusal_of` reads
    them back). A reason longer than the pieces hold is cut and ends with "…"."""
    room = REFUSAL_PIECES * _TAG_VALUE_MAX * 3 // 4  # bytes that fit, base64 being 4 characters per 3 bytes
    exact = reason.encode()
    if len(exact) > room:
        exact = exact[: room - len("…".encode())].decode(errors="ignore").encode() + "…".encode()
    encoded = base64.b64encode(exact).decode()
    pieces = [encoded[start : start + _TAG_VALUE_MAX] for start in range(0, len(encoded), _TAG_VALUE_MAX)]
    return {UPLOAD_REFUSED_TAG: tag_value(reason)} | {
        f"{UPLOAD_REFUSED_TAG}-{n}": piece for n, piece in enumerate(pieces, 1)
    }


def refusal_of(tags: Mapping[str, str]) -> str | None:
    """The reason StageFunction refused an upload, from the upload's tags (`refusal_tags`); None if it was not."""
    pieces = []
    for n in range(1, REFUSAL_PIECES + 1):
        piece = tags.get(f"{UPLOAD_REFUSED_TAG}-{n}")
        if piece is None:
            break
        pieces.append(piece)
    if pieces:
        with contextlib.suppress(ValueError):
            return base64.b64decode("".join(pieces), validate=True).decode(errors="replace")
    return tags.get(UPLOAD_REFUSED_TAG)


def _start_from_upload(upload: ObjectCreated, *, settings: StageSettings, s3: S3Client, sfn: SFNClient) -> StartedJob:
    project = naming.project_from_key(upload.key, prefix=settings.ingest_prefix)
    if upload.size is not None and upload.size > settings.max_upload_bytes:
        raise UploadError(upload.key, f"is {upload.size} bytes, over the {settings.max_upload_bytes}-byte upload limit")
    limits = staging.Limits(max_members=settings.max_members, max_total_bytes=settings.max_expanded_bytes)
    planned: dict[str, Any] = {}

    def plan(
        manifest: spec.Manifest | None, digest: str, uri: str, metadata: Mapping[str, str], files: frozenset[str]
    ) -> None:
        # The request is built, and checked against the job policy, before the code is staged: a bad manifest, or
        # one beyond the policy, is refused at the upload with nothing staged, not half-way through an execution.
        source = {name: metadata.get(f"sagepush-{name}", "") for name in SOURCE_FIELDS}
        job_name = naming.job_name(project, digest, upload.identity.upload_id())
        resolved = spec.resolve_spec(manifest, defaults_from(settings, project))
        check_entry_point(resolved, files)
        build_job_request(
            resolved,
            job_policy=settings.job_policy,
            deployment=deployment_of(settings, project=project, code_uri=uri),
            job_name=job_name,
            tags=job_tags(project, digest, source),
        )
        planned.update(job_name=job_name, resolved=resolved, source=source)

    staged = _stage_first_found(upload, project=project, settings=settings, limits=limits, s3=s3, before_upload=plan)
    code = staged.code
    job_name, resolved, source = planned["job_name"], planned["resolved"], planned["source"]
    execution_input = {
        "job_name": job_name,
        "project": project,
        "code_uri": staged.uri,
        "code_digest": code.digest,
        "spec": dict(code.manifest.table) if code.manifest else {},
        "source": source,
        "upload": {"bucket": upload.bucket, "key": upload.key, "version_id": upload.version_id},
        # Pending for capacity (up to max_pending_time), then waiting for spot and running.
        "timeout_seconds": (resolved.max_pending_time or 0)
        + resolved.max_run
        + (resolved.max_wait or 0)
        + SETTLE_GRACE_SECONDS,
    }
    execution_arn, already = _start_execution(sfn, settings.state_machine_arn, job_name, execution_input)
    logger.info("training execution started", extra={"job_name": job_name, "already_started": already})
    return StartedJob(
        job_name=job_name,
        project=project,
        code_uri=staged.uri,
        code_digest=code.digest,
        code_reused=staged.reused,
        execution_arn=execution_arn,
        already_started=already,
        dropped=code.dropped,
    )


def _stage_first_found(
    upload: ObjectCreated,
    *,
    project: str,
    settings: StageSettings,
    limits: staging.Limits,
    s3: S3Client,
    before_upload: staging.BeforeUpload,
) -> staging.StagedObject:
    keys = upload.candidate_keys
    for index, key in enumerate(keys):
        try:
            return staging.stage_object(
                bucket=upload.bucket,
                key=key,
                version_id=upload.version_id if upload.version_id != "null" else None,
                dest_bucket=settings.artifact_bucket,
                dest_prefix=f"{settings.code_prefix}{project}",
                limits=limits,
                s3=s3,
                before_upload=before_upload,
            )
        except s3.exceptions.ClientError as exc:
            if _error_code(exc) not in _NO_SUCH_OBJECT:
                raise
            if index == len(keys) - 1:
                # Retrying cannot bring it back (deleted, or a key no encoding of the event finds): refuse it visibly.
                tried = ", ".join(repr(k) for k in keys)
                raise UploadError(upload.key, f"is not in s3://{upload.bucket} (tried {tried})") from exc
            logger.info("decoded key not found, trying the key as delivered", extra={"key": key})
    raise AssertionError("unreachable: candidate_keys is never empty")


def _error_code(exc: Exception) -> str:
    response = getattr(exc, "response", None)
    return str(response.get("Error", {}).get("Code", "")) if isinstance(response, dict) else ""


def _start_execution(sfn: SFNClient, machine: str, name: str, document: Mapping[str, Any]) -> tuple[str, bool]:
    """Start the execution named `name` unless it exists; return its ARN and whether it already existed.

    StartExecution alone cannot tell: AWS answers a repeat with identical input with the running execution, and
    raises ExecutionAlreadyExists for a finished one. Looking first makes a redelivered event visible as such.
    """
    arn = machine.replace(":stateMachine:", ":execution:") + f":{name}"
    try:
        sfn.describe_execution(executionArn=arn)
    except sfn.exceptions.ExecutionDoesNotExist:
        pass
    else:
        return arn, True
    try:
        response = sfn.start_execution(stateMachineArn=machine, name=name, input=json.dumps(document))
    except sfn.exceptions.ExecutionAlreadyExists:
        # A concurrent delivery of the same upload started it between the two calls.
        return arn, True
    return response["executionArn"], False


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
    resolved = spec.resolve_spec(spec.Manifest(source="spec", table=task.spec), defaults_from(settings, task.project))
    digest = task.code_digest or hashlib.sha256(task.code_uri.encode()).hexdigest()
    job_name = task.job_name or naming.job_name(task.project, digest, _task_fingerprint(task))
    built = build_job_request(
        resolved,
        job_policy=settings.job_policy,
        deployment=deployment_of(settings, project=task.project, code_uri=task.code_uri),
        job_name=job_name,
        tags=job_tags(task.project, digest, task.source),
    )
    submission = Submission(
        job_name=job_name,
        project=task.project,
        code_uri=task.code_uri,
        code_digest=digest,
        source={name: task.source[name] for name in SOURCE_FIELDS if task.source.get(name)},
        task_token=task.task_token,
        attempt=task.attempt,
    )
    try:
        if not ledger.record_submission(submission, now_ms=time.time_ns() // 1_000_000):
            logger.info("job already in the ledger", extra={"job_name": job_name})
    except ClientError as exc:
        # Nothing was sent to SageMaker yet: a ledger that failed for a moment is retried like a throttle, rather
        # than ending the execution with a could-not-submit alert and losing the upload.
        if _error_code(exc) in _TRANSIENT:
            raise ThrottledError(f"{job_name}: the ledger failed transiently ({_error_code(exc)})") from exc
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
        code = _error_code(exc)
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
            source={name: task.source[name] for name in SOURCE_FIELDS if task.source.get(name)},
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
