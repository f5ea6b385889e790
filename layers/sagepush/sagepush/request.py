"""The CreateTrainingJob request: a TrainingSpec and its staged code, encoded as the SageMaker Python SDK v2 does."""

from __future__ import annotations

import difflib
import json
import re
from collections.abc import Mapping
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from sagepush import images
from sagepush.errors import InputError

if TYPE_CHECKING:
    from collections.abc import Iterator

    from botocore.model import Shape
    from mypy_boto3_sagemaker.type_defs import CreateTrainingJobRequestTypeDef

    from sagepush.spec import TrainingSpec

_OPERATION = "CreateTrainingJob"

# sagemaker/estimator.py: the hyperparameters script mode adds, and where a network-isolated job finds its code.
SUBMIT_DIRECTORY = "sagemaker_submit_directory"
PROGRAM = "sagemaker_program"
CONTAINER_LOG_LEVEL = "sagemaker_container_log_level"
JOB_NAME = "sagemaker_job_name"
REGION = "sagemaker_region"
CODE_CHANNEL = "code"
CODE_CHANNEL_SOURCEDIR = "/opt/ml/input/data/code/sourcedir.tar.gz"
MODEL_CHANNEL = "model"

# Request paths and the manifest field a user changes to fix them; the longest matching prefix wins.
_FIELDS = {
    "AlgorithmSpecification.TrainingImage": "image_uri",
    "AlgorithmSpecification.AlgorithmName": "algorithm_name",
    "AlgorithmSpecification.TrainingInputMode": "input_mode",
    "AlgorithmSpecification.MetricDefinitions": "metric_definitions",
    "AlgorithmSpecification.EnableSageMakerMetricsTimeSeries": "enable_sagemaker_metrics",
    "AlgorithmSpecification.ContainerEntrypoint": "container_entry_point",
    "AlgorithmSpecification.ContainerArguments": "container_arguments",
    "OutputDataConfig.S3OutputPath": "output_path",
    "OutputDataConfig.KmsKeyId": "output_kms_key",
    "OutputDataConfig.CompressionType": "disable_output_compression",
    "ResourceConfig.InstanceType": "instance_type",
    "ResourceConfig.InstanceCount": "instance_count",
    "ResourceConfig.VolumeSizeInGB": "volume_size",
    "ResourceConfig.VolumeKmsKeyId": "volume_kms_key",
    "ResourceConfig.KeepAlivePeriodInSeconds": "keep_alive_period_in_seconds",
    "ResourceConfig.TrainingPlanArn": "training_plan",
    "StoppingCondition.MaxRuntimeInSeconds": "max_run",
    "StoppingCondition.MaxWaitTimeInSeconds": "max_wait",
    "StoppingCondition.MaxPendingTimeInSeconds": "max_pending_time",
    "RoleArn": "role",
    "HyperParameters": "hyperparameters",
    "Environment": "environment",
    "InputDataConfig": "channels",
    "Tags": "tags",
    "VpcConfig.Subnets": "subnets",
    "VpcConfig.SecurityGroupIds": "security_group_ids",
    "EnableNetworkIsolation": "enable_network_isolation",
    "EnableInterContainerTrafficEncryption": "encrypt_inter_container_traffic",
    "EnableManagedSpotTraining": "use_spot_instances",
    "CheckpointConfig.S3Uri": "checkpoint_s3_uri",
    "CheckpointConfig.LocalPath": "checkpoint_local_path",
    "TensorBoardOutputConfig": "tensorboard_output_config",
    "RetryStrategy": "max_retry_attempts",
    "InfraCheckConfig": "enable_infra_check",
    "SessionChainingConfig": "enable_session_tag_chaining",
    "MlflowConfig": "mlflow_config",
}
_IMAGE_ARGUMENTS = {"version": "framework_version"}
_MLFLOW = {
    "mlflow_resource_arn": "MlflowResourceArn",
    "mlflow_experiment_name": "MlflowExperimentName",
    "mlflow_run_name": "MlflowRunName",
}
PACKAGED_MODELS = Path(__file__).with_name("data")
"""Where the cut botocore models of the locked botocore ship (scripts/cut_botocore_model.py writes them)."""


class RequestError(InputError):
    """The request cannot be built or does not satisfy SageMaker's model; `where` names the manifest field."""


def build_request(
    spec: TrainingSpec,
    *,
    job_name: str,
    code_uri: str,
    region: str,
    partition: str | None = None,
    tags: Mapping[str, str] | None = None,
) -> CreateTrainingJobRequestTypeDef:
    """Return the CreateTrainingJob request the SageMaker Python SDK v2 sends for `spec`'s framework estimator.

    `code_uri` is the staged `sourcedir.tar.gz`; `tags` are the caller's `sagepush:*` tags, added after the
    spec's. `request_overrides` are deep-merged last, then the whole request is checked against botocore's
    model of the SageMaker API.

    Raises:
        RequestError: no image for the inputs, a role in another partition, or a request SageMaker would refuse;
            `where` names the manifest field (`request_overrides.<path>` for a path only the overrides set).
    """
    partition = partition or partition_for_region(region)
    _check_partition(spec, partition, region)
    image = None if spec.algorithm_name else spec.image_uri or _image_uri(spec, region)
    isolated = spec.enable_network_isolation
    request: dict[str, Any] = {
        "AlgorithmSpecification": _algorithm(spec, image),
        "OutputDataConfig": _output(spec),
        "TrainingJobName": job_name,
        "StoppingCondition": _stopping(spec),
        "ResourceConfig": _resources(spec),
        "RoleArn": spec.role,
    }
    channels = [_channel(c.name, c.s3_uri, **_channel_options(c)) for c in spec.channels]
    if spec.model_uri:
        model = _channel(MODEL_CHANNEL, spec.model_uri, content_type="application/x-sagemaker-model", input_mode="File")
        channels.append(model)
    if isolated and spec.runs_script:
        channels.append(_channel(CODE_CHANNEL, code_uri))
    if spec.code_channel is not None:  # the image's own entrypoint finds the code at /opt/ml/input/data/<channel>/
        channels.append(_channel(spec.code_channel, code_uri))
    if channels:
        request["InputDataConfig"] = channels
    request["HyperParameters"] = hyperparameters(
        spec, job_name=job_name, code_dir=CODE_CHANNEL_SOURCEDIR if isolated else code_uri, region=region
    )
    if spec.environment:
        request["Environment"] = dict(spec.environment)
    all_tags = {**spec.tags, **(tags or {})}
    if all_tags:
        request["Tags"] = [{"Key": key, "Value": value} for key, value in all_tags.items()]
    request.update(_options(spec))
    request.update(_side_outputs(spec))
    merged = deep_merge(request, spec.request_overrides)
    validate_request(merged, spec)
    return cast("CreateTrainingJobRequestTypeDef", merged)


def program(spec: TrainingSpec) -> str:
    """Return the entry point as a path in the staged code (`sagemaker_program`), as the SDK names it.

    Staging puts `source_dir`'s contents (without one, the project's) at the code's root, so the entry point,
    relative to `source_dir` as the SDK takes it, is its path in the staged code too.

    Raises:
        ValueError: the job runs no script (`spec.runs_script` is false).
    """
    if spec.entry_point is None:
        raise ValueError("the job runs the image's own entrypoint: it has no program")
    return "/".join(p for p in spec.entry_point.split("/") if p not in ("", "."))


def hyperparameters(spec: TrainingSpec, *, job_name: str, code_dir: str, region: str) -> dict[str, str]:
    """Return the job's hyperparameters: for a script, every value JSON-encoded, with the SDK's script-mode and
    distribution keys; for an image's own entrypoint, each value as `str()` gives it and nothing added, as the SDK's
    generic `Estimator` sends them (a built-in algorithm reads `10`, not a JSON string `"10"`)."""
    if not spec.runs_script:
        return {str(key): str(value) for key, value in spec.hyperparameters.items()}
    values: dict[str, Any] = dict(spec.hyperparameters)
    values[SUBMIT_DIRECTORY] = code_dir
    values[PROGRAM] = program(spec)
    values[CONTAINER_LOG_LEVEL] = spec.container_log_level
    values[JOB_NAME] = job_name
    values[REGION] = region
    values.update(_distribution_hyperparameters(spec))
    if spec.framework == "tensorflow" and spec.model_dir is not False:
        values["model_dir"] = spec.model_dir or _tensorflow_model_dir(spec, job_name, values)
    return {str(key): json.dumps(value) for key, value in values.items()}


def deep_merge(base: Mapping[str, Any], overrides: Mapping[str, Any]) -> dict[str, Any]:
    """Return `base` with `overrides` merged in: tables merge key by key, anything else replaces."""
    merged = dict(base)
    for key, value in overrides.items():
        current = merged.get(key)
        if isinstance(current, dict) and isinstance(value, dict):
            merged[key] = deep_merge(current, value)
        else:
            merged[key] = value
    return merged


def validate_request(request: Mapping[str, Any], spec: TrainingSpec) -> None:
    """Check `request` against botocore's model of CreateTrainingJob, including enums and maximum sizes.

    Raises:
        RequestError: for the first problem, naming the manifest field behind it.
    """
    from botocore.validate import ParamValidator

    shape = _input_shape()
    report = ParamValidator().validate(request, shape)
    # ValidationErrors keeps its findings in `_errors` as (kind, path, details); its public API is only the report.
    for kind, path, details in getattr(report, "_errors", []):
        if kind == "unknown field":
            path = f"{path}.{details.get('unknown_param')}"
        raise RequestError(_where(path.lstrip("."), spec), _describe(kind, details))
    if report.has_errors():
        raise RequestError("request", report.generate_report().splitlines()[-1])
    for path, message in _limit_problems(request, shape, ""):
        raise RequestError(_where(path, spec), message)


def partition_for_region(region: str) -> str:
    """Return the AWS partition of `region` (aws, aws-cn, aws-us-gov, aws-iso, aws-iso-b, ...).

    Raises:
        RequestError: botocore knows no partition whose regions look like `region`.
    """
    # As botocore's endpoint rules resolve `aws.partition` (botocore.endpoint_provider), from its small
    # partitions.json: a region listed by a partition, else the first whose pattern matches. Neither endpoints.json
    # (1.2 MB) nor botocore.regions is loaded, which would be a quarter of `sagepush render`'s time.
    partitions = _loader().load_data("partitions")["partitions"]
    for partition in partitions:
        if region in partition["regions"]:
            return str(partition["id"])
    for partition in partitions:
        if re.match(partition["regionRegex"], region):
            return str(partition["id"])
    raise RequestError("region", f"{_quote(region)} is not an AWS region")


# ---- the request's parts, each as sagemaker/job.py and sagemaker/session.py shape it


def _options(spec: TrainingSpec) -> dict[str, Any]:
    """The optional top-level fields, each present only when the SDK would send it."""
    request: dict[str, Any] = {}
    if spec.subnets and spec.security_group_ids:
        request["VpcConfig"] = {"Subnets": list(spec.subnets), "SecurityGroupIds": list(spec.security_group_ids)}
    if spec.enable_network_isolation:
        request["EnableNetworkIsolation"] = True
    if spec.encrypt_inter_container_traffic:
        request["EnableInterContainerTrafficEncryption"] = True
    if spec.use_spot_instances:
        request["EnableManagedSpotTraining"] = True
    if spec.max_retry_attempts is not None:
        request["RetryStrategy"] = {"MaximumRetryAttempts": spec.max_retry_attempts}
    if spec.enable_infra_check is not None:
        request["InfraCheckConfig"] = {"EnableInfraCheck": spec.enable_infra_check}
    if spec.enable_session_tag_chaining is not None:
        request["SessionChainingConfig"] = {"EnableSessionTagChaining": spec.enable_session_tag_chaining}
    return request


def _side_outputs(spec: TrainingSpec) -> dict[str, Any]:
    """What a job writes besides its model (checkpoints, TensorBoard data, MLflow runs), each only when set."""
    request: dict[str, Any] = {}
    if spec.checkpoint_s3_uri:
        checkpoint = {"S3Uri": spec.checkpoint_s3_uri}
        if spec.checkpoint_local_path:
            checkpoint["LocalPath"] = spec.checkpoint_local_path
        request["CheckpointConfig"] = checkpoint
    if spec.tensorboard_output_config:
        tensorboard = {"S3OutputPath": spec.tensorboard_output_config["s3_output_path"]}
        if "container_local_output_path" in spec.tensorboard_output_config:
            tensorboard["LocalPath"] = spec.tensorboard_output_config["container_local_output_path"]
        request["TensorBoardOutputConfig"] = tensorboard
    if spec.mlflow_config:
        request["MlflowConfig"] = {_MLFLOW[key]: value for key, value in spec.mlflow_config.items()}
    return request


def _algorithm(spec: TrainingSpec, image: str | None) -> dict[str, Any]:
    algorithm: dict[str, Any] = {"TrainingInputMode": spec.input_mode}
    if image is None:
        algorithm["AlgorithmName"] = spec.algorithm_name  # an algorithm resource brings its own image
    else:
        algorithm["TrainingImage"] = image
    if spec.metric_definitions:
        algorithm["MetricDefinitions"] = [{"Name": m.name, "Regex": m.regex} for m in spec.metric_definitions]
    metrics = _sagemaker_metrics(spec)
    if metrics is not None:
        algorithm["EnableSageMakerMetricsTimeSeries"] = metrics
    if spec.container_entry_point is not None:
        algorithm["ContainerEntrypoint"] = list(spec.container_entry_point)
    if spec.container_arguments is not None:
        algorithm["ContainerArguments"] = list(spec.container_arguments)
    return algorithm


def _sagemaker_metrics(spec: TrainingSpec) -> bool | None:
    """The SDK's PyTorch (1.3+), TensorFlow (1.15+) and HuggingFace estimators turn metrics time series on."""
    if spec.enable_sagemaker_metrics is not None:
        return spec.enable_sagemaker_metrics
    if spec.framework == "huggingface":
        return True
    threshold = {"pytorch": (1, 3), "tensorflow": (1, 15)}.get(spec.framework or "")
    if threshold and spec.framework_version and _version_tuple(spec.framework_version) >= threshold:
        return True
    return None


def _output(spec: TrainingSpec) -> dict[str, Any]:
    output: dict[str, Any] = {"S3OutputPath": spec.output_path}
    if spec.output_kms_key is not None:
        output["KmsKeyId"] = spec.output_kms_key
    if spec.disable_output_compression:
        output["CompressionType"] = "NONE"
    return output


def _stopping(spec: TrainingSpec) -> dict[str, Any]:
    stopping: dict[str, Any] = {"MaxRuntimeInSeconds": spec.max_run}
    if spec.max_wait:
        stopping["MaxWaitTimeInSeconds"] = spec.max_wait
    if spec.max_pending_time:
        stopping["MaxPendingTimeInSeconds"] = spec.max_pending_time
    return stopping


def _resources(spec: TrainingSpec) -> dict[str, Any]:
    resources: dict[str, Any] = {"VolumeSizeInGB": spec.volume_size}
    if spec.volume_kms_key is not None:
        resources["VolumeKmsKeyId"] = spec.volume_kms_key
    if spec.keep_alive_period_in_seconds is not None:
        resources["KeepAlivePeriodInSeconds"] = spec.keep_alive_period_in_seconds
    resources["InstanceCount"] = spec.instance_count
    resources["InstanceType"] = spec.instance_type
    if spec.training_plan is not None:
        resources["TrainingPlanArn"] = spec.training_plan
    return resources


def _channel_options(channel: Any) -> dict[str, Any]:
    return {
        "distribution": channel.distribution,
        "compression": channel.compression,
        "content_type": channel.content_type,
        "record_wrapping": channel.record_wrapping,
        "s3_data_type": channel.s3_data_type,
        "input_mode": channel.input_mode,
        "attribute_names": channel.attribute_names,
        "shuffle_seed": channel.shuffle_seed,
    }


def _channel(
    name: str,
    s3_uri: str,
    *,
    distribution: str | None = None,
    compression: str | None = None,
    content_type: str | None = None,
    record_wrapping: str | None = None,
    s3_data_type: str = "S3Prefix",
    input_mode: str | None = None,
    attribute_names: tuple[str, ...] | None = None,
    shuffle_seed: int | None = None,
) -> dict[str, Any]:
    """Return one Channel as `sagemaker.inputs.TrainingInput(...).config` plus its name."""
    source: dict[str, Any] = {"S3DataType": s3_data_type, "S3Uri": s3_uri}
    source["S3DataDistributionType"] = distribution or "FullyReplicated"
    channel: dict[str, Any] = {"DataSource": {"S3DataSource": source}}
    if compression is not None:
        channel["CompressionType"] = compression
    if content_type is not None:
        channel["ContentType"] = content_type
    if record_wrapping is not None:
        channel["RecordWrapperType"] = record_wrapping
    if input_mode is not None:
        channel["InputMode"] = input_mode
    if attribute_names is not None:
        source["AttributeNames"] = list(attribute_names)
    if shuffle_seed is not None:
        channel["ShuffleConfig"] = {"Seed": shuffle_seed}
    channel["ChannelName"] = name
    return channel


# ---- distribution, as sagemaker/estimator.py Framework._distribution_configuration and the framework estimators


def _distribution_hyperparameters(spec: TrainingSpec) -> dict[str, Any]:
    distribution = _sdk_distribution(spec)
    if spec.framework in ("sklearn", "xgboost") or not distribution:
        return {}
    if spec.framework in ("pytorch", "huggingface"):
        if "pytorchddp" in distribution:
            if _on(distribution["pytorchddp"]):
                return {"sagemaker_pytorch_ddp_enabled": True, "sagemaker_instance_type": spec.instance_type}
        elif _on(distribution.get("torch_distributed")):
            config = {}
            if spec.framework == "pytorch" and "smdistributed" in distribution:
                config = _base_distribution(spec, distribution)
            config["sagemaker_torch_distributed_enabled"] = True
            config["sagemaker_instance_type"] = spec.instance_type
            return config
    return _base_distribution(spec, distribution)


def _sdk_distribution(spec: TrainingSpec) -> dict[str, Any]:
    """The SDK's PyTorch estimator turns `pytorchddp` into smdistributed data parallelism before encoding it."""
    distribution = dict(spec.distribution)
    if spec.framework == "pytorch" and "pytorchddp" in distribution:
        distribution["smdistributed"] = {"dataparallel": distribution.pop("pytorchddp")}
    return distribution


def _base_distribution(spec: TrainingSpec, distribution: Mapping[str, Any]) -> dict[str, Any]:
    config: dict[str, Any] = {}
    if "parameter_server" in distribution:
        config["sagemaker_parameter_server_enabled"] = _on(distribution["parameter_server"])
    if "mpi" in distribution:
        mpi = distribution["mpi"]
        config["sagemaker_mpi_enabled"] = _on(mpi)
        if mpi.get("processes_per_host"):
            config["sagemaker_mpi_num_of_processes_per_host"] = mpi["processes_per_host"]
        config["sagemaker_mpi_custom_mpi_options"] = mpi.get("custom_mpi_options", "")
    if "smdistributed" in distribution:
        dataparallel = distribution["smdistributed"].get("dataparallel", {})
        config["sagemaker_distributed_dataparallel_enabled"] = _on(dataparallel)
        config["sagemaker_instance_type"] = spec.instance_type
        if _on(dataparallel):
            config["sagemaker_distributed_dataparallel_custom_mpi_options"] = dataparallel.get("custom_mpi_options", "")
    if "multi_worker_mirrored_strategy" in distribution:
        config["sagemaker_multi_worker_mirrored_strategy_enabled"] = _on(distribution["multi_worker_mirrored_strategy"])
    return config


def _on(options: Any) -> bool:
    return bool(options.get("enabled", False)) if isinstance(options, dict) else False


def _tensorflow_model_dir(spec: TrainingSpec, job_name: str, values: Mapping[str, Any]) -> str:
    """The SDK's TensorFlow default: the job's folder under the output path, or the local model dir under MPI."""
    if values.get("sagemaker_mpi_enabled", False):
        return "/opt/ml/model"
    return _s3_path_join(spec.output_path, job_name, "model")


def _s3_path_join(*parts: str) -> str:
    """Join S3 path parts with single slashes, as `sagemaker.s3_utils.s3_path_join`."""
    joined = parts[0]
    for part in parts[1:]:
        joined = joined + part if joined.endswith("/") or part.startswith("/") else f"{joined}/{part}"
    scheme, rest = ("s3://", joined[5:]) if joined.startswith("s3://") else ("", joined)
    return scheme + re.sub("/+", "/", rest).strip("/")


# ---- image, partition and validation


def _image_uri(spec: TrainingSpec, region: str) -> str:
    framework, version = spec.framework or spec.algorithm or "", spec.framework_version or ""
    if spec.algorithm is not None and spec.algorithm != "xgboost":
        try:
            return images.algorithm_image_uri(spec.algorithm, region=region, version=version)
        except images.ImageError as exc:
            raise RequestError("region" if exc.where == "region" else spec.where(exc.where), exc.message) from exc
    extra: dict[str, Any] = {}
    if framework == "huggingface":
        base = "tensorflow" if spec.tensorflow_version else "pytorch"
        extra["base_framework_version"] = f"{base}{spec.tensorflow_version or spec.pytorch_version}"
    try:
        return images.training_image_uri(
            framework,
            version,
            region=region,
            instance_type=spec.instance_type,
            py_version=spec.py_version,
            distribution=dict(spec.distribution) or None,
            **extra,
        )
    except images.ImageError as exc:
        name = _IMAGE_ARGUMENTS.get(exc.where, exc.where)
        if name == "framework_version" and framework == "huggingface":
            name = "transformers_version"
        elif name == "base_framework_version":
            name = "tensorflow_version" if spec.tensorflow_version else "pytorch_version"
        raise RequestError("region" if name == "region" else spec.where(name), exc.message) from exc


def _check_partition(spec: TrainingSpec, partition: str, region: str) -> None:
    role_partition = spec.role.split(":")[1]
    if role_partition != partition:
        raise RequestError(
            spec.where("role"),
            f"{_quote(spec.role)} is in partition {role_partition}, but region {region} is in {partition}",
        )


@cache
def _loader() -> Any:
    from botocore.loaders import create_loader

    return create_loader()


@cache
def _input_shape() -> Shape:
    from botocore.model import ServiceModel

    model = ServiceModel(operation_model("sagemaker", _OPERATION), "sagemaker")
    shape = model.operation_model(_OPERATION).input_shape
    if shape is None:
        raise AssertionError("botocore's sagemaker model has no CreateTrainingJob input")
    return shape


def operation_model(service: str, operation: str) -> dict[str, Any]:
    """botocore's model of `service` cut down to `operation` and the shapes its input reaches.

    SageMaker's whole model is 3 200 shapes, about a tenth of `sagepush render`'s time to load; the cut one is a few
    dozen. The cut model of the locked botocore ships in `data/` (`scripts/cut_botocore_model.py` writes it; a unit
    test keeps it in step with uv.lock), so neither a Lambda cold start nor a CLI start loads the whole model. Where
    botocore is another version, or models of the service are installed under ~/.aws/models (botocore reads those
    first), the model is cut from botocore's own, once per process.
    """
    import botocore

    custom = (Path.home() / ".aws" / "models" / service).exists()
    packaged = PACKAGED_MODELS / f"{service}-{operation}.json"
    if not custom and packaged.exists():
        shipped: dict[str, Any] = json.loads(packaged.read_bytes())
        if shipped.get("botocore") == botocore.__version__:
            model: dict[str, Any] = shipped["model"]
            return model
    return _cut_from_botocore(service, operation)


@cache
def _cut_from_botocore(service: str, operation: str) -> dict[str, Any]:
    return cut_model(_loader().load_service_model(service, "service-2"), operation)


def cut_model(model: Mapping[str, Any], operation: str) -> dict[str, Any]:
    """Return `model` with only `operation` (its input) and the shapes its input reaches."""
    spec = model["operations"][operation]
    shapes = model["shapes"]
    kept: dict[str, Any] = {}
    todo = [spec["input"]["shape"]]
    while todo:
        name = todo.pop()
        if name in kept:
            continue
        shape = kept[name] = shapes[name]
        refs = [*shape.get("members", {}).values(), shape.get("member"), shape.get("key"), shape.get("value")]
        todo.extend(ref["shape"] for ref in refs if ref)
    operations = {operation: {k: spec[k] for k in ("name", "http", "input") if k in spec}}
    return {"version": model.get("version"), "metadata": model["metadata"], "operations": operations, "shapes": kept}


def field_of(path: str, spec: TrainingSpec) -> str:
    """Return the file-and-field label of the manifest field that sets request `path` (for errors about it)."""
    return _where(path, spec)


def _where(path: str, spec: TrainingSpec) -> str:
    """Map a request path (`ResourceConfig.VolumeSizeInGB`, `InputDataConfig[1].InputMode`) to its manifest field."""
    if _set_by_overrides(path, spec.request_overrides):
        return spec.where(f"request_overrides.{path}")
    match = re.match(r"InputDataConfig\[(\d+)\]", path)
    if match:
        index = int(match.group(1))
        if index < len(spec.channels):
            return spec.where(f"channels.{spec.channels[index].name}")
        return spec.where("model_uri" if spec.model_uri and index == len(spec.channels) else "channels")
    if path == "AlgorithmSpecification.TrainingImage" and spec.image_uri is None:
        return spec.where("algorithm" if spec.algorithm else "framework")  # the field that picked the image
    match = re.match(r"(HyperParameters|Environment|Tags)\.?(.*)", path)
    if match:
        base = _FIELDS[match.group(1)]
        key = match.group(2).split(".")[0]
        return spec.where(f"{base}.{key}" if key and not key.startswith("[") else base)
    for prefix in sorted(_FIELDS, key=len, reverse=True):
        if path == prefix or path.startswith((f"{prefix}.", f"{prefix}[")):
            return spec.where(_FIELDS[prefix])
    return spec.where(f"request_overrides.{path}") if spec.request_overrides else "request"


def _set_by_overrides(path: str, overrides: Mapping[str, Any]) -> bool:
    node: Any = overrides
    for part in re.split(r"\.|(?=\[)", path):
        if not part or part.startswith("["):
            return isinstance(node, list)
        if not isinstance(node, Mapping) or part not in node:
            return False
        node = node[part]
    return True


def _describe(kind: str, details: Mapping[str, Any]) -> str:
    if kind == "invalid type":
        types = ", ".join(t.split("'")[1] if "'" in t else t for t in details.get("valid_types", []))
        return f"{_quote(details.get('param'))} has the wrong type (SageMaker expects {types})"
    if kind == "invalid range":
        return f"{details.get('param')} is below the minimum {details.get('min_allowed')}"
    if kind == "invalid length":
        return f"has length {details.get('param')}, below the minimum {details.get('min_allowed')}"
    if kind == "missing required field":
        return f"misses the required field `{details.get('required_name')}`"
    if kind == "unknown field":
        unknown = str(details.get("unknown_param"))
        close = difflib.get_close_matches(unknown, details.get("valid_names", []), n=1)
        hint = f" (did you mean `{close[0]}`?)" if close else ""
        return f"is not a field SageMaker accepts here{hint}"
    return kind


def _limit_problems(value: Any, shape: Shape, path: str) -> Iterator[tuple[str, str]]:
    """Yield what ParamValidator leaves to the service: enum members and maximum lengths, sizes and values."""
    maximum = shape.metadata.get("max")
    node = cast("Any", shape)
    if shape.type_name == "structure" and isinstance(value, dict):
        for name, item in value.items():
            if name in node.members:
                yield from _limit_problems(item, node.members[name], f"{path}.{name}" if path else name)
        return
    if shape.type_name in ("list", "map") and isinstance(value, list | dict):
        if maximum is not None and len(value) > maximum:
            yield path, f"has {len(value)} entries, above the maximum {maximum}"
        if isinstance(value, list):
            for index, item in enumerate(value):
                yield from _limit_problems(item, node.member, f"{path}[{index}]")
        else:
            for key, item in value.items():
                yield from _limit_problems(key, node.key, f"{path}.{key}")
                yield from _limit_problems(item, node.value, f"{path}.{key}")
        return
    yield from _scalar_problems(value, shape, path, maximum)


def _scalar_problems(value: Any, shape: Shape, path: str, maximum: int | None) -> Iterator[tuple[str, str]]:
    enum: list[str] = getattr(shape, "enum", None) or []
    if shape.type_name == "string" and isinstance(value, str):
        if enum and value not in enum:
            close = difflib.get_close_matches(value, enum, n=1)
            hint = f" (did you mean {close[0]}?)" if close else ""
            yield path, f"{_quote(value)} is not a value SageMaker accepts{hint}"
        elif maximum is not None and len(value) > maximum:
            yield path, f"{_quote(value)} is {len(value)} characters long, above the maximum {maximum}"
    elif shape.type_name in ("integer", "long") and isinstance(value, int) and maximum is not None and value > maximum:
        yield path, f"{value} is above the maximum {maximum}"


def _quote(value: object, limit: int = 60) -> str:
    text = json.dumps(value, ensure_ascii=False, default=str)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _version_tuple(version: str) -> tuple[int, ...]:
    return tuple(int(part) for part in re.split(r"[.\-]", version) if part.isdigit())
