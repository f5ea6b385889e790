"""The training job a deployment builds from a manifest: its defaults, its request (checked against the job policy),
its tags; shared by StageFunction's plan (`starting`) and SubmitFunction's request (`submitting`)."""

from __future__ import annotations

import difflib
import re
from typing import TYPE_CHECKING, Any

from sagepush import images, policy, registry, request, spec
from sagepush.errors import InputError

if TYPE_CHECKING:
    from collections.abc import Mapping

    from sagepush.config import JobDefaultSettings


SOURCE_FIELDS = ("commit", "branch", "repo", "author")
"""Upload metadata (`x-amz-meta-sagepush-<field>`) carried into tags, the ledger and alerts."""


TAGGED_SOURCE_FIELDS = ("commit", "branch", "repo")


# A job's own start-up, queueing and upload time beyond MaxRuntime + MaxWait before its execution gives up.
SETTLE_GRACE_SECONDS = 3600


# SageMaker tag values: https://docs.aws.amazon.com/sagemaker/latest/APIReference/API_Tag.html
_TAG_VALUE_DISALLOWED = re.compile(r"[^\w\s.:/=+\-@]", re.UNICODE)


TAG_VALUE_MAX = 256


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
    """Refuse a job whose entry point is not in its staged code (`files`, laid out by `source_dir` and
    `dependencies` as staging lays them out): it would fail on a paid instance.

    Raises:
        SpecError: naming `entry_point`, the path looked for and the nearest staged files.
    """
    if not resolved.runs_script:
        return  # the image runs its own entrypoint
    path = request.program(resolved)
    if path in files:
        return
    scripts = sorted(name for name in files if name.endswith(".py"))
    close = difflib.get_close_matches(path, scripts, n=3) or scripts[:3]
    hint = f"; staged scripts: {', '.join(close)}" if close else "; the code holds no .py file"
    inside = f" (source_dir {resolved.source_dir!r}: the entry point is relative to it)" if resolved.source_dir else ""
    raise spec.SpecError(resolved.where("entry_point"), f"{path!r} is not in the staged code{inside}{hint}")


def check_model(
    table: Mapping[str, Any],
    *,
    project: str,
    origin: str,
    job_policy: policy.Policy,
    resolved: spec.TrainingSpec,
    region: str,
) -> registry.ModelSettings | None:
    """Read a manifest's `[model]` and `[endpoint]`, check the endpoint against the deployment's policy and find the
    image the model is served with: at the upload, in render and before a model is registered or deployed, so a
    model that could not be registered is refused before it is trained.

    Raises:
        InputError: a malformed table (SpecError), an endpoint beyond the policy (PolicyError), or no inference image
            for the job's framework, version and Python (SpecError), naming the field.
    """
    model = registry.read_model(table, project=project, origin=origin)
    if model is None:
        return None
    if model.endpoint is not None:
        policy.check_endpoint(model.endpoint, job_policy, where=lambda field: f"{origin}: endpoint.{field}")
    try:
        inference_image(resolved, model.endpoint, region=region)
    except InputError as exc:
        raise spec.SpecError(
            f"{origin}: {exc.where}", f"{exc.message} (no image serves the model [model] registers)"
        ) from exc
    return model


def inference_image(resolved: spec.TrainingSpec, endpoint: registry.EndpointSettings | None, *, region: str) -> str:
    """The image that serves a job's model: its framework's inference image for the endpoint's instance type
    (serverless: the CPU image; no endpoint: the processor it was trained on), or the job's own image.

    Raises:
        InputError: no framework and no image, or no inference image for the framework, version and Python.
    """
    if resolved.framework is None or resolved.framework_version is None:
        if resolved.image_uri:
            return resolved.image_uri
        raise InputError("framework", "a model is registered with its framework's inference image: name the framework")
    serverless = endpoint is not None and endpoint.serverless
    if serverless:
        instance_type = None
    elif endpoint is not None:
        instance_type = endpoint.instance_type
    else:
        instance_type = resolved.instance_type
    return images.inference_image_uri(
        resolved.framework,
        resolved.framework_version,
        resolved.py_version,
        instance_type,
        region,
        serverless=serverless,
    )


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


def execution_timeout(resolved: spec.TrainingSpec) -> int:
    """Seconds the job's execution waits for its end: pending for capacity (up to max_pending_time), waiting for spot
    and running, plus `SETTLE_GRACE_SECONDS`."""
    return (resolved.max_pending_time or 0) + resolved.max_run + (resolved.max_wait or 0) + SETTLE_GRACE_SECONDS


def job_tags(project: str, code_digest: str, source: Mapping[str, str]) -> dict[str, str]:
    """Return the `sagepush:*` tags of a job; the status rule selects jobs by `sagepush:project`."""
    tags = {"sagepush:project": project, "sagepush:code-digest": code_digest[:12]}
    for name in TAGGED_SOURCE_FIELDS:
        value = tag_value(source.get(name, ""))
        if value:
            tags[f"sagepush:{name}"] = value
    return tags


def tag_value(text: str) -> str:
    """Return `text` as an S3/SageMaker tag value: allowed characters only, at most 256 of them."""
    return _TAG_VALUE_DISALLOWED.sub("_", " ".join(text.split()))[:TAG_VALUE_MAX]


def error_code(exc: Exception) -> str:
    """The AWS error code of a botocore ClientError (or anything with its `response`), else ""."""
    response = getattr(exc, "response", None)
    return str(response.get("Error", {}).get("Code", "")) if isinstance(response, dict) else ""
