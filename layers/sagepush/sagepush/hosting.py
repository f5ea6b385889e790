"""Model registry and hosting: ModelFunction's use cases.

- `register_job`: a completed job with `[model] register` becomes a version of its Model Package Group (created when
  missing), approved when every `approve_if` condition holds, else pending a person's approval; one ModelRegistered
  alert with the gate's verdicts. MatrixStateMachine registers the best job of a push (`register_push`).
- `on_package_change`: a version approved or rejected (by the gate, `sagepush approve`/`reject` or the console) is
  alerted once; an approved version whose package names an `[endpoint]` is deployed: CreateModel,
  CreateEndpointConfig, then CreateEndpoint, or UpdateEndpoint with a blue/green deployment that rolls back on the
  named CloudWatch alarms.
- `on_endpoint_change`: an endpoint in service, failed, or rolled back is alerted once.

Every name is derived from the group, the version and the endpoint (`registry.model_name`, `endpoint_config_name`),
every resource is described before it is created, and every alert is claimed in the ledger: an event or task
delivered twice deploys nothing twice and alerts once.
"""

from __future__ import annotations

import json
import logging
import re
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError

from sagepush import alerts, jobs, policy, registry, repack, spec
from sagepush.errors import InputError
from sagepush.events import EndpointStatus, TrainingJobStatus

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping

    from mypy_boto3_s3 import S3Client
    from mypy_boto3_sagemaker import SageMakerClient
    from mypy_boto3_sns import SNSClient

    from sagepush.config import HostingSettings
    from sagepush.ledger import Ledger

logger = logging.getLogger(__name__)

PROJECT_KEY = registry.PROJECT_PROPERTY
"""The package metadata key, and the tag on groups, models, configs and endpoints, naming the project."""
JOB_KEY = registry.JOB_PROPERTY
GROUP_TAG = "sagepush:model-group"
"""Tag on an endpoint: the group whose versions it serves (its state-change events carry it)."""
_LEASE_MS = 120_000
_VERSION = re.compile(r"-v(\d+)$")
_APPROVAL_STATUSES = {registry.APPROVED: "ModelApproved", registry.REJECTED: "ModelRejected"}
# SageMaker's "not there" answers: DescribeModelPackageGroup "... does not exist", DescribeModel "Could not find model",
# DescribeEndpoint / DescribeEndpointConfig "Could not find endpoint ...".
_MISSING = re.compile(r"does not exist|could not find|not found", re.IGNORECASE)
# Creating what exists: "Cannot create already existing model", "... already exists".
_EXISTS = re.compile(r"already exist", re.IGNORECASE)


@dataclass(frozen=True, slots=True)
class RegisterRequest:
    """A job to register: what TrainingStateMachine's (or MatrixStateMachine's) input says about it."""

    job_name: str
    project: str
    spec: Mapping[str, Any]
    source: Mapping[str, str]
    code_uri: str | None = None


def register_request(document: Mapping[str, Any]) -> RegisterRequest:
    """Read a Register task's payload.

    Raises:
        ValueError: a required field is missing or of the wrong type, named by its JSON path.
    """
    for key in ("job_name", "project"):
        if not isinstance(document.get(key), str) or not document[key]:
            raise ValueError(f"$.{key} is {document.get(key)!r}, expected a non-empty string")
    table = document.get("spec")
    if not isinstance(table, dict):
        raise ValueError(f"$.spec is {table!r}, expected the job's manifest table")
    source = document.get("source") or {}
    return RegisterRequest(
        job_name=document["job_name"],
        project=document["project"],
        spec=table,
        source={k: v for k, v in source.items() if isinstance(v, str)} if isinstance(source, dict) else {},
        code_uri=document.get("code_uri") if isinstance(document.get("code_uri"), str) else None,
    )


# ---------------------------------------------------------------------- registration
def register_job(
    request: RegisterRequest,
    *,
    settings: HostingSettings,
    sagemaker: SageMakerClient,
    s3: S3Client,
    sns: SNSClient,
    ledger: Ledger,
    clock: Callable[[], int] | None = None,
) -> dict[str, Any]:
    """Register `request`'s completed job as a model version; return what was done.

    A job that reported final metrics has them written next to its model (`registry.metrics_statistics` at
    `registry.metrics_uri`), the version's model quality statistics; the same job writes the same bytes to the same
    key, so a retried registration changes nothing.

    Raises:
        InputError: the manifest's `[model]` or `[endpoint]` is malformed or beyond the policy (checked at the upload
            too, so only a manifest changed since fails here), or the job has no model to register.
    """
    now = clock or _now_ms
    where = f"{request.job_name}'s manifest"
    resolved = spec.resolve_spec(
        spec.Manifest(source=where, table=request.spec), jobs.defaults_from(settings, request.project)
    )
    model = jobs.check_model(
        request.spec,
        project=request.project,
        origin=where,
        job_policy=settings.job_policy,
        resolved=resolved,
        region=settings.aws_region,
    )
    if model is None:
        return {"job_name": request.job_name, "registered": False}
    job = sagemaker.describe_training_job(TrainingJobName=request.job_name)
    if str(job["TrainingJobStatus"]) != TrainingJobStatus.COMPLETED:
        raise InputError(request.job_name, f"is {job['TrainingJobStatus']}: only a completed job's model is registered")
    model_data = job.get("ModelArtifacts", {}).get("S3ModelArtifacts")
    if not model_data:
        raise InputError(request.job_name, "left no model artifacts to register")
    metrics = {m["MetricName"]: float(m["Value"]) for m in job.get("FinalMetricDataList", [])}
    verdicts = registry.gate(model.approve_if, metrics)
    status = registry.approval_status(verdicts)
    arn = _registered_version(sagemaker, model.group, request.job_name)
    already = arn is not None
    if arn is None:
        arn = _create_version(request, model, resolved, job, metrics, verdicts, status, settings, sagemaker, s3)
    else:  # an earlier attempt registered it, and may have died before its alert: the claim sends that once
        logger.info("job already registered", extra={"job_name": request.job_name, "package": arn})
    version = _version_of_arn(arn)
    facts = alerts.ModelFacts(
        group=model.group,
        version=version,
        package_arn=arn,
        approval_status=status,
        gate=tuple(verdict.document() for verdict in verdicts),
        endpoint=model.endpoint.name if model.endpoint else None,
    )
    alert = alerts.model_alert(
        status="ModelRegistered",
        project=request.project,
        model=facts,
        region=settings.aws_region,
        time=alerts.iso_time(now()),
        job_name=request.job_name,
        source=request.source,
        final_metrics=metrics,
        model_artifacts=model_data,
    )
    sent = _alert_once(ledger, request.job_name, "model-registered", alert, settings=settings, sns=sns, clock=now)
    return {
        "job_name": request.job_name,
        "registered": True,
        "already": already,
        "model_package_arn": arn,
        "version": version,
        "approval_status": status,
        "gate": [verdict.document() for verdict in verdicts],
        "alert": sent,
    }


def _create_version(
    request: RegisterRequest,
    model: registry.ModelSettings,
    resolved: spec.TrainingSpec,
    job: Mapping[str, Any],
    metrics: Mapping[str, float],
    verdicts: tuple[registry.Verdict, ...],
    status: str,
    settings: HostingSettings,
    sagemaker: SageMakerClient,
    s3: S3Client,
) -> str:
    """Create the job's version in its group (and the group when missing); return its ARN."""
    model_data = job_model_data = job["ModelArtifacts"]["S3ModelArtifacts"]
    hyper = job.get("HyperParameters", {})
    program = model.inference_entry_point or _hyperparameter(hyper, "sagemaker_program")
    submit_directory = _hyperparameter(hyper, "sagemaker_submit_directory") or request.code_uri
    image = jobs.inference_image(resolved, model.endpoint, region=settings.aws_region)
    if program and submit_directory and repack.repacked_by_the_sdk(resolved.framework, resolved.framework_version):
        # The framework's serving container reads the code from the model directory: the model is repacked with it.
        model_data = repack.repack(s3=s3, model_data_url=model_data, code_uri=submit_directory)
        submit_directory = repack.SUBMIT_DIRECTORY
    environment = (
        registry.inference_environment(
            program=program,
            submit_directory=submit_directory,
            region=settings.aws_region,
            framework=resolved.framework,
        )
        if program and submit_directory
        else {}
    )
    metrics_uri = _write_metrics(s3, job_model_data, request.job_name, metrics) if metrics else None
    _ensure_group(sagemaker, model.group, project=request.project)
    package = registry.model_package_request(
        settings=model,
        image=image,
        model_data_url=model_data,
        environment=environment,
        approval_status=status,
        metrics=metrics,
        verdicts=verdicts,
        job_name=request.job_name,
        project=request.project,
        source=request.source,
        tags={PROJECT_KEY: request.project, JOB_KEY: request.job_name},
        framework=resolved.framework,
        framework_version=resolved.framework_version,
        metrics_uri=metrics_uri,
    )
    arn: str = sagemaker.create_model_package(**package)["ModelPackageArn"]
    logger.info("model registered", extra={"job_name": request.job_name, "package": arn, "approval": status})
    return arn


def register_push(
    document: Mapping[str, Any],
    *,
    best: str | None,
    settings: HostingSettings,
    sagemaker: SageMakerClient,
    s3: S3Client,
    sns: SNSClient,
    ledger: Ledger,
    clock: Callable[[], int] | None = None,
) -> dict[str, Any]:
    """Register the jobs of a `[strategy]` push: its best completed job, or every completed job with
    `register = "all"`. `document` is MatrixStateMachine's input; `best` the job NotifyFunction's summary named."""
    project = str(document.get("project", ""))
    planned = [job for job in document.get("jobs", []) if isinstance(job, dict)]
    results = []
    for job in planned:
        table = job["spec"] if isinstance(job.get("spec"), dict) else {}
        model = registry.read_model(table, project=project, origin=f"{job.get('job_name')}'s manifest")
        if model is None:
            continue
        if model.register != "all" and job.get("job_name") != best:
            continue
        completed = str(sagemaker.describe_training_job(TrainingJobName=job["job_name"])["TrainingJobStatus"])
        if completed != TrainingJobStatus.COMPLETED:
            continue
        request = register_request({**job, "project": project, "source": document.get("source") or {}})
        results.append(
            register_job(request, settings=settings, sagemaker=sagemaker, s3=s3, sns=sns, ledger=ledger, clock=clock)
        )
    return {"push": document.get("push"), "registered": results}


def _write_metrics(s3: S3Client, model_data: str, job_name: str, metrics: Mapping[str, float]) -> str:
    """Write the job's metrics document next to its model; return its S3 address.

    Raises:
        InputError: the model data is no S3 object's address.
    """
    uri = registry.metrics_uri(model_data)
    bucket, _, key = uri.removeprefix("s3://").partition("/")
    body = registry.metrics_statistics(job_name, metrics)
    s3.put_object(Bucket=bucket, Key=key, Body=body, ContentType=registry.METRICS_CONTENT_TYPE)
    logger.info("metrics written", extra={"job_name": job_name, "uri": uri})
    return uri


def _hyperparameter(hyper: Mapping[str, str], name: str) -> str | None:
    """A SageMaker-SDK hyperparameter's value: JSON-encoded, as the SDK (and sagepush) send them."""
    raw = hyper.get(name)
    if raw is None:
        return None
    try:
        value = json.loads(raw)
    except json.JSONDecodeError:
        return raw
    return value if isinstance(value, str) else raw


def _ensure_group(sagemaker: SageMakerClient, group: str, *, project: str) -> None:
    if _described(lambda: sagemaker.describe_model_package_group(ModelPackageGroupName=group)) is None:
        request = registry.model_package_group_request(group=group, project=project, tags={PROJECT_KEY: project})
        _create(lambda: sagemaker.create_model_package_group(**request))


def _registered_version(sagemaker: SageMakerClient, group: str, job_name: str, *, newest: int = 20) -> str | None:
    """The version already registered for `job_name` (an earlier attempt's), among the group's newest."""
    listed = _described(
        lambda: sagemaker.list_model_packages(
            ModelPackageGroupName=group, SortBy="CreationTime", SortOrder="Descending", MaxResults=newest
        )
    )
    if listed is None:  # no group yet
        return None
    for summary in listed.get("ModelPackageSummaryList", []):
        described = sagemaker.describe_model_package(ModelPackageName=summary["ModelPackageArn"])
        if described.get("CustomerMetadataProperties", {}).get(JOB_KEY) == job_name:
            return str(summary["ModelPackageArn"])
    return None


def _version_of_arn(arn: str) -> int | None:
    tail = arn.rpartition("/")[2]
    return int(tail) if tail.isdigit() else None


# ---------------------------------------------------------------------- approval and deployment
def on_package_change(
    detail: Mapping[str, Any],
    *,
    settings: HostingSettings,
    sagemaker: SageMakerClient,
    sns: SNSClient,
    ledger: Ledger,
    clock: Callable[[], int] | None = None,
) -> dict[str, Any]:
    """Handle a "SageMaker Model Package State Change" event: alert an approval or a rejection once, and deploy an
    approved version that names an endpoint. A package sagepush did not register is left alone."""
    now = clock or _now_ms
    arn = str(detail.get("ModelPackageArn", ""))
    # The event's detail mirrors DescribeModelPackage; describe anyway, so a late event acts on the version's state.
    package = sagemaker.describe_model_package(ModelPackageName=arn) if arn else dict(detail)
    metadata = package.get("CustomerMetadataProperties") or {}
    project = metadata.get(PROJECT_KEY)
    if not project:
        return {"model_package_arn": arn, "ignored": "not registered by sagepush"}
    status = str(package.get("ModelApprovalStatus", ""))
    group = str(package.get("ModelPackageGroupName", ""))
    version = package.get("ModelPackageVersion") or _version_of_arn(arn)
    job_name = metadata.get(JOB_KEY)
    endpoint = registry.endpoint_of_package(package)
    outcome: dict[str, Any] = {"model_package_arn": arn, "approval_status": status}
    if status not in _APPROVAL_STATUSES:
        return outcome
    facts = alerts.ModelFacts(
        group=group,
        version=version,
        package_arn=arn,
        approval_status=status,
        approval_description=package.get("ApprovalDescription"),
        endpoint=endpoint.name if endpoint else None,
    )
    alert = alerts.model_alert(
        status=_APPROVAL_STATUSES[status],
        project=project,
        model=facts,
        region=settings.aws_region,
        time=alerts.iso_time(now()),
        job_name=job_name,
        source=registry.source_of_package(package),
        final_metrics=registry.metrics_of_package(package),
    )
    key = f"model-{status.lower()}-v{version}"
    outcome["alert"] = _alert_once(ledger, job_name, key, alert, settings=settings, sns=sns, clock=now)
    if status == registry.APPROVED and endpoint is not None and version is not None:
        outcome["deployment"] = deploy(
            package,
            endpoint=endpoint,
            settings=settings,
            sagemaker=sagemaker,
            sns=sns,
            ledger=ledger,
            clock=now,
        )
    return outcome


def deploy(
    package: Mapping[str, Any],
    *,
    endpoint: registry.EndpointSettings,
    settings: HostingSettings,
    sagemaker: SageMakerClient,
    sns: SNSClient,
    ledger: Ledger,
    clock: Callable[[], int],
) -> dict[str, Any]:
    """Deploy an approved version to its endpoint: create what is missing, switch the endpoint to this version's
    configuration unless it serves it (or a newer version) already; alert EndpointDeploying once.

    Raises:
        PolicyError: the endpoint is beyond the deployment's policy.
    """
    metadata = package.get("CustomerMetadataProperties") or {}
    project, job_name = metadata.get(PROJECT_KEY, ""), metadata.get(JOB_KEY)
    group, version = str(package["ModelPackageGroupName"]), int(package["ModelPackageVersion"])
    policy.check_endpoint(endpoint, settings.job_policy, where=lambda field: f"{group} v{version}: endpoint.{field}")
    tags = {PROJECT_KEY: project, GROUP_TAG: group, **({JOB_KEY: job_name} if job_name else {})}
    model_name = registry.model_name(group, version)
    config_name = registry.endpoint_config_name(endpoint.name, version)
    container = package["InferenceSpecification"]["Containers"][0]
    if _described(lambda: sagemaker.describe_model(ModelName=model_name)) is None:
        request = registry.model_request(
            name=model_name,
            image=container["Image"],
            model_data_url=container.get("ModelDataUrl", ""),
            environment=container.get("Environment", {}),
            role_arn=settings.sagemaker_role_arn,
            tags=tags,
        )
        _create(lambda: sagemaker.create_model(**request))
    if _described(lambda: sagemaker.describe_endpoint_config(EndpointConfigName=config_name)) is None:
        request = registry.endpoint_config_request(
            name=config_name, model_name=model_name, endpoint=endpoint, tags=tags
        )
        _create(lambda: sagemaker.create_endpoint_config(**request))
    current = _described(lambda: sagemaker.describe_endpoint(EndpointName=endpoint.name))
    action: str
    if current is None:
        request = registry.create_endpoint_request(endpoint=endpoint, config_name=config_name, tags=tags)
        _create(lambda: sagemaker.create_endpoint(**request))
        action = "created"
    else:
        serving = str(current.get("EndpointConfigName", ""))
        serving_version = _config_version(serving)
        if serving == config_name or (serving_version is not None and serving_version > version):
            return {"endpoint": endpoint.name, "config": config_name, "action": "none", "serving": serving}
        if current.get("EndpointStatus") not in (EndpointStatus.IN_SERVICE, EndpointStatus.FAILED):
            # Being created or updated: its next InService event deploys the newest approved version (this one,
            # unless a newer one is approved meanwhile); see on_endpoint_change.
            logger.info("endpoint busy: deployment waits", extra={"endpoint": endpoint.name, "config": config_name})
            return {"endpoint": endpoint.name, "config": config_name, "action": "waiting", "serving": serving}
        sagemaker.update_endpoint(**registry.update_endpoint_request(endpoint=endpoint, config_name=config_name))
        action = "updated"
    logger.info("deploying", extra={"endpoint": endpoint.name, "config": config_name, "action": action})
    facts = alerts.ModelFacts(
        group=group,
        version=version,
        package_arn=package.get("ModelPackageArn"),
        approval_status=registry.APPROVED,
        endpoint=endpoint.name,
        endpoint_config=config_name,
        endpoint_status=EndpointStatus.CREATING if action == "created" else EndpointStatus.UPDATING,
    )
    alert = alerts.model_alert(
        status="EndpointDeploying",
        project=project,
        model=facts,
        region=settings.aws_region,
        time=alerts.iso_time(clock()),
        job_name=job_name,
        source=registry.source_of_package(package),
    )
    key = f"endpoint-deploying-{config_name}"
    sent = _alert_once(ledger, job_name, key, alert, settings=settings, sns=sns, clock=clock)
    return {"endpoint": endpoint.name, "config": config_name, "action": action, "alert": sent}


def on_endpoint_change(
    detail: Mapping[str, Any],
    *,
    settings: HostingSettings,
    sagemaker: SageMakerClient,
    sns: SNSClient,
    ledger: Ledger,
    clock: Callable[[], int] | None = None,
) -> dict[str, Any]:
    """Handle a "SageMaker Endpoint State Change" event of an endpoint sagepush deployed: alert in service, failed,
    or rolled back (in service on another version's configuration, with a failure reason) once each. An endpoint in
    service on an older version than the newest approved one (approved while it was being created or updated) is
    then deployed that version."""
    now = clock or _now_ms
    tags = _tag_map(detail.get("Tags"))
    name = str(detail.get("EndpointName", ""))
    project, group = tags.get(PROJECT_KEY), tags.get(GROUP_TAG)
    if not project or not group:
        return {"endpoint": name, "ignored": "not deployed by sagepush"}
    status = str(detail.get("EndpointStatus", ""))
    config = str(detail.get("EndpointConfigName", ""))
    reason = detail.get("FailureReason") or None
    version = _config_version(config)
    if status == EndpointStatus.IN_SERVICE and reason:
        alert_status, attempted = "EndpointRolledBack", _newest_approved(sagemaker, group, above=version)
    elif status == EndpointStatus.IN_SERVICE:
        alert_status, attempted = "EndpointInService", version
    elif status == EndpointStatus.FAILED:
        alert_status, attempted = "EndpointFailed", version
    else:
        return {"endpoint": name, "status": status}
    package = _package(sagemaker, group, attempted) if attempted is not None else None
    metadata = (package or {}).get("CustomerMetadataProperties") or {}
    job_name = metadata.get(JOB_KEY)
    facts = alerts.ModelFacts(
        group=group,
        version=attempted,
        package_arn=(package or {}).get("ModelPackageArn"),
        approval_status=(package or {}).get("ModelApprovalStatus"),
        endpoint=name,
        endpoint_config=config,
        endpoint_status=status,
    )
    alert = alerts.model_alert(
        status=alert_status,
        project=project,
        model=facts,
        region=settings.aws_region,
        time=alerts.iso_time(now()),
        job_name=job_name,
        source=registry.source_of_package(package or {}),
        failure_reason=reason,
    )
    target = registry.endpoint_config_name(name, attempted) if attempted is not None else config
    key = f"endpoint-{alert_status.removeprefix('Endpoint').lower()}-{target}"
    sent = _alert_once(ledger, job_name, key, alert, settings=settings, sns=sns, clock=now)
    outcome: dict[str, Any] = {"endpoint": name, "status": alert_status, "version": attempted, "alert": sent}
    if alert_status == "EndpointInService":
        outcome["deployment"] = _deploy_newer(
            name, group, serving=version, settings=settings, sagemaker=sagemaker, sns=sns, ledger=ledger, clock=now
        )
    return outcome


def _deploy_newer(
    name: str,
    group: str,
    *,
    serving: int | None,
    settings: HostingSettings,
    sagemaker: SageMakerClient,
    sns: SNSClient,
    ledger: Ledger,
    clock: Callable[[], int],
) -> dict[str, Any] | None:
    """Deploy the group's newest approved version to endpoint `name` when it is newer than the one serving."""
    newest = _newest_approved(sagemaker, group, above=serving)
    if newest is None or newest == serving:
        return None
    package = _package(sagemaker, group, newest)
    endpoint = registry.endpoint_of_package(package) if package is not None else None
    if package is None or endpoint is None or endpoint.name != name:
        return None
    return deploy(
        package, endpoint=endpoint, settings=settings, sagemaker=sagemaker, sns=sns, ledger=ledger, clock=clock
    )


def _tag_map(tags: Any) -> dict[str, str]:
    """Tags as a map, whether the event spells them as a map or as a list of {Key, Value}."""
    if isinstance(tags, dict):
        return {str(k): str(v) for k, v in tags.items()}
    if isinstance(tags, list):
        return {str(t.get("Key")): str(t.get("Value", "")) for t in tags if isinstance(t, dict) and "Key" in t}
    return {}


def _config_version(config_name: str) -> int | None:
    found = _VERSION.search(config_name)
    return int(found.group(1)) if found else None


def _package(sagemaker: SageMakerClient, group: str, version: int) -> dict[str, Any] | None:
    arn = _package_arn(sagemaker, group, version)
    return dict(sagemaker.describe_model_package(ModelPackageName=arn)) if arn else None


def _package_arn(sagemaker: SageMakerClient, group: str, version: int) -> str | None:
    paginator = sagemaker.get_paginator("list_model_packages")
    for page in paginator.paginate(ModelPackageGroupName=group):
        for summary in page.get("ModelPackageSummaryList", []):
            if summary.get("ModelPackageVersion") == version:
                return summary["ModelPackageArn"]
    return None


def _newest_approved(sagemaker: SageMakerClient, group: str, *, above: int | None) -> int | None:
    """The newest approved version newer than `above`: the one a rolled-back deployment tried to serve."""
    newest = None
    paginator = sagemaker.get_paginator("list_model_packages")
    for page in paginator.paginate(ModelPackageGroupName=group, ModelApprovalStatus=registry.APPROVED):
        for summary in page.get("ModelPackageSummaryList", []):
            version = summary.get("ModelPackageVersion")
            if version is not None and (above is None or version > above) and (newest is None or version > newest):
                newest = version
    return newest if newest is not None else above


def _described(describe: Callable[[], Any]) -> Any | None:
    """`describe()`'s answer, or None when SageMaker answers that the resource is not there."""
    try:
        return describe()
    except ClientError as exc:
        if _MISSING.search(str(exc)):
            return None
        raise


def _create(create: Callable[[], Any]) -> None:
    """Create a resource; one that a concurrent delivery created in between is the same resource (same name)."""
    try:
        create()
    except ClientError as exc:
        if not _EXISTS.search(str(exc)):
            raise


def _alert_once(
    ledger: Ledger,
    job_name: str | None,
    key: str,
    alert: alerts.Alert,
    *,
    settings: HostingSettings,
    sns: SNSClient,
    clock: Callable[[], int],
) -> str:
    """Publish `alert` unless the ledger holds it as sent (or being sent) for `job_name`'s `key`; return what
    happened. A model whose job the ledger does not know (registered before its item expired) is alerted unclaimed."""
    claim = None
    if job_name is not None:
        claim = ledger.claim_alert(job_name, key, now_ms=clock(), lease_until_ms=clock() + _LEASE_MS)
        if claim is None and ledger.get(job_name) is not None:
            return "already sent"
    alerts.publish_claimed(alert, claim=claim, ledger=ledger, topic_arn=settings.alerts_topic_arn, sns=sns, clock=clock)
    return "published"


def _now_ms() -> int:
    return int(time.time() * 1000)
