"""A training project on disk: archived, staged and rendered exactly as a push would be."""

from __future__ import annotations

import json
import re
import tarfile
import tempfile
import tomllib
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sagepush import images, jobs, naming, policy, request, spec, staging, strategy

if TYPE_CHECKING:
    from collections.abc import Mapping

PLACEHOLDER_ROLE = "arn:{partition}:iam::111122223333:role/sagepush-sagemaker-execution"
DEFAULT_ARTIFACT_BUCKET = "sagepush-artifacts"
"""The artifact bucket a render assumes when no deployment is named."""
RENDER_UPLOAD_ID = "0" * 64
"""A render has no upload: the job name's upload part is zeros, so it is stable and visibly not a real job."""


def project_name(path: Path) -> str:
    """Derive a project name from a path: lower-case, [a-z0-9-], as the ingest key requires."""
    stem = path.resolve().name
    for suffix in staging.UPLOAD_SUFFIXES:
        if stem.lower().endswith(suffix):
            stem = stem[: -len(suffix)]
            break
    name = re.sub(r"[^a-z0-9-]+", "-", stem.lower()).strip("-")
    return name or "project"


def archive_directory(directory: Path, destination: Path) -> Path:
    """Write `directory` as an uncompressed tar at `destination`; staging then sorts, filters and compresses it."""
    with tarfile.open(destination, "w", format=tarfile.PAX_FORMAT) as archive:
        for path in sorted(directory.rglob("*")):
            relative = path.relative_to(directory)
            if relative.parts[0] == ".git":
                continue
            archive.add(path, arcname=relative.as_posix(), recursive=False)
    return destination


def stage_path(path: Path, workdir: Path) -> tuple[staging.StagedCode, Path]:
    """Stage a directory, archive or script into `workdir`/sourcedir.tar.gz; return what staging reported."""
    source = archive_directory(path, workdir / "upload.tar") if path.is_dir() else path
    output = workdir / "sourcedir.tar.gz"
    with source.open("rb") as src, output.open("wb") as dst:
        staged = staging.stage_archive(src, dst, filename=source.name)
    return staged, output


def render_jobs(
    path: Path,
    *,
    region: str,
    project: str | None = None,
    role: str | None = None,
    output_path: str = "s3://sagepush-artifacts/output/",
    artifact_bucket: str = DEFAULT_ARTIFACT_BUCKET,
    job_policy: policy.Policy | None = None,
) -> list[dict[str, Any]]:
    """Return the request of every job a push of `path` makes: one, or one per combination of its `[strategy]`
    matrix, in matrix order, each named `…-<n>`.

    Raises:
        InputError: the strategy, the manifest or a request is wrong, or a job goes beyond the policy.
    """
    name, staged = _staged_project(path, project)
    return render_staged_jobs(
        staged,
        project=name,
        region=region,
        role=role,
        output_path=output_path,
        artifact_bucket=artifact_bucket,
        job_policy=job_policy,
    )


def render_staged_jobs(
    staged: staging.StagedCode,
    *,
    project: str,
    region: str,
    role: str | None = None,
    output_path: str = "s3://sagepush-artifacts/output/",
    artifact_bucket: str = DEFAULT_ARTIFACT_BUCKET,
    job_policy: policy.Policy | None = None,
) -> list[dict[str, Any]]:
    """Return the request of every job staged code makes (`render_staged` for each job of its `[strategy]`).

    Raises:
        InputError: the strategy, the manifest or a request is wrong, or a job goes beyond the policy.
    """
    from dataclasses import replace

    chosen_policy = job_policy or template_policy(artifact_bucket)
    manifest = staged.manifest
    matrix = strategy.of_manifest(manifest, max_jobs=chosen_policy.max_jobs_per_push)
    options: dict[str, Any] = {
        "project": project,
        "region": region,
        "role": role,
        "output_path": output_path,
        "artifact_bucket": artifact_bucket,
        "job_policy": chosen_policy,
    }
    if manifest is None or matrix is None:
        return [render_staged(staged, **options)]
    return [
        render_staged(
            replace(
                staged,
                manifest=replace(manifest, table=table, source=strategy.job_source(manifest.source, index, values)),
            ),
            matrix_job=(index, values),
            **options,
        )
        for index, (table, values) in enumerate(zip(matrix.manifests(manifest.table), matrix.jobs, strict=True), 1)
    ]


def _staged_project(path: Path, project: str | None) -> tuple[str, staging.StagedCode]:
    """The project name (checked) and what staging `path` in a scratch directory reports, as a render needs them."""
    name = naming.check_project(project or project_name(path), where="--project")
    with tempfile.TemporaryDirectory(prefix="sagepush-render-") as workdir:
        staged, _ = stage_path(path, Path(workdir))
    return name, staged


def render_staged(
    staged: staging.StagedCode,
    *,
    project: str,
    region: str,
    role: str | None = None,
    output_path: str = "s3://sagepush-artifacts/output/",
    artifact_bucket: str = DEFAULT_ARTIFACT_BUCKET,
    job_policy: policy.Policy | None = None,
    matrix_job: tuple[int, Mapping[str, Any]] | None = None,
) -> dict[str, Any]:
    """Return the request for staged code: resolved against the deployment's `role` and `output_path`, checked
    against `job_policy` (else the template's defaults for `artifact_bucket`). `matrix_job` is the place and values
    of one job of a `[strategy]` push (named and tagged as StageFunction does).

    Raises:
        InputError: the manifest or request is wrong, or the job goes beyond the policy (PolicyError).
    """
    partition = request.partition_for_region(region)
    role = role or PLACEHOLDER_ROLE.format(partition=partition)
    push = naming.push_name(project, staged.digest, RENDER_UPLOAD_ID) if matrix_job else None
    resolved = spec.resolve_spec(
        staged.manifest,
        spec.Defaults(
            role=role, instance_type="ml.m5.xlarge", output_path=policy.project_output_path(output_path, project)
        ),
    )
    job_policy = job_policy or template_policy(artifact_bucket)
    if staged.manifest is not None:
        jobs.check_model(
            staged.manifest.table,
            project=project,
            origin=staged.manifest.source,
            job_policy=job_policy,
            resolved=resolved,
            region=region,
        )
    jobs.check_entry_point(resolved, staged.files)
    code_uri = f"s3://{artifact_bucket}/code/{project}/{staged.digest}/sourcedir.tar.gz"
    deployment = policy.Deployment(
        project=project,
        region=region,
        role=role,
        output_path=output_path,
        code_uri=code_uri,
        framework_accounts=images.framework_accounts(region),
    )
    return jobs.build_job_request(
        resolved,
        job_policy=job_policy,
        deployment=deployment,
        job_name=naming.job_name(project, staged.digest, RENDER_UPLOAD_ID, matrix_job=matrix_job and matrix_job[0]),
        tags=jobs.job_tags(project, staged.digest, {}) | strategy.job_tags(push, matrix_job[1] if matrix_job else {}),
    )


DEFAULT_POLICY = Path(__file__).with_name("default-policy.json")
"""template.yaml's JOB_POLICY with its parameters' defaults, `${ArtifactBucket}` left in: what a render checks
against when no deployment is named, installed with the CLI (template.yaml is not). A unit test keeps it equal to the
template (`python -m tests.unit.test_policy --write` rewrites it)."""


def template_policy(artifact_bucket: str) -> policy.Policy:
    """Return the job policy a deployment of template.yaml with default parameters would have."""
    text = DEFAULT_POLICY.read_text().replace("${ArtifactBucket}", artifact_bucket)
    return policy.Policy.from_json(text, source="template.yaml JOB_POLICY")


def template_policy_text(template: Mapping[str, Any]) -> str:
    """Return `template`'s JOB_POLICY with every parameter but ArtifactBucket replaced by its default."""
    from sagepush_cli import template as templates

    rendered = template["Resources"]["StageFunction"]["Properties"]["Environment"]["Variables"]["JOB_POLICY"]["Fn::Sub"]
    values = {**templates.parameter_defaults(template), "ArtifactBucket": "${ArtifactBucket}"}
    return re.sub(r"\$\{([A-Za-z0-9]+)\}", lambda match: values[match.group(1)], str(rendered))


def policy_file(path: Path) -> policy.Policy:
    """Read a job policy from a TOML or JSON file of `sagepush.policy.Policy` fields (`[policy]` table or top level).

    Raises:
        PolicyError: the file cannot be read or parsed, or names an unknown field or a bad value.
    """
    try:
        text = path.read_text()
        document = json.loads(text) if path.suffix == ".json" else tomllib.loads(text)
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise policy.PolicyError(str(path), f"cannot be read as a policy ({exc})") from exc
    table = document.get("policy", document)
    if not isinstance(table, dict):
        raise policy.PolicyError(f"{path}: policy", "is not a table")
    return policy.Policy.from_document(table, source=str(path))
