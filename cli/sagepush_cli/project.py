"""A training project on disk: archived, staged and rendered exactly as a push would be."""

from __future__ import annotations

import re
import tarfile
import tempfile
from pathlib import Path
from typing import Any

from sagepush import jobs, naming, request, spec, staging

PLACEHOLDER_ROLE = "arn:{partition}:iam::111122223333:role/sagepush-sagemaker-execution"
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


def render(
    path: Path,
    *,
    region: str,
    project: str | None = None,
    role: str | None = None,
    output_path: str = "s3://sagepush-artifacts/output/",
    artifact_bucket: str = "sagepush-artifacts",
    defaults: spec.Defaults | None = None,
) -> dict[str, Any]:
    """Return the CreateTrainingJob request a push of `path` would send, validated, without calling AWS."""
    name = naming.check_project(project or project_name(path), where="--project")
    partition = request.partition_for_region(region)
    with tempfile.TemporaryDirectory(prefix="sagepush-render-") as workdir:
        staged, _ = stage_path(path, Path(workdir))
    resolved = spec.resolve_spec(
        staged.manifest,
        defaults
        or spec.Defaults(
            role=role or PLACEHOLDER_ROLE.format(partition=partition),
            instance_type="ml.m5.xlarge",
            output_path=output_path,
        ),
    )
    job_name = naming.job_name(name, staged.digest, RENDER_UPLOAD_ID)
    code_uri = f"s3://{artifact_bucket}/code/{name}/{staged.digest}/sourcedir.tar.gz"
    return dict(
        request.build_request(
            resolved,
            job_name=job_name,
            code_uri=code_uri,
            region=region,
            tags=jobs.job_tags(name, staged.digest, {}),
        )
    )
