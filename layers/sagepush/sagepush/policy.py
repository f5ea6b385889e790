"""The deployment's job policy: the bounds every training job stays inside, whatever its manifest asks for.

An uploader may write only to `incoming/<project>/`, yet the manifest in the upload chooses the job's role, image,
instances, volumes, network, keys, inputs and outputs. The policy, owned by whoever deploys sagepush (template
parameters, rendered into the `JOB_POLICY` variable of the functions that build requests), says which values are
allowed. It is checked on the final CreateTrainingJob request, after `request_overrides` are merged, so no spelling of
a field escapes it; every violation is reported at once, each naming the manifest field, the value and the limit.
IAM enforces the same limits where AWS has condition keys for them (template.yaml), so a request that slipped past
this check would still be refused by SageMaker.
"""

from __future__ import annotations

import fnmatch
import json
import re
from dataclasses import dataclass, field, fields
from typing import TYPE_CHECKING, Any

from sagepush.errors import InputError

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator, Mapping

    from sagepush.registry import EndpointSettings

PROJECT = "{project}"
"""Placeholder in a policy location: the job's project."""

# `request_overrides` reach only these request paths (a path and everything under it): settings that change how a
# job is observed or retried, never who it runs as, where its data comes from or goes, what it runs on or its limits.
OVERRIDABLE = (
    "AlgorithmSpecification.EnableSageMakerMetricsTimeSeries",
    "AlgorithmSpecification.MetricDefinitions",
    "AlgorithmSpecification.TrainingInputMode",
    "Environment",
    "ExperimentConfig",
    "InfraCheckConfig",
    "RemoteDebugConfig",
    "RetryStrategy",
    "ResourceConfig.KeepAlivePeriodInSeconds",
)
RESERVED_TAG_PREFIXES = ("sagepush:", "aws:")
"""Tag keys a manifest may not set: sagepush's own (they route alerts and IAM) and AWS's."""

_ECR_HOST = re.compile(r"^(?P<account>\d{12})\.dkr\.ecr(-fips)?\.(?P<region>[a-z0-9-]+)\.amazonaws\.com(\.cn)?/")
_ALGORITHM_ARN = re.compile(r"^arn:aws[a-z-]*:sagemaker:(?P<region>[a-z0-9-]+):(?P<account>\d{12}):algorithm/")
_S3_PREFIX = re.compile(r"^s3://[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]/(.*/)?$")


class PolicyError(InputError):
    """A job goes beyond the deployment's policy; `where` names the manifest field (every violation is listed)."""


@dataclass(frozen=True, slots=True)
class Policy:
    """What a job may ask for. Locations are S3 prefixes ending in '/', where `{project}` stands for the project.

    `role` and `output_path` are the deployment's own (the manifest may name them, or a role listed in `roles`);
    `image_accounts` adds registries to the SageMaker framework accounts of the job's region and the deployment's own
    account; an empty `subnets`, `security_group_ids` or `kms_keys` allows none beyond the deployment's defaults.
    """

    instance_types: tuple[str, ...] = ("ml.m5.*", "ml.c5.*", "ml.t3.*", "ml.g5.xlarge", "ml.g5.2xlarge")
    max_instance_count: int = 2
    max_run: int = 24 * 3600
    max_wait: int = 48 * 3600
    max_volume_size: int = 512
    require_spot: bool = False
    image_accounts: tuple[str, ...] = ()
    input_locations: tuple[str, ...] = ()
    checkpoint_location: str | None = None
    roles: tuple[str, ...] = ()
    subnets: tuple[str, ...] = ()
    security_group_ids: tuple[str, ...] = ()
    kms_keys: tuple[str, ...] = ()
    max_jobs_per_push: int = 4
    hosting_instance_types: tuple[str, ...] = ("ml.m5.*", "ml.c5.*", "ml.t2.*")
    max_hosting_instance_count: int = 2
    serverless_only: bool = False
    max_serverless_memory: int = 6144

    @classmethod
    def from_document(cls, document: Mapping[str, Any], *, source: str = "policy") -> Policy:
        """Build a policy from its JSON/TOML form (the field names above); missing fields take the defaults.

        Raises:
            PolicyError: an unknown key or a value of the wrong form, naming `source` and the key.
        """
        known = {f.name: f for f in fields(cls)}
        values: dict[str, Any] = {}
        for key, value in document.items():
            if key not in known:
                raise PolicyError(f"{source}: {key}", f"unknown policy key; expected one of {', '.join(known)}")
            values[key] = _PARSERS[key](value, f"{source}: {key}")
        return cls(**values)

    @classmethod
    def from_json(cls, text: str, *, source: str = "JOB_POLICY") -> Policy:
        """Build a policy from the `JOB_POLICY` JSON the template renders from its parameters."""
        try:
            document = json.loads(text)
        except json.JSONDecodeError as exc:
            raise PolicyError(source, f"is not JSON ({exc.msg} at {exc.pos})") from exc
        if not isinstance(document, dict):
            raise PolicyError(source, "is not a JSON object")
        return cls.from_document(document, source=source)

    def as_document(self) -> dict[str, Any]:
        """Return the policy in its JSON/TOML form."""
        return {f.name: _plain(getattr(self, f.name)) for f in fields(self) if getattr(self, f.name) is not None}


@dataclass(frozen=True, slots=True)
class Deployment:
    """What the deployment owns, against which a job's request is checked."""

    project: str
    region: str
    role: str
    output_path: str
    code_uri: str
    volume_kms_key: str | None = None
    output_kms_key: str | None = None
    subnets: tuple[str, ...] = ()
    security_group_ids: tuple[str, ...] = ()
    framework_accounts: frozenset[str] = field(default_factory=frozenset)

    @property
    def account(self) -> str:
        """The deployment's own account: the one its role is in."""
        return self.role.split(":")[4] if self.role.count(":") >= 5 else ""


@dataclass(frozen=True, slots=True)
class Violation:
    """One way a request goes beyond the policy: the request path, the value and the limit it breaks."""

    path: str
    value: str
    limit: str


def project_output_path(output_path: str, project: str) -> str:
    """Return the project's own output prefix under the deployment's output path (`s3://bucket/output/<project>/`)."""
    return f"{output_path.rstrip('/')}/{project}/"


def violations(request: Mapping[str, Any], policy: Policy, deployment: Deployment) -> list[Violation]:
    """Return every way `request` goes beyond `policy` for `deployment` (an empty list: it stays inside)."""
    return list(_violations(request, policy, deployment))


def overridden_paths(overrides: Mapping[str, Any], prefix: str = "") -> Iterator[str]:
    """Yield each leaf path `request_overrides` sets that the policy does not let it reach."""
    for key, value in overrides.items():
        path = f"{prefix}{key}"
        if any(path == allowed or path.startswith(f"{allowed}.") for allowed in OVERRIDABLE):
            continue
        if isinstance(value, dict) and value and any(a.startswith(f"{path}.") for a in OVERRIDABLE):
            yield from overridden_paths(value, f"{path}.")
        else:
            yield path


def check(
    request: Mapping[str, Any],
    policy: Policy,
    deployment: Deployment,
    *,
    overrides: Mapping[str, Any],
    manifest_tags: Mapping[str, str],
    where: Callable[[str], str],
) -> None:
    """Raise one PolicyError listing every violation, each with the manifest field `where` maps its path to.

    Raises:
        PolicyError: `where` names the first field; the message lists them all, with value and limit.
    """
    found = [Violation(f"request_overrides.{p}", "setting it", _overridable()) for p in overridden_paths(overrides)]
    found += [
        Violation(f"Tags.{key}", _q(value), "sagepush:* and aws:* tags are the deployment's")
        for key, value in manifest_tags.items()
        if key.startswith(RESERVED_TAG_PREFIXES)
    ]
    found += violations(request, policy, deployment)
    if not found:
        return
    labels = [(v.path if v.path.startswith("request_overrides.") else where(v.path), v) for v in found]
    if len(labels) == 1:
        label, violation = labels[0]
        raise PolicyError(label, f"{violation.value} is beyond the deployment's policy ({violation.limit})")
    text = "; ".join(f"{label}: {v.value} ({v.limit})" for label, v in labels)
    raise PolicyError("job policy", f"{len(labels)} fields are beyond the deployment's policy: {text}")


def _violations(request: Mapping[str, Any], policy: Policy, d: Deployment) -> Iterator[Violation]:
    roles = (d.role, *policy.roles)
    if request.get("RoleArn") not in roles:
        yield Violation("RoleArn", _q(request.get("RoleArn")), f"the role is the deployment's: {_list(roles)}")
    yield from _image(request.get("AlgorithmSpecification", {}), policy, d)
    yield from _resources(request.get("ResourceConfig", {}), policy, d)
    yield from _stopping(request, policy)
    yield from _locations(request, policy, d)
    yield from _network(request.get("VpcConfig"), policy, d)
    mlflow = request.get("MlflowConfig", {}).get("MlflowResourceArn")
    if mlflow is not None and not _own_resource(str(mlflow), d):
        yield Violation(
            "MlflowConfig.MlflowResourceArn", _q(mlflow), f"MLflow servers and apps of this account in {d.region}"
        )
    projects = [tag.get("Value") for tag in request.get("Tags", []) if tag.get("Key") == "sagepush:project"]
    if projects != [d.project]:
        # The status rule, alerts and IAM find a job's project by this tag: it is always the job's own, once.
        yield Violation("Tags.sagepush:project", _q(projects), f"exactly one, the job's project {d.project!r}")


def _resources(resources: Mapping[str, Any], policy: Policy, d: Deployment) -> Iterator[Violation]:
    instance_type = str(resources.get("InstanceType", ""))
    if not any(fnmatch.fnmatchcase(instance_type, pattern) for pattern in policy.instance_types):
        yield Violation("ResourceConfig.InstanceType", _q(instance_type), f"allowed: {_list(policy.instance_types)}")
    if "InstanceGroups" in resources:
        yield Violation("ResourceConfig.InstanceGroups", "set", "heterogeneous clusters are not allowed")
    count = resources.get("InstanceCount", 1)
    if isinstance(count, int) and count > policy.max_instance_count:
        yield Violation("ResourceConfig.InstanceCount", str(count), f"at most {policy.max_instance_count}")
    volume = resources.get("VolumeSizeInGB", 0)
    if isinstance(volume, int) and volume > policy.max_volume_size:
        yield Violation("ResourceConfig.VolumeSizeInGB", f"{volume} GB", f"at most {policy.max_volume_size} GB")
    key = resources.get("VolumeKmsKeyId")
    if key is not None and key not in (d.volume_kms_key, *policy.kms_keys):
        yield Violation("ResourceConfig.VolumeKmsKeyId", _q(key), f"allowed keys: {_list(policy.kms_keys)}")
    plan = resources.get("TrainingPlanArn")
    if plan is not None and not _own_resource(str(plan), d):
        # Reserved capacity this account bought: its jobs may use it, no one else's.
        yield Violation("ResourceConfig.TrainingPlanArn", _q(plan), f"training plans of this account in {d.region}")


def _own_resource(arn: str, d: Deployment) -> bool:
    """Whether `arn` names a SageMaker resource of the deployment's own account and region."""
    parts = arn.split(":", 5)
    return len(parts) == 6 and parts[2] == "sagemaker" and parts[3] == d.region and parts[4] == d.account


def _image(algorithm: Mapping[str, Any], policy: Policy, d: Deployment) -> Iterator[Violation]:
    if "AlgorithmName" in algorithm and "TrainingImage" not in algorithm:
        # An algorithm resource: one of this account's, or one in an account the policy trusts for images (a
        # subscribed AWS Marketplace algorithm is its seller's).
        name = str(algorithm["AlgorithmName"])
        match = _ALGORITHM_ARN.match(name)
        trusted = {d.account, *policy.image_accounts}
        if match is not None and (match.group("account") not in trusted or match.group("region") != d.region):
            limit = f"algorithms in {d.region} of this account or {_list(trusted)}"
            yield Violation("AlgorithmSpecification.AlgorithmName", _q(name), limit)
        return
    image = str(algorithm.get("TrainingImage", ""))
    accounts = {*d.framework_accounts, d.account, *policy.image_accounts}
    match = _ECR_HOST.match(image)
    if match is None or match.group("account") not in accounts or match.group("region") != d.region:
        limit = f"ECR images in {d.region} of the SageMaker framework accounts, this account or {_list(accounts)}"
        yield Violation("AlgorithmSpecification.TrainingImage", _q(image), limit)


def _stopping(request: Mapping[str, Any], policy: Policy) -> Iterator[Violation]:
    stopping = request.get("StoppingCondition", {})
    run = stopping.get("MaxRuntimeInSeconds", 0)
    if isinstance(run, int) and run > policy.max_run:
        yield Violation("StoppingCondition.MaxRuntimeInSeconds", f"{run} s", f"at most {policy.max_run} s")
    wait = stopping.get("MaxWaitTimeInSeconds")
    if isinstance(wait, int) and wait > policy.max_wait:
        yield Violation("StoppingCondition.MaxWaitTimeInSeconds", f"{wait} s", f"at most {policy.max_wait} s")
    if policy.require_spot and not request.get("EnableManagedSpotTraining"):
        yield Violation("EnableManagedSpotTraining", "false", "the deployment requires managed spot training")


def _locations(request: Mapping[str, Any], policy: Policy, d: Deployment) -> Iterator[Violation]:
    output = request.get("OutputDataConfig", {})
    own_output = project_output_path(d.output_path, d.project)
    if not str(output.get("S3OutputPath", "")).startswith(own_output):
        yield Violation("OutputDataConfig.S3OutputPath", _q(output.get("S3OutputPath")), f"under {own_output}")
    key = output.get("KmsKeyId")
    if key is not None and key not in (d.output_kms_key, *policy.kms_keys):
        yield Violation("OutputDataConfig.KmsKeyId", _q(key), f"allowed keys: {_list(policy.kms_keys)}")
    tensorboard = request.get("TensorBoardOutputConfig", {}).get("S3OutputPath")
    if tensorboard is not None and not str(tensorboard).startswith(own_output):
        yield Violation("TensorBoardOutputConfig.S3OutputPath", _q(tensorboard), f"under {own_output}")
    checkpoint = request.get("CheckpointConfig", {}).get("S3Uri")
    own_checkpoints = _located(policy.checkpoint_location, d.project)
    if checkpoint is not None and (own_checkpoints is None or not str(checkpoint).startswith(own_checkpoints)):
        limit = f"under {own_checkpoints}" if own_checkpoints else "the deployment has no checkpoint location"
        yield Violation("CheckpointConfig.S3Uri", _q(checkpoint), limit)
    inputs = [loc for loc in (_located(p, d.project) for p in policy.input_locations) if loc]
    for index, channel in enumerate(request.get("InputDataConfig", [])):
        uri = str(channel.get("DataSource", {}).get("S3DataSource", {}).get("S3Uri", ""))
        if uri == d.code_uri:  # the job's own staged code, as a channel under network isolation
            continue
        if not any(uri.startswith(prefix) for prefix in inputs):
            limit = f"inputs come from {_list(inputs)}" if inputs else "the deployment allows no input locations"
            yield Violation(f"InputDataConfig[{index}]", _q(uri), limit)


def _network(vpc: Mapping[str, Any] | None, policy: Policy, d: Deployment) -> Iterator[Violation]:
    if not vpc:
        return
    for name, chosen, own, allowed in (
        ("Subnets", vpc.get("Subnets", []), d.subnets, policy.subnets),
        ("SecurityGroupIds", vpc.get("SecurityGroupIds", []), d.security_group_ids, policy.security_group_ids),
    ):
        beyond = [value for value in chosen if value not in (*own, *allowed)]
        if beyond:
            yield Violation(f"VpcConfig.{name}", _list(beyond), f"allowed: {_list((*own, *allowed))}")


def _located(location: str | None, project: str) -> str | None:
    return location.replace(PROJECT, project) if location else None


def _overridable() -> str:
    return f"request_overrides may set only {', '.join(OVERRIDABLE)}"


def _list(values: Any) -> str:
    items = sorted(str(v) for v in values if v)
    return ", ".join(items) if items else "none"


def _q(value: object, limit: int = 80) -> str:
    text = json.dumps(value) if not isinstance(value, str) else f'"{value}"'
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _plain(value: Any) -> Any:
    return list(value) if isinstance(value, tuple) else value


def check_endpoint(endpoint: EndpointSettings, policy: Policy, *, where: Callable[[str], str]) -> None:
    """Raise a PolicyError when an `[endpoint]` asks for more than the deployment allows; `where` maps a field of the
    table (instance_type, initial_instance_count, memory_size_in_mb) to how the error names it.

    Raises:
        PolicyError: the first field beyond the policy, with its value and the limit.
    """
    if endpoint.serverless:
        memory = endpoint.memory_size_in_mb or 0
        if memory > policy.max_serverless_memory:
            raise PolicyError(
                where("memory_size_in_mb"),
                f"{memory} is beyond the deployment's policy (at most {policy.max_serverless_memory})",
            )
        return
    if policy.serverless_only:
        raise PolicyError(
            where("instance_type"),
            f"{_q(endpoint.instance_type)} is beyond the deployment's policy (serverless endpoints only: give "
            "memory_size_in_mb and max_concurrency instead)",
        )
    instance_type = endpoint.instance_type or ""
    if not any(fnmatch.fnmatchcase(instance_type, pattern) for pattern in policy.hosting_instance_types):
        raise PolicyError(
            where("instance_type"),
            f"{_q(instance_type)} is beyond the deployment's policy (allowed: {_list(policy.hosting_instance_types)})",
        )
    if endpoint.initial_instance_count > policy.max_hosting_instance_count:
        raise PolicyError(
            where("initial_instance_count"),
            f"{endpoint.initial_instance_count} is beyond the deployment's policy "
            f"(at most {policy.max_hosting_instance_count})",
        )


# ------------------------------------------------------------------------------------------------------ parsing
def _strings(value: object, where: str) -> tuple[str, ...]:
    if isinstance(value, str):
        value = [part.strip() for part in value.split(",") if part.strip()]
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise PolicyError(where, f"is {_q(value)}; expected a list of strings (or one comma-separated string)")
    return tuple(value)


def _locations_of(value: object, where: str) -> tuple[str, ...]:
    prefixes = _strings(value, where)
    for prefix in prefixes:
        if not _S3_PREFIX.match(prefix.replace(PROJECT, "project")):
            raise PolicyError(where, f"{_q(prefix)} is not an S3 prefix ending in '/' (s3://bucket/data/{PROJECT}/)")
    return prefixes


def _location(value: object, where: str) -> str | None:
    if value in (None, ""):
        return None
    (prefix,) = _locations_of([value], where) if isinstance(value, str) else _locations_of(value, where)
    return prefix


def _count(value: object, where: str) -> int:
    if isinstance(value, str) and value.isdigit():
        value = int(value)
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise PolicyError(where, f"is {_q(value)}; expected a positive whole number")
    return value


def _flag(value: object, where: str) -> bool:
    if isinstance(value, str) and value.lower() in ("true", "false"):
        return value.lower() == "true"
    if not isinstance(value, bool):
        raise PolicyError(where, f"is {_q(value)}; expected true or false")
    return value


_PARSERS: dict[str, Callable[[object, str], Any]] = {
    "instance_types": _strings,
    "max_instance_count": _count,
    "max_run": _count,
    "max_wait": _count,
    "max_volume_size": _count,
    "require_spot": _flag,
    "image_accounts": _strings,
    "input_locations": _locations_of,
    "checkpoint_location": _location,
    "roles": _strings,
    "subnets": _strings,
    "security_group_ids": _strings,
    "kms_keys": _strings,
    "max_jobs_per_push": _count,
    "hosting_instance_types": _strings,
    "max_hosting_instance_count": _count,
    "serverless_only": _flag,
    "max_serverless_memory": _count,
}
