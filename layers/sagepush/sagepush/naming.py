"""Deterministic names: the training job name is derived from the project, the code and the upload."""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass

from sagepush.errors import InputError

PROJECT_PATTERN = re.compile(r"[a-z0-9][a-z0-9-]*")
# SageMaker's TrainingJobName: ^[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}
JOB_NAME_PATTERN = re.compile(r"[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}")
MAX_JOB_NAME = 63
_DIGEST_CHARS = 8
_UPLOAD_CHARS = 6
MAX_MATRIX_JOBS = 100
"""The most jobs one push may start, whatever the deployment's policy says (its PolicyMaxJobsPerPush is capped so)."""


class NamingError(InputError):
    """A project name or an S3 key does not fit the naming rules."""


@dataclass(frozen=True, slots=True)
class UploadIdentity:
    """What identifies one upload of an object to S3, whichever of its parts the event carried."""

    bucket: str
    key: str
    version_id: str | None = None
    etag: str | None = None
    sequencer: str | None = None
    event_time: str | None = None

    def upload_id(self) -> str:
        """Return a hex digest of the object identity: version id, else etag + sequencer, else etag + event time.

        The same event delivered twice gives the same id; a new upload of the same bytes gives a new one.
        """
        parts: tuple[str, ...]
        if self.version_id and self.version_id != "null":
            parts = ("v", self.version_id)
        elif self.sequencer:
            parts = ("s", self.etag or "", self.sequencer)
        else:
            parts = ("t", self.etag or "", self.event_time or "")
        material = "\0".join((self.bucket, self.key, *parts))
        return hashlib.sha256(material.encode()).hexdigest()


def check_project(project: str, *, where: str = "project") -> str:
    """Return `project` when it matches `[a-z0-9][a-z0-9-]*`.

    Raises:
        NamingError: naming `where` and the rule.
    """
    if not PROJECT_PATTERN.fullmatch(project):
        raise NamingError(where, f"{project!r} is not a project name (use lower-case letters, digits and '-')")
    return project


def job_name(project: str, code_digest: str, upload_id: str, *, matrix_job: int | None = None) -> str:
    """Return `<project>-<code-digest[:8]>-<upload-id[:6]>`, the project cut so the name fits 63 characters; the
    jobs of a `[strategy]` matrix are `<push name>-<n>` (`push_name`), their 1-based place in matrix order."""
    if matrix_job is not None:
        if not 1 <= matrix_job <= MAX_MATRIX_JOBS:
            raise NamingError("strategy.matrix", f"job {matrix_job} is beyond the {MAX_MATRIX_JOBS} a push may start")
        return _checked(f"{push_name(project, code_digest, upload_id)}-{matrix_job}")
    return _checked(_name(project, code_digest, upload_id, reserve=0))


def push_name(project: str, code_digest: str, upload_id: str) -> str:
    """Return the name of a `[strategy]` push (its matrix execution): a job name with room kept for `-<n>`, so every
    job of the push is `<push name>-<n>` and a push's jobs are found from its name alone."""
    return _checked(_name(project, code_digest, upload_id, reserve=len(f"-{MAX_MATRIX_JOBS}")))


def matrix_job_names(push: str, count: int) -> list[str]:
    """Return the job names of a push of `count` jobs, in matrix order."""
    return [f"{push}-{n}" for n in range(1, count + 1)]


def _name(project: str, code_digest: str, upload_id: str, *, reserve: int) -> str:
    check_project(project)
    suffix = f"-{code_digest[:_DIGEST_CHARS]}-{upload_id[:_UPLOAD_CHARS]}"
    head = project[: MAX_JOB_NAME - reserve - len(suffix)].rstrip("-")
    return f"{head}{suffix}"


def _checked(name: str) -> str:
    if not JOB_NAME_PATTERN.fullmatch(name):
        raise NamingError("job_name", f"{name!r} does not match SageMaker's training job name pattern")
    return name


def project_from_key(key: str, *, prefix: str = "incoming/") -> str:
    """Return the project named by an ingest key `incoming/<project>/<anything>`.

    Raises:
        NamingError: the key is outside the prefix, has no file part, or names an invalid project.
    """
    if not key.startswith(prefix):
        raise NamingError("detail.object.key", f"{key!r} is outside {prefix!r} (upload to {prefix}<project>/<file>)")
    project, sep, rest = key[len(prefix) :].partition("/")
    if not sep or not rest or rest.endswith("/"):
        raise NamingError("detail.object.key", f"{key!r} does not name a file (upload to {prefix}<project>/<file>)")
    return check_project(project, where="detail.object.key")
