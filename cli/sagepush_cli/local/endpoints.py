"""Local hosting: what moto lacks for the Model Registry and endpoints, added on the local stack's SageMaker API.

moto records model packages and endpoints; here, besides:
- CreateModelPackage and UpdateModelPackage put a "SageMaker Model Package State Change" event on EventBridge, detail
  the DescribeModelPackage answer. A ClientToken already used answers the package it created (AWS's idempotency),
  and UpdateModelPackage merges CustomerMetadataProperties and keeps what it does not name, as AWS does (moto
  replaces them and drops the approval status when none is given).
- CreateEndpoint starts the endpoint's model for real (local/serving.py) in the background: Creating, then InService
  or Failed with a FailureReason.
- UpdateEndpoint (which moto lacks), validated as AWS validates it, deploys blue/green: Updating while the new
  config's model starts; the old model answers meanwhile, then traffic switches and the old model stops, so no
  request fails during an update. A model that does not start is rolled back: the endpoint stays InService on its
  old EndpointConfigName, with a FailureReason.
- Each endpoint status change puts a "SageMaker Endpoint State Change" event on EventBridge.
- InvokeEndpoint (sagemaker-runtime) is answered by the endpoint's model; a failure is AWS's ModelError (424).
- DeleteEndpoint stops its model; a moto reset and the stack's stop stop them all.
See https://docs.aws.amazon.com/sagemaker/latest/dg/automating-sagemaker-with-eventbridge.html
"""

from __future__ import annotations

import contextlib
import json
import logging
import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Literal

from sagepush.events import EndpointStatus
from sagepush_cli.local.cache import home
from sagepush_cli.local.environments import BuildStopped, Environments
from sagepush_cli.local.serving import (
    FAILURE_REASON_LIMIT,
    Answer,
    ModelError,
    ModelServer,
    ServerStopped,
    ServingError,
    variant_containers,
)

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping
    from pathlib import Path

logger = logging.getLogger(__name__)

EVENT_SOURCE = "aws.sagemaker"
ENDPOINT_DETAIL_TYPE = "SageMaker Endpoint State Change"
PACKAGE_DETAIL_TYPE = "SageMaker Model Package State Change"
TRAFFIC_ROUTING_TYPES = ("ALL_AT_ONCE", "CANARY", "LINEAR")
MAX_ROLLBACK_ALARMS = 10
_JOIN_SECONDS = 30.0
IN_PROGRESS = (
    EndpointStatus.CREATING,
    EndpointStatus.UPDATING,
    EndpointStatus.DELETING,
    EndpointStatus.SYSTEM_UPDATING,
    EndpointStatus.ROLLING_BACK,
)
"""The statuses in which UpdateEndpoint refuses an endpoint."""

Key = tuple[str, str, str]
"""An endpoint: account, region, name."""


class EndpointNotFound(Exception):
    """InvokeEndpoint named no endpoint in service."""


@dataclass
class _Hosted:
    """One endpoint's serving: the model answering now, and the deployment under way, if any."""

    key: Key
    server: ModelServer | None = None
    deploying: threading.Thread | None = None
    cancel: threading.Event = field(default_factory=threading.Event)
    lock: threading.Lock = field(default_factory=threading.Lock)


def epoch_ms(value: Any) -> Any:
    """Times as SageMaker's state-change events carry them: epoch milliseconds."""
    if isinstance(value, datetime):
        stamp = value if value.tzinfo else value.replace(tzinfo=UTC)
        return round(stamp.timestamp() * 1000)
    if isinstance(value, dict):
        return {key: epoch_ms(item) for key, item in value.items()}
    if isinstance(value, list):
        return [epoch_ms(item) for item in value]
    return value


def endpoint_detail(endpoint: Any) -> dict[str, Any]:
    """The detail of an endpoint's state-change event: its name, ARN, config, status, failure, times and tags."""
    detail: dict[str, Any] = {
        "EndpointName": endpoint.endpoint_name,
        "EndpointArn": endpoint.arn,
        "EndpointConfigName": endpoint.endpoint_config_name,
        "EndpointStatus": endpoint.endpoint_status,
        "CreationTime": epoch_ms(endpoint.creation_time),
        "LastModifiedTime": epoch_ms(endpoint.last_modified_time),
        "Tags": {tag["Key"]: tag.get("Value", "") for tag in endpoint.tags or []},
    }
    if endpoint.failure_reason:
        detail["FailureReason"] = endpoint.failure_reason
    return detail


def package_detail(package: Any) -> dict[str, Any]:
    """The detail of a model package's state-change event: the DescribeModelPackage answer, times in epoch ms."""
    detail: dict[str, Any] = epoch_ms(package.gen_response_object())
    return detail


def check_deployment_config(config: Mapping[str, Any] | None, *, serverless: bool) -> None:
    """Refuse a DeploymentConfig UpdateEndpoint would refuse.

    Raises:
        ValueError: the message AWS's ValidationException would carry.
    """
    if not config:
        return
    blue_green = config.get("BlueGreenUpdatePolicy")
    if "BlueGreenUpdatePolicy" in config and "RollingUpdatePolicy" in config:
        raise ValueError("DeploymentConfig accepts either BlueGreenUpdatePolicy or RollingUpdatePolicy, not both.")
    if serverless:
        raise ValueError("DeploymentConfig is not supported for an endpoint with serverless production variants.")
    if blue_green:
        routing = blue_green.get("TrafficRoutingConfiguration") or {}
        kind = routing.get("Type")
        if kind not in TRAFFIC_ROUTING_TYPES:
            raise ValueError(f"TrafficRoutingConfiguration.Type must be one of {', '.join(TRAFFIC_ROUTING_TYPES)}.")
        if kind in ("CANARY", "LINEAR") and not routing.get(f"{kind.title()}Size"):
            raise ValueError(f"TrafficRoutingConfiguration of type {kind} needs {kind.title()}Size.")
    alarms = (config.get("AutoRollbackConfiguration") or {}).get("Alarms") or []
    if len(alarms) > MAX_ROLLBACK_ALARMS:
        raise ValueError(f"AutoRollbackConfiguration accepts at most {MAX_ROLLBACK_ALARMS} alarms.")
    if any(not alarm.get("AlarmName") for alarm in alarms):
        raise ValueError("Each AutoRollbackConfiguration alarm needs an AlarmName.")


def model_error_answer(
    *, name: str, account: str, region: str, status: int, message: str, log: str | None
) -> tuple[int, dict[str, str], str]:
    """InvokeEndpoint's answer when the container failed: AWS's ModelError (424) with the container's status and
    message, as botocore parses it (Message, OriginalStatusCode, OriginalMessage, LogStreamArn)."""
    kind = "client" if 400 <= status < 500 else "server"
    where = f"the endpoint's log {log}" if log else "the endpoint's log"
    text = f'Received {kind} error ({status}) from primary with message "{message}". See {where} for more information.'
    body = {
        "message": text,
        "OriginalStatusCode": status,
        "OriginalMessage": message,
        "LogStreamArn": f"arn:aws:logs:{region}:{account}:log-group:/aws/sagemaker/Endpoints/{name}",
    }
    # moto takes a response's status from its "status" header.
    headers = {"status": "424", "x-amzn-ErrorType": "ModelError", "Content-Type": "application/json"}
    return 424, headers, json.dumps(body)


class LocalHosting:
    """Serves the local stack's endpoints; installed on moto's SageMaker APIs by `install_hosting`."""

    def __init__(self, *, endpoint: str, region: str, root: Path) -> None:
        self.endpoint = endpoint
        self.region = region
        self.root = root
        self.environments = Environments(root)
        self.hosted: dict[Key, _Hosted] = {}
        self.uninstall: Callable[[], None] = self.shutdown
        self._lock = threading.Lock()
        self._clients: dict[tuple[str, str], Any] = {}

    def __call__(self) -> None:
        """Stop every endpoint's model and take hosting off moto's APIs (the stack's undo hook)."""
        self.uninstall()

    # ------------------------------------------------------------------ clients and events
    def client(self, service: Literal["events", "s3"], region: str) -> Any:
        """A client of the stack's own endpoint (thread-safe once made; made once per service and region)."""
        import boto3

        from sagepush import aws

        with self._lock:
            made = self._clients.get((service, region))
            if made is None:
                session = boto3.session.Session(region_name=region)
                made = session.client(service, endpoint_url=self.endpoint, config=aws.config(service))
                self._clients[(service, region)] = made
            return made

    def put_event(self, region: str, detail_type: str, resource: str, detail: Mapping[str, Any]) -> None:
        """Put one SageMaker state-change event on the stack's default bus (a failure is logged, not raised)."""
        from botocore.exceptions import BotoCoreError, ClientError

        entry = {
            "Source": EVENT_SOURCE,
            "DetailType": detail_type,
            "Resources": [resource],
            "Detail": json.dumps(detail),
        }
        try:
            answer = self.client("events", region).put_events(Entries=[entry])
        except (BotoCoreError, ClientError) as exc:
            logger.warning("state change event not delivered", extra={"resource": resource, "error": repr(exc)})
            return
        if answer.get("FailedEntryCount"):
            logger.warning("state change event refused", extra={"resource": resource, "answer": answer})

    def package_changed(self, package: Any, region: str) -> None:
        self.put_event(region, PACKAGE_DETAIL_TYPE, package.arn, package_detail(package))

    def _endpoint_changed(self, hosted: _Hosted, endpoint: Any, **changes: Any) -> None:
        """Set the endpoint's attributes (only existing ones: moto serialises its __dict__) and say so, unless the
        endpoint was deleted or the stack reset meanwhile."""
        from moto.core.utils import utcnow

        with hosted.lock:
            if hosted.cancel.is_set():
                return
            for name, value in changes.items():
                setattr(endpoint, name, value)
            endpoint.last_modified_time = utcnow()
            self.put_event(hosted.key[1], ENDPOINT_DETAIL_TYPE, endpoint.arn, endpoint_detail(endpoint))

    # ------------------------------------------------------------------ deployments
    def create(self, backend: Any, endpoint: Any) -> None:
        """Mark a new endpoint Creating and start its model in the background."""
        key = (backend.account_id, backend.region_name, endpoint.endpoint_name)
        hosted = _Hosted(key)
        with self._lock:
            previous = self.hosted.pop(key, None)
            self.hosted[key] = hosted
        if previous is not None:
            self._retire(previous)
        self._endpoint_changed(hosted, endpoint, endpoint_status=EndpointStatus.CREATING, failure_reason=None)
        self._start(hosted, backend, endpoint, endpoint.endpoint_config_name, update=False)

    def resume(self) -> int:
        """Start again the models of the endpoints a restored state holds (their servers did not outlive the stack
        that saved it): each is Creating until its model answers, then InService; return how many."""
        from moto.sagemaker.models import sagemaker_backends

        resumed = 0
        for account, regions in sagemaker_backends.items():
            for region, backend in regions.items():
                for endpoint in list(backend.endpoints.values()):
                    if (account, region, endpoint.endpoint_name) in self.hosted:
                        continue
                    if endpoint.endpoint_status in (EndpointStatus.DELETING, EndpointStatus.FAILED):
                        continue
                    self.create(backend, endpoint)
                    resumed += 1
        return resumed

    def update(self, backend: Any, endpoint: Any, config_name: str) -> None:
        """Mark an endpoint Updating and deploy `config_name` blue/green in the background."""
        from moto.core.utils import utcnow

        key = (backend.account_id, backend.region_name, endpoint.endpoint_name)
        with self._lock:
            hosted = self.hosted.setdefault(key, _Hosted(key))
        self._endpoint_changed(
            hosted,
            endpoint,
            endpoint_status=EndpointStatus.UPDATING,
            failure_reason=None,
            pending_deployment_summary={"EndpointConfigName": config_name, "StartTime": utcnow()},
        )
        self._start(hosted, backend, endpoint, config_name, update=True)

    def _start(self, hosted: _Hosted, backend: Any, endpoint: Any, config_name: str, *, update: bool) -> None:
        thread = threading.Thread(
            target=self._deploy,
            args=(hosted, backend, endpoint, config_name, update),
            name=f"deploy-{endpoint.endpoint_name}",
            daemon=True,
        )
        with hosted.lock:
            hosted.deploying = thread
            thread.start()

    def _deploy(self, hosted: _Hosted, backend: Any, endpoint: Any, config_name: str, update: bool) -> None:
        server: ModelServer | None = None
        try:
            variant, container = variant_containers(backend, config_name)[0]
            server = ModelServer(
                name=endpoint.endpoint_name,
                variant=variant,
                container=container,
                root=self.root,
                environments=self.environments,
                endpoint_url=self.endpoint,
                region=hosted.key[1],
            )
            server.start(self.client("s3", hosted.key[1]), hosted.cancel)
        except BuildStopped:
            _stop(server)
            return
        except Exception as exc:
            _stop(server)
            if not isinstance(exc, ServingError):
                logger.exception("local endpoint failed to start", extra={"endpoint": endpoint.endpoint_name})
            reason = (
                exc.reason if isinstance(exc, ServingError) else f"InternalServerError: {type(exc).__name__}: {exc}"
            )
            self._failed(hosted, endpoint, reason[:FAILURE_REASON_LIMIT], update=update)
            return
        if hosted.cancel.is_set():
            server.stop()
            return
        config = backend.endpoint_configs.get(config_name)
        variants = endpoint._process_production_variants(config.production_variants) if config else None
        with hosted.lock:
            old, hosted.server = hosted.server, server
        self._endpoint_changed(
            hosted,
            endpoint,
            endpoint_status=EndpointStatus.IN_SERVICE,
            endpoint_config_name=config_name,
            production_variants=variants or endpoint.production_variants,
            failure_reason=None,
            pending_deployment_summary=None,
        )
        _stop(old)  # after the switch: it finishes the request it is answering, new ones go to the new model

    def _failed(self, hosted: _Hosted, endpoint: Any, reason: str, *, update: bool) -> None:
        if update:
            # Blue/green rollback: the old model never stopped answering; the endpoint keeps its old config.
            self._endpoint_changed(
                hosted,
                endpoint,
                endpoint_status=EndpointStatus.IN_SERVICE,
                failure_reason=reason,
                pending_deployment_summary=None,
            )
        else:
            self._endpoint_changed(hosted, endpoint, endpoint_status=EndpointStatus.FAILED, failure_reason=reason)

    def invoke(self, key: Key, body: bytes, content_type: str | None, accept: str | None) -> tuple[Answer, str]:
        """The endpoint's answer to one request, and the variant that answered.

        Raises:
            EndpointNotFound: no model serves the endpoint.
            ModelError: the model failed the request.
        """
        for _ in range(3):
            hosted = self.hosted.get(key)
            server = hosted.server if hosted is not None else None
            if server is None:
                raise EndpointNotFound(key[2])
            with contextlib.suppress(ServerStopped):
                return server.invoke(body, content_type, accept), server.variant
        raise EndpointNotFound(key[2])

    def log_of(self, key: Key) -> str | None:
        """Where the model answering endpoint `key` writes its log, when one does."""
        hosted = self.hosted.get(key)
        server = hosted.server if hosted is not None else None
        return str(server.log.path) if server is not None and server.log is not None else None

    def delete(self, key: Key) -> None:
        """Stop an endpoint's model and any deployment of it."""
        with self._lock:
            hosted = self.hosted.pop(key, None)
        if hosted is not None:
            self._retire(hosted)

    def forget(self, account: str, region: str) -> None:
        """Stop every endpoint of a backend being reset; their deployments emit nothing more."""
        with self._lock:
            keys = [key for key in self.hosted if key[:2] == (account, region)]
            retired = [self.hosted.pop(key) for key in keys]
        for hosted in retired:
            hosted.cancel.set()  # at once: the reset must not see a later event
        if retired:
            threading.Thread(target=self._retire_all, args=(retired,), name="hosting-reset", daemon=True).start()

    def _retire_all(self, retired: list[_Hosted]) -> None:
        for hosted in retired:
            self._retire(hosted)

    def _retire(self, hosted: _Hosted) -> None:
        hosted.cancel.set()
        with hosted.lock:
            thread, server, hosted.server = hosted.deploying, hosted.server, None
        if thread is not None and thread is not threading.current_thread():
            thread.join(_JOIN_SECONDS)
        _stop(server)

    def shutdown(self) -> None:
        """Stop every endpoint's model and deployment."""
        with self._lock:
            retired = list(self.hosted.values())
            self.hosted.clear()
        for hosted in retired:
            self._retire(hosted)


def _stop(server: ModelServer | None) -> None:
    if server is not None:
        server.stop()


class _Routes:
    """The local stack's answers to moto's SageMaker and SageMaker Runtime calls; `originals` holds moto's own."""

    def __init__(self, hosting: LocalHosting) -> None:
        self.hosting = hosting
        self.originals: dict[str, Any] = {}

    def create_model_package(self, response: Any) -> Any:
        from moto.core.responses import ActionResult

        backend = response.sagemaker_backend
        token = response._get_param("ClientToken")
        for package in list(backend.model_packages.values()) if token else []:
            if package.client_token == token:
                return ActionResult({"ModelPackageArn": package.arn})
        result = self.originals["create_model_package"](response)
        arn = result.result["ModelPackageArn"]
        self.hosting.package_changed(backend.model_packages[arn], response.region)
        return result

    def update_model_package(self, response: Any) -> Any:
        from moto.core.responses import ActionResult

        backend = response.sagemaker_backend
        name = response._get_param("ModelPackageArn")
        package = backend.describe_model_package(name)
        properties = dict(package.customer_metadata_properties or {})
        properties.update(response._get_param("CustomerMetadataProperties") or {})
        for removed in response._get_param("CustomerMetadataPropertiesToRemove") or []:
            properties.pop(removed, None)
        approval = response._get_param("ModelApprovalStatus")
        backend.update_model_package(
            model_package_arn=name,
            model_approval_status=approval if approval is not None else package.model_approval_status,
            approval_description=response._get_param("ApprovalDescription") or package.approval_description,
            customer_metadata_properties=properties or None,
            customer_metadata_properties_to_remove=[],
            additional_inference_specifications_to_add=response._get_param("AdditionalInferenceSpecificationsToAdd"),
        )
        self.hosting.package_changed(package, response.region)
        return ActionResult({"ModelPackageArn": package.arn})

    def create_endpoint(self, response: Any) -> Any:
        from moto.sagemaker.exceptions import ValidationError
        from moto.sagemaker.models import FakeEndpoint

        backend = response.sagemaker_backend
        name = response._get_param("EndpointName")
        if name in backend.endpoints:
            arn = FakeEndpoint.arn_formatter(name, backend.account_id, backend.region_name)
            raise ValidationError(message=f'Cannot create already existing endpoint "{arn}".')
        result = self.originals["create_endpoint"](response)
        endpoint = backend.endpoints[name]
        endpoint.pending_deployment_summary = None  # every attribute DescribeEndpoint reads exists from the start
        self.hosting.create(backend, endpoint)
        return result

    def update_endpoint(self, response: Any) -> Any:
        from moto.core.responses import ActionResult
        from moto.sagemaker.exceptions import ValidationError

        backend = response.sagemaker_backend
        name = response._get_param("EndpointName")
        config_name = response._get_param("EndpointConfigName")
        try:
            endpoint, config = update_target(backend, name, config_name)
            serverless = any(variant.get("ServerlessConfig") for variant in config.production_variants)
            check_deployment_config(response._get_param("DeploymentConfig"), serverless=serverless)
        except ValueError as exc:
            raise ValidationError(message=str(exc)) from exc
        self.hosting.update(backend, endpoint, config_name)
        return ActionResult({"EndpointArn": endpoint.arn})

    def delete_endpoint(self, response: Any) -> Any:
        backend = response.sagemaker_backend
        name = response._get_param("EndpointName")
        endpoint = backend.endpoints.get(name)
        key = (backend.account_id, backend.region_name, name)
        hosted = self.hosting.hosted.get(key)
        if endpoint is not None and hosted is not None:
            self.hosting._endpoint_changed(
                hosted, endpoint, endpoint_status=EndpointStatus.DELETING, failure_reason=None
            )
        result = self.originals["delete_endpoint"](response)
        self.hosting.delete(key)
        return result

    def invoke_endpoint(self, response: Any) -> Any:
        name = response._get_params().get("EndpointName") or response.path.split("/")[2]
        account, region = response.current_account, response.region
        raw = response.raw_body
        body = raw if isinstance(raw, bytes) else (raw or "").encode()
        headers = response.headers
        try:
            answer, variant = self.hosting.invoke(
                (account, region, name), body, headers.get("Content-Type"), headers.get("Accept")
            )
        except EndpointNotFound:
            message = f"Endpoint {name} of account {account} not found."
            error = {"status": "400", "x-amzn-ErrorType": "ValidationError", "Content-Type": "application/json"}
            return 400, error, json.dumps({"message": message})
        except ModelError as exc:
            return model_error_answer(
                name=name,
                account=account,
                region=region,
                status=exc.status,
                message=exc.message,
                log=self.hosting.log_of((account, region, name)),
            )
        headers = {"Content-Type": answer.content_type, "x-Amzn-Invoked-Production-Variant": variant}
        return 200, headers, answer.body

    def reset(self, backend: Any) -> None:
        from moto.core.base_backend import BaseBackend

        self.hosting.forget(backend.account_id, backend.region_name)
        (self.originals.get("reset") or BaseBackend.reset)(backend)


def update_target(backend: Any, name: str, config_name: str) -> tuple[Any, Any]:
    """The endpoint UpdateEndpoint names and the config it deploys, checked as AWS checks them.

    Raises:
        ValueError: the message AWS's ValidationException would carry.
    """
    from moto.sagemaker.models import FakeEndpoint, FakeEndpointConfig

    endpoint = backend.endpoints.get(name)
    if endpoint is None:
        arn = FakeEndpoint.arn_formatter(name, backend.account_id, backend.region_name)
        raise ValueError(f'Could not find endpoint "{arn}".')
    config = backend.endpoint_configs.get(config_name)
    if config is None:
        arn = FakeEndpointConfig.arn_formatter(config_name, backend.account_id, backend.region_name)
        raise ValueError(f'Could not find endpoint configuration "{arn}".')
    if endpoint.endpoint_status in IN_PROGRESS:
        raise ValueError(f'Cannot update in-progress endpoint "{endpoint.arn}".')
    if endpoint.endpoint_status == EndpointStatus.FAILED:
        raise ValueError(f'Cannot update failed endpoint "{endpoint.arn}".')
    return endpoint, config


def _route(routes: _Routes, name: str) -> Callable[[Any], Any]:
    def method(response: Any) -> Any:
        return getattr(routes, name)(response)

    return method


def install_hosting(*, endpoint: str, region: str) -> LocalHosting:
    """Route moto's model package, endpoint and InvokeEndpoint calls through a LocalHosting; call the result to undo."""
    from moto.sagemaker.models import SageMakerModelBackend
    from moto.sagemaker.responses import SageMakerResponse
    from moto.sagemakerruntime.responses import SageMakerRuntimeResponse

    hosting = LocalHosting(endpoint=endpoint, region=region, root=home())
    routes = _Routes(hosting)
    patched: list[tuple[type, str, Any]] = []
    targets = {
        "create_model_package": SageMakerResponse,
        "update_model_package": SageMakerResponse,
        "create_endpoint": SageMakerResponse,
        "update_endpoint": SageMakerResponse,
        "delete_endpoint": SageMakerResponse,
        "invoke_endpoint": SageMakerRuntimeResponse,
        "reset": SageMakerModelBackend,
    }
    for name, cls in targets.items():
        original = cls.__dict__.get(name)
        patched.append((cls, name, original))
        # moto's backends are process-wide: with two stacks in one process the newest routes every call, once.
        routes.originals[name] = getattr(original, "moto_original", original) if original is not None else None
        replacement = _route(routes, name)
        replacement.moto_original = routes.originals[name]  # type: ignore[attr-defined]
        # Patching moto's classes, as the stack's other hooks do; undone with the stack.
        setattr(cls, name, replacement)

    def undo() -> None:
        hosting.shutdown()
        for cls, name, original in reversed(patched):
            if original is None:
                delattr(cls, name)
            else:
                setattr(cls, name, original)

    hosting.uninstall = undo
    return hosting
