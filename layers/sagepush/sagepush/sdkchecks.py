"""Checks across a TrainingSpec's fields, mirroring the SageMaker Python SDK's own estimator checks (framework and
version against distribution strategies, instance families, HuggingFace's framework pins)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from sagepush.specfields import quote
from sagepush.specmodel import FRAMEWORKS, SpecError

if TYPE_CHECKING:
    from collections.abc import Callable

    from sagepush.specmodel import TrainingSpec

# sagemaker/fw_utils.py: the versions smdistributed dataparallel and torch_distributed accept.
# fmt: off
_SMDDP_VERSIONS = {
    "tensorflow": frozenset([
        "2.3", "2.3.1", "2.3.2", "2.4", "2.4.1", "2.4.3", "2.5", "2.5.0", "2.5.1", "2.6", "2.6.0", "2.6.2", "2.6.3",
        "2.7", "2.7.1", "2.8", "2.8.0", "2.9", "2.9.1", "2.9.2", "2.10", "2.10.1", "2.11", "2.11.0",
    ]),
    "pytorch": frozenset([
        "1.6", "1.6.0", "1.7", "1.7.1", "1.8", "1.8.0", "1.8.1", "1.9", "1.9.0", "1.9.1", "1.10", "1.10.0", "1.10.2",
        "1.11", "1.11.0", "1.12", "1.12.0", "1.12.1", "1.13.1", "2.0.0", "2.0.1", "2.1.0", "2.1.2", "2.2.0",
    ]),
}
_TORCH_DISTRIBUTED_GPU_VERSIONS = frozenset([
    "1.13.1", "2.0.0", "2.0.1", "2.1.0", "2.1.2", "2.2.0", "2.3.0", "2.3.1", "2.4.1", "2.5.1", "2.6.0", "2.7.1",
    "2.8.0",
])
_TORCH_DISTRIBUTED_TRN_VERSIONS = frozenset(["1.11", "1.11.0", "1.12", "1.12.0", "1.12.1", "1.13.1", "2.0.0"])
# fmt: on
_STRATEGIES = {
    "pytorch": ("torch_distributed", "pytorchddp", "mpi", "smdistributed"),
    "huggingface": ("torch_distributed", "pytorchddp", "mpi", "smdistributed", "parameter_server"),
    "tensorflow": ("parameter_server", "mpi", "smdistributed", "multi_worker_mirrored_strategy"),
    "sklearn": (),
    "xgboost": (),
}


def check_spec(spec: TrainingSpec, where: Callable[[str], str], name: Callable[[str], str] = str) -> None:
    """Check what no single field can: `where(field)` locates a field in the error, `name(field)` names another one
    in the message, each as the manifest spells it (`max_wait` or `stopping_condition.max_wait_time_in_seconds`)."""
    _check_framework(spec, where)
    if not spec.runs_script:
        # The image runs its own entrypoint: what only a script uses has nothing to apply to (the SDK's Estimator
        # takes none of these without an entry_point).
        for key in ("source_dir", "dependencies", "distribution"):
            if getattr(spec, key):
                raise SpecError(where(key), f"applies only to a script: set {name('entry_point')} too")
    if spec.max_wait is not None and not spec.use_spot_instances:
        raise SpecError(where("max_wait"), f"applies only with {name('use_spot_instances')} = true")
    if spec.max_wait is not None and spec.max_wait < spec.max_run:
        raise SpecError(where("max_wait"), f"{spec.max_wait}s is shorter than {name('max_run')} ({spec.max_run}s)")
    if spec.checkpoint_local_path and not spec.checkpoint_s3_uri:
        raise SpecError(where("checkpoint_local_path"), f"needs {name('checkpoint_s3_uri')} (where the checkpoints go)")
    if bool(spec.subnets) != bool(spec.security_group_ids):
        present, missing = ("subnets", "security_group_ids") if spec.subnets else ("security_group_ids", "subnets")
        raise SpecError(where(present), f"needs {name(missing)} too: a VPC job needs both")
    if spec.code_channel is not None and spec.runs_script:
        raise SpecError(
            where("code_channel"),
            f"is for an image that runs its own entrypoint; a script ({name('entry_point')}) gets its code already",
        )
    reserved = {"code"} if spec.enable_network_isolation else set()
    reserved |= {"model"} if spec.model_uri else set()
    reserved |= {spec.code_channel} if spec.code_channel else set()
    for channel in spec.channels:
        if channel.name in reserved:
            raise SpecError(where(f"channels.{channel.name}"), "is reserved for the code or model sagepush delivers")
    if spec.distribution:
        _check_distribution(spec, where)


def _check_framework(spec: TrainingSpec, where: Callable[[str], str]) -> None:
    if spec.algorithm is not None or spec.algorithm_name is not None:
        _check_algorithm(spec, where)
        return
    if spec.framework is None:
        if spec.image_uri is None:
            raise SpecError(
                where("framework"),
                f"is required unless image_uri or algorithm is set (one of {', '.join(FRAMEWORKS)})",
            )
        return
    if spec.framework != "huggingface" and (spec.pytorch_version or spec.tensorflow_version):
        name = "pytorch_version" if spec.pytorch_version else "tensorflow_version"
        raise SpecError(where(name), 'applies only to framework = "huggingface"')
    if spec.image_uri is not None:
        return
    version_key = "transformers_version" if spec.framework == "huggingface" else "framework_version"
    if spec.framework_version is None:
        raise SpecError(where(version_key), f"is required for framework = {quote(spec.framework)} without image_uri")
    if spec.framework in ("sklearn", "xgboost"):
        if spec.py_version not in (None, "py3"):
            raise SpecError(
                where("py_version"), f"{quote(spec.py_version)} is not available for {spec.framework} (use py3)"
            )
    elif spec.py_version is None:
        raise SpecError(where("py_version"), f'is required for framework = {quote(spec.framework)} (like "py311")')
    if spec.framework == "sklearn" and spec.instance_count != 1:
        raise SpecError(where("instance_count"), "must be 1: scikit-learn does not train distributed")
    if spec.framework == "huggingface":
        _check_huggingface(spec, spec.framework_version, where)


def _check_algorithm(spec: TrainingSpec, where: Callable[[str], str]) -> None:
    # An algorithm (built-in by name, or a resource) is its own image, run without a script: nothing may choose another.
    named = "algorithm" if spec.algorithm is not None else "algorithm_name"
    for key in ("framework", "image_uri", "entry_point", "algorithm_name" if named == "algorithm" else "algorithm"):
        if getattr(spec, key) is not None:
            raise SpecError(where(named), f"runs its own image without a script: remove {key}")
    if spec.algorithm == "xgboost" and spec.framework_version is None:
        raise SpecError(where("framework_version"), 'is required for algorithm = "xgboost" (like "1.7-1")')


def _check_huggingface(spec: TrainingSpec, version: str, where: Callable[[str], str]) -> None:
    if (spec.pytorch_version is None) == (spec.tensorflow_version is None):
        raise SpecError(
            where("pytorch_version"), "huggingface needs exactly one of pytorch_version or tensorflow_version"
        )
    base = spec.pytorch_version or spec.tensorflow_version or ""
    if len(base.split(".")) != len(version.split(".")):
        raise SpecError(
            where("transformers_version"),
            "and the base framework version must both be full (4.28.1) or both be short (4.28)",
        )


def _enabled(options: object) -> bool:
    return isinstance(options, dict) and options.get("enabled", False) is True


def _check_distribution(spec: TrainingSpec, where: Callable[[str], str]) -> None:
    distribution = spec.distribution
    framework = spec.framework
    if framework is not None:
        allowed = _STRATEGIES[framework]
        for strategy in distribution:
            if strategy not in allowed:
                hint = f"use one of {', '.join(allowed)}" if allowed else f"{framework} does not train distributed"
                raise SpecError(where(f"distribution.{strategy}"), f"is not available for {framework} ({hint})")
    family = spec.instance_type.split(".")[1]
    if family.startswith("trn") and (len(distribution) > 1 or set(distribution) - {"torch_distributed"}):
        raise SpecError(where("distribution"), "Trainium instances support only torch_distributed")
    base_framework, base_version = framework, spec.framework_version
    if framework == "huggingface":
        base_framework = "tensorflow" if spec.tensorflow_version else "pytorch"
        base_version = spec.tensorflow_version or spec.pytorch_version
    py3 = "py3" in (spec.py_version or "")
    torch_distributed = _enabled(distribution.get("torch_distributed"))
    if _enabled(distribution.get("smdistributed", {}).get("dataparallel")):
        _check_smddp(spec, base_framework, base_version, py3, torch_distributed, where("distribution.smdistributed"))
    if torch_distributed and base_framework == "pytorch":
        _check_torch_distributed(spec, family, base_version, py3, where("distribution.torch_distributed"))
    if _enabled(distribution.get("multi_worker_mirrored_strategy")):
        at = where("distribution.multi_worker_mirrored_strategy")
        if spec.framework_version and _version_tuple(spec.framework_version) < (2, 9):
            raise SpecError(at, f"needs tensorflow 2.9 or later, found {spec.framework_version}")
        if {"smdistributed", "parameter_server"} & set(distribution):
            raise SpecError(at, "cannot be combined with smdistributed or parameter_server")


def _check_smddp(
    spec: TrainingSpec, framework: str | None, version: str | None, py3: bool, torch_distributed: bool, at: str
) -> None:
    supported = _SMDDP_VERSIONS.get(framework or "", frozenset())
    if spec.image_uri is None and version not in supported:
        listed = ", ".join(sorted(supported, key=_version_tuple))
        raise SpecError(at, f"needs a framework version among {listed} (or an image_uri), found {quote(version)}")
    if spec.image_uri is None and not py3:
        raise SpecError(at, "needs py_version py3 or later")
    if "p5.48xlarge" in spec.instance_type and not torch_distributed:
        raise SpecError(at, "does not support p5 instances")


def _check_torch_distributed(spec: TrainingSpec, family: str, version: str | None, py3: bool, at: str) -> None:
    if spec.image_uri is None:
        if not py3:
            raise SpecError(at, "needs py_version py3 or later")
        if family.startswith(("p", "g")):
            if version not in _TORCH_DISTRIBUTED_GPU_VERSIONS:
                listed = ", ".join(sorted(_TORCH_DISTRIBUTED_GPU_VERSIONS, key=_version_tuple))
                raise SpecError(at, f"on GPU needs a full framework version among {listed}, found {quote(version)}")
        elif family.startswith("trn"):
            if version not in _TORCH_DISTRIBUTED_TRN_VERSIONS:
                listed = ", ".join(sorted(_TORCH_DISTRIBUTED_TRN_VERSIONS, key=_version_tuple))
                raise SpecError(at, f"on Trainium needs a framework version among {listed}, found {quote(version)}")
        else:
            raise SpecError(at, f"runs only on GPU or Trainium instances, not {spec.instance_type}")
    if spec.entry_point is not None and not spec.entry_point.endswith(".py"):
        raise SpecError(at, f"needs a Python entry point (*.py), not {quote(spec.entry_point)}")


def _version_tuple(version: str) -> tuple[int, ...]:
    return tuple(int(part) for part in version.split(".") if part.isdigit())
