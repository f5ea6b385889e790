"""Settings: each function's environment, parsed once into a typed object that names what is missing or wrong."""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, fields
from typing import TYPE_CHECKING, Any, ClassVar, Self

from sagepush.errors import InputError
from sagepush.events import SECONDARY_STATUSES
from sagepush.policy import Policy, PolicyError

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping

RUNTIME_VARIABLES = frozenset({"AWS_REGION"})
"""Variables the Lambda runtime sets itself, so the template does not declare them."""

_ARN = re.compile(r"arn:aws[a-z-]*:[a-z0-9-]+:[a-z0-9-]*:(\d{12})?:.+")
_BUCKET = re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]")
_S3_URI = re.compile(r"s3://[a-z0-9][a-z0-9.-]{1,61}[a-z0-9](/.*)?")


class ConfigError(InputError):
    """One or more environment variables are missing or malformed; the message lists each by name."""


def _text(value: str) -> str:
    if not value:
        raise ValueError("a non-empty string")
    return value


def _pattern(pattern: re.Pattern[str], form: str) -> Callable[[str], str]:
    def parse(value: str) -> str:
        if not pattern.fullmatch(value):
            raise ValueError(form)
        return value

    return parse


def _positive_int(value: str) -> int:
    if not value.isdigit() or int(value) < 1:
        raise ValueError("a positive whole number")
    return int(value)


def _prefix(value: str) -> str:
    if not value.endswith("/") or value.startswith("/"):
        raise ValueError("a key prefix ending in '/', such as incoming/")
    return value


def _policy(value: str) -> Policy:
    try:
        return Policy.from_json(value)
    except PolicyError as exc:
        raise ValueError(f"a JSON job policy ({exc})") from exc


def _tags(value: str) -> dict[str, str]:
    try:
        tags = json.loads(value or "{}")
    except json.JSONDecodeError:
        tags = None
    if not isinstance(tags, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in tags.items()):
        raise ValueError('a JSON object of string tags, such as {"team": "ml"}')
    return tags


def _alert_on(value: str) -> frozenset[str]:
    names = {name.strip() for name in value.split(",") if name.strip()}
    if names == {"all"}:
        return frozenset(SECONDARY_STATUSES)
    if names == {"none"}:
        return frozenset()
    if not names or not names <= set(SECONDARY_STATUSES):
        raise ValueError(
            f"'all', 'none' or a comma-separated list of SageMaker secondary statuses ({', '.join(SECONDARY_STATUSES)})"
        )
    return frozenset(names)


def _optional(parse: Callable[[str], Any]) -> Callable[[str], Any]:
    def parse_optional(value: str) -> Any:
        return parse(value) if value else None

    return parse_optional


arn = _pattern(_ARN, "an ARN")
bucket = _pattern(_BUCKET, "an S3 bucket name")
s3_uri = _pattern(_S3_URI, "an s3://bucket/prefix URI")

PARSERS: dict[str, Callable[[str], Any]] = {
    "AWS_REGION": _text,
    "ARTIFACT_BUCKET": bucket,
    "INGEST_PREFIX": _prefix,
    "CODE_PREFIX": _prefix,
    "STATE_MACHINE_ARN": arn,
    "MATRIX_STATE_MACHINE_ARN": arn,
    "SAGEMAKER_ROLE_ARN": arn,
    "OUTPUT_PATH": s3_uri,
    "DEFAULT_INSTANCE_TYPE": _pattern(re.compile(r"ml\.[a-z0-9.-]+"), "a SageMaker instance type such as ml.m5.xlarge"),
    "DEFAULT_VOLUME_SIZE": _positive_int,
    "DEFAULT_MAX_RUN": _positive_int,
    "DEFAULT_TAGS": _tags,
    "JOB_POLICY": _policy,
    "MAX_UPLOAD_BYTES": _positive_int,
    "MAX_EXPANDED_BYTES": _positive_int,
    "MAX_MEMBERS": _positive_int,
    "DEAD_LETTER_QUEUE_URL": _pattern(re.compile(r"https?://\S+/\d{12}/[\w.-]{1,80}"), "an SQS queue URL"),
    "LEDGER_TABLE": _text,
    "ALERTS_TOPIC_ARN": arn,
    "ALERT_ON": _alert_on,
    "RECONCILE_GRACE_SECONDS": _positive_int,
    "RECONCILE_MAX_JOBS": _positive_int,
    "CAPACITY_WAIT_SECONDS": _positive_int,
    "OUTPUT_KMS_KEY": _optional(_text),
    "SUBMIT_LOG_GROUP": _pattern(re.compile(r"/aws/lambda/[\w.-]+"), "a Lambda log group such as /aws/lambda/<name>"),
}
"""How each variable any function reads is parsed; the value's form is named when parsing fails."""


@dataclass(frozen=True, slots=True)
class _Settings:
    OPTIONAL: ClassVar[frozenset[str]] = frozenset()

    @classmethod
    def variables(cls) -> tuple[str, ...]:
        """Return the environment variables this settings object reads, in field order."""
        return tuple(f.name.upper() for f in fields(cls))

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Self:
        """Parse settings from `env` (default: os.environ).

        Raises:
            ConfigError: every missing or malformed variable, by name, with the form it should take.
        """
        env = os.environ if env is None else env
        values: dict[str, Any] = {}
        problems: list[str] = []
        for name in cls.variables():
            raw = env.get(name)
            if raw is None and name not in cls.OPTIONAL:
                problems.append(f"{name} is not set")
                continue
            try:
                values[name.lower()] = PARSERS[name](raw or "")
            except ValueError as exc:
                problems.append(f"{name}={raw!r} is not {exc}")
        if problems:
            raise ConfigError("environment", "; ".join(problems))
        return cls(**values)


@dataclass(frozen=True, slots=True)
class JobDefaultSettings(_Settings):
    """The deployment's defaults for whatever a manifest leaves out."""

    aws_region: str
    sagemaker_role_arn: str
    output_path: str
    output_kms_key: str | None
    default_instance_type: str
    default_volume_size: int
    default_max_run: int
    default_tags: dict[str, str]
    job_policy: Policy

    OPTIONAL: ClassVar[frozenset[str]] = frozenset({"OUTPUT_KMS_KEY"})


@dataclass(frozen=True, slots=True)
class StageSettings(JobDefaultSettings):
    """StageFunction: where uploads come from, where staged code goes, which state machine runs the job.

    A refused upload is parked in `dead_letter_queue_url`, recorded in `ledger_table` and alerted on `alerts_topic_arn`
    (see sagepush.refusals).
    """

    artifact_bucket: str
    ingest_prefix: str
    code_prefix: str
    state_machine_arn: str
    matrix_state_machine_arn: str  # a push of a `[strategy]` matrix: its jobs as one execution
    max_upload_bytes: int
    max_expanded_bytes: int
    max_members: int
    alerts_topic_arn: str
    dead_letter_queue_url: str
    ledger_table: str  # where a refused upload is recorded, so `sagepush status` lists it


@dataclass(frozen=True, slots=True)
class SubmitSettings(JobDefaultSettings):
    """SubmitFunction: the defaults a request is built from, and how long a job waits for capacity (one alert)."""

    ledger_table: str
    alerts_topic_arn: str
    capacity_wait_seconds: int


@dataclass(frozen=True, slots=True)
class JobStatusSettings(_Settings):
    """What the status logic needs: where job states are recorded, where alerts go, and which transitions alert."""

    aws_region: str
    ledger_table: str
    alerts_topic_arn: str
    alert_on: frozenset[str]


@dataclass(frozen=True, slots=True)
class StatusSettings(JobStatusSettings):
    """StatusFunction: the status settings, plus the dead-letter queue a malformed state-change event is parked in."""

    dead_letter_queue_url: str


@dataclass(frozen=True, slots=True)
class ReconcileSettings(JobStatusSettings):
    """ReconcileFunction: the status settings, plus how long a job may stay silent and how many are checked a run."""

    reconcile_grace_seconds: int
    reconcile_max_jobs: int


@dataclass(frozen=True, slots=True)
class HostingSettings(JobDefaultSettings):
    """ModelFunction: the defaults a job's manifest is resolved against (the role a model runs as, the policy an
    endpoint is checked against), the ledger alerts are claimed in, and where they go."""

    ledger_table: str
    alerts_topic_arn: str


@dataclass(frozen=True, slots=True)
class NotifySettings(_Settings):
    """NotifyFunction: where the could-not-submit and push-summary alerts go, SubmitFunction's log group (the
    could-not-submit alert's logs link), and the ledger a push summary is claimed in (sent once)."""

    aws_region: str
    alerts_topic_arn: str
    submit_log_group: str
    ledger_table: str
