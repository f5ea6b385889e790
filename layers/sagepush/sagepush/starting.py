"""How an execution starts: an upload becomes staged code and an execution named after its job, the upload tagged
with the outcome (the job, or the exact reason it was refused) — StageFunction's use case; and the input of an
execution started by hand becomes the same document (`prepare_direct_start`, run by SubmitFunction for Prepare)."""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import logging
import re
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

from sagepush import jobs, naming, spec, staging, strategy
from sagepush.errors import InputError

if TYPE_CHECKING:
    from collections.abc import Mapping

    from mypy_boto3_s3 import S3Client
    from mypy_boto3_s3.type_defs import TagTypeDef
    from mypy_boto3_stepfunctions import SFNClient

    from sagepush.config import JobDefaultSettings, StageSettings
    from sagepush.events import DirectStart, ObjectCreated

logger = logging.getLogger(__name__)

UPLOAD_JOB_TAG = "sagepush-job"
"""Tag StageFunction puts on an uploaded object: the training job it became."""


UPLOAD_PUSH_TAG = "sagepush-push"
"""Tag StageFunction puts on an uploaded object whose `[strategy]` matrix became several jobs: the push's name."""


UPLOAD_JOBS_TAG = "sagepush-jobs"
"""With `sagepush-push`: how many jobs the push started (`<push>-1` … `<push>-<n>`, `naming.matrix_job_names`)."""


UPLOAD_REFUSED_TAG = "sagepush-refused"
"""Tag StageFunction puts on an uploaded object it refused: why, as a tag value allows (readable, not exact)."""


REFUSAL_PIECES = 8
"""Tags `sagepush-refused-1` … `-8` hold the exact refusal, base64 in 256-character pieces (S3 allows 10 tags)."""


# S3's answers for a key that is not there: a versioned bucket answers a GET with a VersionId for a wrong key with
# NoSuchVersion, an unversioned one (or a GET without VersionId) with NoSuchKey.
_NO_SUCH_OBJECT = frozenset({"NoSuchKey", "NoSuchVersion"})
# Staged code's address: s3://<bucket>/<code prefix><project>/<digest>/sourcedir.tar.gz
_STAGED_CODE = re.compile(r"/([0-9a-f]{64})/sourcedir\.tar\.gz$")


class UploadError(InputError):
    """The upload itself cannot be staged: wrong key, wrong kind of file, too large."""


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
    jobs: tuple[str, ...] = ()
    """The jobs of a `[strategy]` push, in matrix order (`job_name` is then the push's name); empty for one job."""

    def as_dict(self) -> dict[str, Any]:
        """Return a JSON-ready dict."""
        return asdict(self)


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
    if started.jobs:
        tag_upload(s3, upload, {UPLOAD_PUSH_TAG: started.job_name, UPLOAD_JOBS_TAG: str(len(started.jobs))})
    else:
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
            merged = {name: jobs.tag_value(value) for name, value in tags.items()}
            merged.update({tag["Key"]: tag["Value"] for tag in current if tag["Key"] not in merged})
            # S3 keeps at most 10 tags on an object: sagepush's come first.
            tag_set: list[TagTypeDef] = [{"Key": name, "Value": value} for name, value in merged.items()]
            s3.put_object_tagging(Bucket=upload.bucket, Key=key, Tagging={"TagSet": tag_set[:10]}, **version)
        except Exception as exc:  # best effort by design: the outcome is in the logs and the ledger anyway
            if jobs.error_code(exc) in _NO_SUCH_OBJECT:
                continue
            logger.warning("could not tag the upload", extra={"key": key, "tags": dict(tags)}, exc_info=True)
        return


def refusal_tags(reason: str) -> dict[str, str]:
    """The tags that tell the pusher why its upload was refused: `sagepush-refused`, the reason as a tag value allows
    (quotes, brackets and newlines replaced, cut at 256), and the exact reason in base64 pieces (`refusal_of` reads
    them back). A reason longer than the pieces hold is cut and ends with "…"."""
    room = REFUSAL_PIECES * jobs.TAG_VALUE_MAX * 3 // 4  # bytes that fit, base64 being 4 characters per 3 bytes
    exact = reason.encode()
    if len(exact) > room:
        exact = exact[: room - len("…".encode())].decode(errors="ignore").encode() + "…".encode()
    encoded = base64.b64encode(exact).decode()
    pieces = [encoded[start : start + jobs.TAG_VALUE_MAX] for start in range(0, len(encoded), jobs.TAG_VALUE_MAX)]
    return {UPLOAD_REFUSED_TAG: jobs.tag_value(reason)} | {
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
    ) -> bool:
        # Every job's request is built, and checked against the job policy, before the code is staged: a bad
        # manifest, or one beyond the policy, is refused at the upload with nothing staged, not half-way through.
        source = {name: metadata.get(f"sagepush-{name}", "") for name in jobs.SOURCE_FIELDS}
        upload_id = upload.identity.upload_id()
        matrix = strategy.of_manifest(manifest, max_jobs=settings.job_policy.max_jobs_per_push)
        push = naming.push_name(project, digest, upload_id) if matrix else None
        planned_jobs = []
        for index, (table, values) in enumerate(_job_tables(manifest, matrix), 1):
            job_manifest = manifest
            if manifest is not None and table is not None:
                where = strategy.job_source(manifest.source, index, values) if matrix else manifest.source
                job_manifest = spec.Manifest(source=where, table=table)
            job_name = naming.job_name(project, digest, upload_id, matrix_job=index if matrix else None)
            resolved = spec.resolve_spec(job_manifest, jobs.defaults_from(settings, project))
            if job_manifest is not None:
                jobs.check_model(
                    job_manifest.table,
                    project=project,
                    origin=job_manifest.source,
                    job_policy=settings.job_policy,
                    resolved=resolved,
                    region=settings.aws_region,
                )
            jobs.check_entry_point(resolved, files)
            jobs.build_job_request(
                resolved,
                job_policy=settings.job_policy,
                deployment=jobs.deployment_of(settings, project=project, code_uri=uri),
                job_name=job_name,
                tags=jobs.job_tags(project, digest, source) | strategy.job_tags(push, values),
            )
            planned_jobs.append(
                {
                    "job_name": job_name,
                    "spec": dict(table or {}),
                    "matrix": {"push": push, "values": values} if push else None,
                    "timeout_seconds": jobs.execution_timeout(resolved),
                    "stages_code": resolved.stages_code,
                }
            )
        planned.update(jobs=planned_jobs, source=source, push=push, matrix=matrix)
        # An image that runs its own entrypoint needs no staged code, unless as a channel.
        return any(job["stages_code"] for job in planned_jobs)

    staged = _stage_first_found(upload, project=project, settings=settings, limits=limits, s3=s3, before_upload=plan)
    code = staged.code
    common = {
        "project": project,
        "code_uri": staged.uri,
        "code_digest": code.digest,
        "source": planned["source"],
        "upload": {"bucket": upload.bucket, "key": upload.key, "version_id": upload.version_id},
    }
    job_documents = [
        {
            "job_name": job["job_name"],
            **common,
            "spec": job["spec"],
            "matrix": job["matrix"],
            "timeout_seconds": job["timeout_seconds"],
        }
        for job in planned["jobs"]
    ]
    push, matrix = planned["push"], planned["matrix"]
    if push is None:
        name, machine, document = job_documents[0]["job_name"], settings.state_machine_arn, job_documents[0]
    else:
        name, machine = push, settings.matrix_state_machine_arn
        document = {"push": push, **common, **matrix.as_input(), "jobs": job_documents}
    execution_arn, already = _start_execution(sfn, machine, name, document)
    logger.info("training execution started", extra={"job_name": name, "already_started": already})
    return StartedJob(
        job_name=name,
        project=project,
        code_uri=staged.uri,
        code_digest=code.digest,
        code_reused=staged.reused,
        execution_arn=execution_arn,
        already_started=already,
        dropped=code.dropped,
        jobs=tuple(job["job_name"] for job in job_documents) if push else (),
    )


def _job_tables(
    manifest: spec.Manifest | None, matrix: strategy.Strategy | None
) -> list[tuple[dict[str, Any] | None, dict[str, Any]]]:
    """(manifest table, matrix values) of each job: the manifest's own, or each matrix job's."""
    if manifest is None:
        return [(None, {})]
    if matrix is None:
        return [(dict(manifest.table), {})]
    return list(zip(matrix.manifests(manifest.table), matrix.jobs, strict=True))


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
            if jobs.error_code(exc) not in _NO_SUCH_OBJECT:
                raise
            if index == len(keys) - 1:
                # Retrying cannot bring it back (deleted, or a key no encoding of the event finds): refuse it visibly.
                tried = ", ".join(repr(k) for k in keys)
                raise UploadError(upload.key, f"is not in s3://{upload.bucket} (tried {tried})") from exc
            logger.info("decoded key not found, trying the key as delivered", extra={"key": key})
    raise AssertionError("unreachable: candidate_keys is never empty")


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


def prepare_direct_start(start: DirectStart, *, execution_name: str, settings: JobDefaultSettings) -> dict[str, Any]:
    """Return the execution document a direct start of TrainingStateMachine runs on, as StageFunction writes one:
    the manifest with `set` applied, checked as an upload's would be (the same errors), its job named after the code
    and the execution, so a repeated start names the same job.

    Raises:
        InputError: the project, the code or the manifest is wrong, or the job goes beyond the policy.
    """
    project = naming.check_project(start.project, where="project")
    table = apply_settings(start.spec, start.set)
    resolved = spec.resolve_spec(spec.Manifest(source="input", table=table), jobs.defaults_from(settings, project))
    jobs.check_model(
        table,
        project=project,
        origin="input",
        job_policy=settings.job_policy,
        resolved=resolved,
        region=settings.aws_region,
    )
    if resolved.stages_code and not start.code_uri:
        what = "runs a script from" if resolved.runs_script else f"gets as channel {resolved.code_channel!r}"
        raise UploadError("code_uri", f"is required: the job {what} the staged code")
    match = _STAGED_CODE.search(start.code_uri)
    digest = match.group(1) if match else hashlib.sha256(start.code_uri.encode()).hexdigest()
    job_name = naming.job_name(project, digest, hashlib.sha256(execution_name.encode()).hexdigest())
    jobs.build_job_request(
        resolved,
        job_policy=settings.job_policy,
        deployment=jobs.deployment_of(settings, project=project, code_uri=start.code_uri),
        job_name=job_name,
        tags=jobs.job_tags(project, digest, start.source),
    )
    return {
        "job_name": job_name,
        "project": project,
        "code_uri": start.code_uri,
        "code_digest": digest,
        "spec": table,
        "source": dict(start.source),
        "upload": None,
        "matrix": None,
        "timeout_seconds": jobs.execution_timeout(resolved),
    }


def apply_settings(table: Mapping[str, Any], settings: Mapping[str, Any]) -> dict[str, Any]:
    """Return a copy of manifest `table` with each dotted key of `settings` set (`hyperparameters.lr` = 0.1)."""
    merged: dict[str, Any] = json.loads(json.dumps(table))
    for dotted, value in settings.items():
        *parents, last = dotted.split(".")
        node = merged
        for depth, part in enumerate(parents):
            child = node.setdefault(part, {})
            if not isinstance(child, dict):
                raise UploadError(f"set.{dotted}", f"{'.'.join(parents[: depth + 1])} is not a table")
            node = child
        node[last] = value
    return merged
