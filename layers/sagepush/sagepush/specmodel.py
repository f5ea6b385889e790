"""The manifest's data model: what a manifest declares, read into a TrainingSpec, and the error naming what is wrong.

`spec` reads manifests into these types (with `specfields` parsing each field and `sdkchecks` checking fields against
each other); `request` builds the CreateTrainingJob request from a TrainingSpec.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from sagepush.errors import InputError

if TYPE_CHECKING:
    from collections.abc import Mapping

MANIFEST_NAMES = ("sagepush.toml", "pyproject.toml")
"""Root-level files that may hold the manifest, in the order they are looked for."""

FRAMEWORKS = ("pytorch", "tensorflow", "sklearn", "xgboost", "huggingface")
INPUT_MODES = ("File", "Pipe", "FastFile")
MAX_RUN_LIMIT = 28 * 24 * 3600
"""SageMaker's ceiling for MaxRuntimeInSeconds and MaxWaitTimeInSeconds (and MaxPendingTimeInSeconds): 28 days."""
MIN_PENDING_TIME = 1800
"""The shortest StoppingCondition.MaxPendingTimeInSeconds SageMaker accepts (30 minutes)."""
MAX_NESTING = 32
"""Deepest nesting of arrays and tables a manifest may use; deeper is refused before anything walks it."""

DEFAULTS_SOURCE = "defaults"
OVERRIDES_SOURCE = "overrides"

EMPTY: Mapping[str, Any] = MappingProxyType({})
"""An empty, read-only table: the default of every mapping field."""


class SpecError(InputError):
    """The manifest is wrong; `where` names the file and field."""


@dataclass(frozen=True, slots=True)
class Manifest:
    """The raw `[tool.sagepush]` table and the file it came from; `requirements` are a single script's PEP 723
    `dependencies` (pip requirement strings, staged as requirements.txt), not the manifest key `dependencies`."""

    source: str
    table: Mapping[str, Any]
    requirements: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class CodeLayout:
    """What is staged, as the SDK's `source_dir` and `dependencies` shape sourcedir.tar.gz.

    `source_dir` is the folder whose contents are the staged code's root (None: the project root); each of
    `dependencies` (a file or folder) is staged at the root under its last path component. Paths are relative to
    the project root, normalised (no `./`, no trailing `/`). `where_*` name the manifest field for errors.
    """

    source_dir: str | None = None
    dependencies: tuple[str, ...] = ()
    where_source_dir: str = "source_dir"
    where_dependencies: str = "dependencies"


@dataclass(frozen=True, slots=True)
class Channel:
    """One input channel of the job, as `fit()` takes it: a name and an S3 location with its options."""

    name: str
    s3_uri: str
    input_mode: str | None = None
    distribution: str | None = None
    content_type: str | None = None
    compression: str | None = None
    s3_data_type: str = "S3Prefix"
    record_wrapping: str | None = None
    attribute_names: tuple[str, ...] | None = None
    shuffle_seed: int | None = None


@dataclass(frozen=True, slots=True)
class MetricDefinition:
    """A metric SageMaker scrapes from the job's logs."""

    name: str
    regex: str


@dataclass(frozen=True, slots=True)
class Defaults:
    """Deployment defaults: what fills a field the manifest leaves out."""

    role: str | None = None
    instance_type: str | None = None
    instance_count: int = 1
    volume_size: int = 30
    max_run: int = 24 * 3600
    output_path: str | None = None
    output_kms_key: str | None = None
    volume_kms_key: str | None = None
    subnets: tuple[str, ...] = ()
    security_group_ids: tuple[str, ...] = ()
    tags: Mapping[str, str] = field(default_factory=lambda: EMPTY)
    framework: str | None = None
    framework_version: str | None = None
    py_version: str | None = None
    entry_point: str | None = None


@dataclass(frozen=True, slots=True)
class TrainingSpec:
    """Everything a training job is built from, keyed by the SageMaker Python SDK estimator argument names.

    Durations are seconds. `source` names the manifest file (or `defaults`); `declared` holds the fields the
    manifest set, so later errors can say which file to fix.
    """

    entry_point: str | None  # None: no script (`image_uri`, `algorithm` or `algorithm_name`, no framework)
    role: str
    instance_type: str
    output_path: str
    framework: str | None = None
    framework_version: str | None = None
    py_version: str | None = None
    image_uri: str | None = None
    algorithm: str | None = None  # a built-in algorithm by name: its image, and no script
    algorithm_name: str | None = None  # an algorithm resource (name or ARN): no image, no script
    pytorch_version: str | None = None
    tensorflow_version: str | None = None
    source_dir: str | None = None
    dependencies: tuple[str, ...] = ()  # staged at the code root beside source_dir's contents (the SDK's meaning)
    instance_count: int = 1
    volume_size: int = 30
    volume_kms_key: str | None = None
    max_run: int = 24 * 3600
    input_mode: str = "File"
    hyperparameters: Mapping[str, Any] = field(default_factory=lambda: EMPTY)
    environment: Mapping[str, str] = field(default_factory=lambda: EMPTY)
    channels: tuple[Channel, ...] = ()
    metric_definitions: tuple[MetricDefinition, ...] = ()
    use_spot_instances: bool = False
    max_wait: int | None = None
    max_pending_time: int | None = None
    checkpoint_s3_uri: str | None = None
    checkpoint_local_path: str | None = None
    tensorboard_output_config: Mapping[str, str] = field(default_factory=lambda: EMPTY)
    subnets: tuple[str, ...] = ()
    security_group_ids: tuple[str, ...] = ()
    enable_network_isolation: bool = False
    encrypt_inter_container_traffic: bool = False
    output_kms_key: str | None = None
    disable_output_compression: bool = False
    distribution: Mapping[str, Any] = field(default_factory=lambda: EMPTY)
    tags: Mapping[str, str] = field(default_factory=lambda: EMPTY)
    container_log_level: int = 20
    max_retry_attempts: int | None = None
    keep_alive_period_in_seconds: int | None = None
    training_plan: str | None = None
    enable_session_tag_chaining: bool | None = None
    mlflow_config: Mapping[str, str] = field(default_factory=lambda: EMPTY)
    model_dir: str | bool | None = None
    model_uri: str | None = None
    enable_sagemaker_metrics: bool | None = None
    enable_infra_check: bool | None = None
    container_entry_point: tuple[str, ...] | None = None
    code_channel: str | None = None
    container_arguments: tuple[str, ...] | None = None
    allow_secrets: tuple[str, ...] = ()
    request_overrides: Mapping[str, Any] = field(default_factory=lambda: EMPTY)
    requirements: tuple[str, ...] = ()  # a single script's PEP 723 dependencies (staged as requirements.txt)
    source: str = field(default=DEFAULTS_SOURCE, compare=False)
    declared: frozenset[str] = field(default=frozenset(), compare=False)

    @property
    def runs_script(self) -> bool:
        """Whether the job runs a staged script (script mode), rather than the image's own entrypoint."""
        return self.entry_point is not None

    @property
    def stages_code(self) -> bool:
        """Whether the job needs the pushed code staged: it runs a script, or its image gets the code as a channel."""
        return self.runs_script or self.code_channel is not None

    @property
    def transformers_version(self) -> str | None:
        """The HuggingFace transformers version, which is the framework version of a huggingface spec."""
        return self.framework_version if self.framework == "huggingface" else None

    def where(self, name: str) -> str:
        """Return the file-and-field label an error about manifest field `name` should carry."""
        top = re.split(r"[.\[]", name, maxsplit=1)[0]
        return f"{self.source if top in self.declared else DEFAULTS_SOURCE}: {name}"
