"""The manifest, read from every place it may live, becomes a checked TrainingSpec; bad ones name file and field."""

from __future__ import annotations

from typing import Any

import pytest

from sagepush.spec import (
    MANIFEST_KEYS,
    Channel,
    Defaults,
    Manifest,
    MetricDefinition,
    SpecError,
    TrainingSpec,
    find_manifest,
    parse_duration,
    resolve_spec,
    spec_to_manifest,
)

ROLE = "arn:aws:iam::123456789012:role/SagepushTraining"
DEFAULTS = Defaults(
    role=ROLE,
    instance_type="ml.m5.xlarge",
    output_path="s3://sagepush-artifacts/output/",
    framework="pytorch",
    framework_version="2.5",
    py_version="py311",
    entry_point="train.py",
    tags={"owner": "ml-platform"},
)
DESIGN_EXAMPLE = b"""
framework = "pytorch"
framework_version = "2.5"
py_version = "py311"
entry_point = "train.py"
instance_type = "ml.g5.xlarge"
max_run = "2h"
hyperparameters = { epochs = 10, lr = 0.001 }
channels = { train = "s3://my-data/train/" }
metric_definitions = [{ Name = "val:loss", Regex = "val_loss=([0-9.]+)" }]
"""


def resolve(table: dict[str, Any], source: str = "sagepush.toml", defaults: Defaults = DEFAULTS) -> TrainingSpec:
    return resolve_spec(Manifest(source=source, table=table), defaults)


@pytest.mark.parametrize(
    ("files", "script", "source"),
    [
        pytest.param({"sagepush.toml": DESIGN_EXAMPLE}, None, "sagepush.toml", id="sagepush-toml"),
        pytest.param(
            {"sagepush.toml": b"[tool.sagepush]\n" + DESIGN_EXAMPLE}, None, "sagepush.toml", id="sagepush-toml-tool"
        ),
        pytest.param(
            {"pyproject.toml": b'[project]\nname = "x"\n[tool.sagepush]\n' + DESIGN_EXAMPLE},
            None,
            "pyproject.toml",
            id="pyproject",
        ),
        pytest.param(
            {"sagepush.toml": DESIGN_EXAMPLE, "pyproject.toml": b"[tool.sagepush]\nmax_run = 1\n"},
            None,
            "sagepush.toml",
            id="sagepush-toml-wins",
        ),
        pytest.param(
            {
                "train.py": b"# /// script\n# dependencies = []\n# [tool.sagepush]\n"
                + b"".join(b"# " + line + b"\n" for line in DESIGN_EXAMPLE.strip().splitlines())
                + b"# ///\nprint('hi')\n"
            },
            "train.py",
            "train.py",
            id="pep723",
        ),
    ],
)
def test_reads_the_design_example_from_every_manifest_home(
    files: dict[str, bytes], script: str | None, source: str
) -> None:
    manifest = find_manifest(files, script=script)
    assert manifest is not None
    assert manifest.source == source
    spec = resolve_spec(manifest, DEFAULTS)
    assert spec.max_run == 7200
    assert spec.instance_type == "ml.g5.xlarge"
    assert spec.hyperparameters == {"epochs": 10, "lr": 0.001}
    assert spec.channels == (Channel(name="train", s3_uri="s3://my-data/train/"),)
    assert spec.metric_definitions == (MetricDefinition(name="val:loss", regex="val_loss=([0-9.]+)"),)
    assert spec.role == ROLE
    assert spec.tags == {"owner": "ml-platform"}


def test_script_is_its_own_entry_point_and_its_pep723_dependencies_are_requirements() -> None:
    script = b'# /// script\n# dependencies = ["numpy>=2"]\n# ///\nimport numpy\n'
    manifest = find_manifest({"fit.py": script}, script="fit.py")
    assert manifest == Manifest(source="fit.py", table={"entry_point": "fit.py"}, requirements=("numpy>=2",))
    spec = resolve_spec(manifest, DEFAULTS)
    # PEP 723's `dependencies` are pip requirements, never the manifest key `dependencies` (paths staged as code)
    assert (spec.entry_point, spec.requirements, spec.dependencies) == ("fit.py", ("numpy>=2",), ())


def test_script_without_block_still_names_its_entry_point() -> None:
    manifest = find_manifest({"fit.py": b"print(1)\n"}, script="fit.py")
    assert manifest is not None
    assert resolve_spec(manifest, DEFAULTS).entry_point == "fit.py"


def test_archive_without_manifest_uses_defaults() -> None:
    assert find_manifest({"train.py": b""}) is None
    spec = resolve_spec(None, DEFAULTS)
    assert (spec.source, spec.framework, spec.instance_type) == ("defaults", "pytorch", "ml.m5.xlarge")


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        ("90m", 5400),
        ("2h", 7200),
        ("1h30m", 5400),
        ("1h 30m", 5400),
        ("45s", 45),
        ("3d", 259200),
        ("2d12h", 216000),
        ("3600", 3600),
        (3600, 3600),
    ],
)
def test_parses_durations(value: object, seconds: int) -> None:
    assert parse_duration(value, "max_run") == seconds


@pytest.mark.parametrize("value", ["2 hours", "", "1.5h", "h", "-5", True, 1.5, None])
def test_refuses_non_durations(value: object) -> None:
    with pytest.raises(SpecError, match=r"is not a duration \(use 90m, 2h or seconds\)"):
        parse_duration(value, "max_run")


def test_message_quotes_the_value_and_names_file_and_field() -> None:
    with pytest.raises(SpecError) as caught:
        resolve({"max_run": "2 hours"})
    assert str(caught.value) == 'sagepush.toml: max_run: "2 hours" is not a duration (use 90m, 2h or seconds)'
    assert caught.value.where == "sagepush.toml: max_run"


@pytest.mark.parametrize(
    ("table", "message"),
    [
        pytest.param({"max_runn": "2h"}, "sagepush.toml: max_runn: unknown key (did you mean `max_run`?)", id="typo"),
        pytest.param({"instance_typ": "ml.m5.xlarge"}, "did you mean `instance_type`?", id="typo-instance"),
        pytest.param({"gpu": True}, "sagepush.toml: gpu: unknown key", id="unknown-no-hint"),
        pytest.param({"framework": "pytorh"}, "(did you mean `pytorch`?)", id="framework-typo"),
        pytest.param({"instance_count": 0}, "instance_count: 0 is out of range (1 to 1000)", id="count-zero"),
        pytest.param({"instance_count": "2"}, 'instance_count: must be an integer, found a string "2"', id="count-str"),
        pytest.param({"volume_size": 16385}, "volume_size: 16385 is out of range (1 to 16384)", id="volume-big"),
        pytest.param({"max_run": "29d"}, 'max_run: "29d" is out of range (1 second to 28 days)', id="max-run-long"),
        pytest.param({"max_wait": "3h"}, "max_wait: applies only with use_spot_instances = true", id="wait-no-spot"),
        pytest.param(
            {"use_spot_instances": True, "max_run": "2h", "max_wait": "1h"},
            "max_wait: 3600s is shorter than max_run (7200s)",
            id="wait-short",
        ),
        pytest.param(
            {"use_spot_instances": "yes"}, 'use_spot_instances: must be true or false, found "yes"', id="bool"
        ),
        pytest.param({"instance_type": "m5.xlarge"}, "is not a SageMaker instance type", id="instance-type"),
        pytest.param({"role": "SageMakerRole"}, 'role: "SageMakerRole" is not an IAM role ARN', id="role-name"),
        pytest.param({"output_path": "/tmp/out"}, 'output_path: "/tmp/out" is not an S3 URI', id="output-path"),
        pytest.param({"entry_point": "../train.py"}, "must be a path relative to the upload's root", id="escape"),
        pytest.param({"framework_version": 2.5}, 'found the number 2.5 (quote it: "2.5")', id="version-number"),
        pytest.param(
            {"hyperparameters": {"sagemaker_program": "x"}},
            "hyperparameters.sagemaker_program: is reserved",
            id="hp-reserved",
        ),
        pytest.param(
            {"hyperparameters": {"sagemaker_mpi_enabled": True}},
            "hyperparameters.sagemaker_mpi_enabled: is reserved",
            id="hp-reserved-distribution",
        ),
        pytest.param(
            {"hyperparameters": {"sagemaker_anything": 1}},
            "hyperparameters.sagemaker_anything: is reserved",
            id="hp-reserved-prefix",
        ),
        pytest.param(
            {"hyperparameters": {"lr": float("nan")}}, "hyperparameters.lr: nan has no JSON form", id="hp-nan"
        ),
        pytest.param(
            {"environment": {"THREADS": 4}},
            'environment.THREADS: must be a string, found an integer (quote it: "4")',
            id="env-int",
        ),
        pytest.param(
            {"channels": {"train": "http://x/"}}, 'channels.train: "http://x/" is not an S3 URI', id="channel-uri"
        ),
        pytest.param(
            {"channels": {"train": {"uri": "s3://bkt/x"}}},
            "channels.train.uri: unknown channel option",
            id="channel-key",
        ),
        pytest.param(
            {"channels": {"train": {"input_mode": "Pipe"}}}, "channels.train.s3_uri: is required", id="channel-no-uri"
        ),
        pytest.param(
            {"channels": {"train": {"s3_uri": "s3://bkt/x", "input_mode": "pipe"}}},
            "(did you mean `Pipe`?)",
            id="channel-mode",
        ),
        pytest.param(
            {"channels": {"bad name": "s3://bkt/x"}}, "channels.bad name: is not a channel name", id="channel-name"
        ),
        pytest.param(
            {"metric_definitions": [{"Name": "loss"}]},
            "metric_definitions[0]: must hold exactly `Name` and `Regex`",
            id="metric-keys",
        ),
        pytest.param(
            {"metric_definitions": [{"Name": "l", "Regex": "("}]},
            'metric_definitions[0].Regex: "(" is not a regular expression',
            id="metric-regex",
        ),
        pytest.param({"subnets": ["subnet-1"]}, "subnets: needs security_group_ids too", id="vpc-half"),
        pytest.param(
            {"checkpoint_local_path": "/opt/ml/c"}, "checkpoint_local_path: needs checkpoint_s3_uri", id="ckpt-local"
        ),
        pytest.param({"tags": {"sagepush:project": "x"}}, "tags.sagepush:project: is reserved", id="tag-reserved"),
        pytest.param({"tags": {"aws:x": "y"}}, "tags.aws:x: is reserved", id="tag-aws"),
        pytest.param({"container_log_level": "LOUD"}, 'container_log_level: "LOUD" is not a log level', id="log-level"),
        pytest.param({"max_retry_attempts": 31}, "max_retry_attempts: 31 is out of range (1 to 30)", id="retries"),
        pytest.param(
            {"enable_network_isolation": True, "channels": {"code": "s3://bkt/c"}},
            "channels.code: is reserved",
            id="code-channel",
        ),
        pytest.param(
            {"model_uri": "s3://bkt/model.tar.gz", "channels": {"model": "s3://bkt/m/"}},
            "channels.model: is reserved",
            id="model-channel-with-model-uri",
        ),
        pytest.param(
            {"framework": "sklearn", "framework_version": "1.2-1", "py_version": "py3", "instance_count": 2},
            "instance_count: must be 1",
            id="sklearn-count",
        ),
        pytest.param(
            {"framework": "xgboost", "framework_version": "1.7-1", "py_version": "py311"},
            'py_version: "py311" is not available for xgboost (use py3)',
            id="xgb-py",
        ),
        pytest.param(
            {"framework": "huggingface", "transformers_version": "4.28.1", "py_version": "py310"},
            "exactly one of pytorch_version or tensorflow_version",
            id="hf-base",
        ),
        pytest.param(
            {
                "framework": "huggingface",
                "transformers_version": "4.28",
                "pytorch_version": "2.0.0",
                "py_version": "py310",
            },
            "both be full",
            id="hf-lengths",
        ),
        pytest.param(
            {"pytorch_version": "2.0.0"},
            'pytorch_version: applies only to framework = "huggingface"',
            id="base-on-pytorch",
        ),
        pytest.param(
            {"distribution": {"torch_distributed": {"enabled": True}}},
            "runs only on GPU or Trainium instances, not ml.m5.xlarge",
            id="td-cpu",
        ),
        pytest.param(
            {"instance_type": "ml.p4d.24xlarge", "distribution": {"torch_distributed": {"enabled": True}}},
            "on GPU needs a full framework version among 1.13.1",
            id="td-version",
        ),
        pytest.param(
            {"distribution": {"horovod": {"enabled": True}}},
            "distribution.horovod: is not a distribution strategy",
            id="strategy",
        ),
        pytest.param(
            {"distribution": {"parameter_server": {"enabled": True}}},
            "distribution.parameter_server: is not available for pytorch",
            id="ps-pytorch",
        ),
        pytest.param(
            {"distribution": {"mpi": {"enable": True}}},
            "distribution.mpi.enable: unknown option (did you mean `enabled`?)",
            id="mpi-typo",
        ),
        pytest.param(
            {"distribution": {"smdistributed": {"modelparallel": {"enabled": True}}}},
            "supports only `dataparallel`",
            id="smp",
        ),
        pytest.param(
            {
                "instance_type": "ml.p4d.24xlarge",
                "distribution": {"smdistributed": {"dataparallel": {"enabled": True}}},
            },
            "needs a framework version among",
            id="smddp-version",
        ),
        pytest.param(
            {
                "framework": "tensorflow",
                "framework_version": "2.8",
                "py_version": "py39",
                "distribution": {"multi_worker_mirrored_strategy": {"enabled": True}},
            },
            "needs tensorflow 2.9 or later",
            id="mwms-old",
        ),
        pytest.param(
            {
                "framework": "sklearn",
                "framework_version": "1.2-1",
                "py_version": "py3",
                "distribution": {"mpi": {"enabled": True}},
            },
            "sklearn does not train distributed",
            id="sklearn-dist",
        ),
        pytest.param(
            {"transformers_version": "4.28", "framework_version": "2.5"},
            "framework_version: sets the same field as `transformers_version`; keep one of the two spellings",
            id="alias-twice",
        ),
        pytest.param({"request_overrides": []}, "request_overrides: must be a table", id="overrides-table"),
    ],
)
def test_bad_manifests_name_the_field(table: dict[str, Any], message: str) -> None:
    with pytest.raises(SpecError) as caught:
        resolve(table)
    assert message in str(caught.value)
    assert "\n" not in str(caught.value)
    assert str(caught.value).startswith("sagepush.toml: ")


def test_a_model_channel_and_a_code_channel_are_the_users_own_when_sagepush_delivers_neither() -> None:
    resolved = resolve({"channels": {"model": "s3://bkt/m/", "code": "s3://bkt/c/"}})
    assert [channel.name for channel in resolved.channels] == ["model", "code"]


def test_missing_required_field_says_where_to_set_it() -> None:
    with pytest.raises(SpecError, match=r"^defaults: role: is required \(set it in the manifest or as a deployment"):
        resolve_spec(None, Defaults(instance_type="ml.m5.xlarge", output_path="s3://bkt/o", entry_point="t.py"))


def test_framework_or_image_is_required() -> None:
    defaults = Defaults(role=ROLE, instance_type="ml.m5.xlarge", output_path="s3://bkt/o", entry_point="t.py")
    with pytest.raises(SpecError, match="framework: is required unless image_uri or algorithm is set"):
        resolve({}, defaults=defaults)
    assert resolve({"image_uri": "1.dkr.ecr.us-east-1.amazonaws.com/x:1"}, defaults=defaults).framework is None


def test_errors_in_defaults_name_the_defaults() -> None:
    with pytest.raises(SpecError, match=r"^defaults: volume_size: 0 is out of range"):
        resolve({}, defaults=Defaults(**{**_defaults_kwargs(), "volume_size": 0}))


def _defaults_kwargs() -> dict[str, Any]:
    return {name: getattr(DEFAULTS, name) for name in Defaults.__dataclass_fields__}


def test_manifest_overrides_defaults_and_overrides_win() -> None:
    spec = resolve_spec(
        Manifest(source="sagepush.toml", table={"instance_type": "ml.g5.xlarge", "tags": {"team": "vision"}}),
        DEFAULTS,
        overrides={"instance_type": "ml.g5.2xlarge"},
    )
    assert spec.instance_type == "ml.g5.2xlarge"
    assert spec.tags == {"owner": "ml-platform", "team": "vision"}
    assert spec.where("instance_type") == "sagepush.toml: instance_type"
    assert spec.where("volume_size") == "defaults: volume_size"


def test_spot_without_max_wait_waits_as_long_as_it_may_run() -> None:
    assert resolve({"use_spot_instances": True, "max_run": "3h"}).max_wait == 10800


def test_huggingface_takes_transformers_version() -> None:
    spec = resolve(
        {
            "framework": "huggingface",
            "transformers_version": "4.28.1",
            "pytorch_version": "2.0.0",
            "py_version": "py310",
        }
    )
    assert (spec.framework_version, spec.transformers_version, spec.pytorch_version) == ("4.28.1", "4.28.1", "2.0.0")


def test_channel_tables_and_aliases() -> None:
    spec = resolve(
        {
            "channels": {
                "train": {"s3_data": "s3://bkt/t", "record_wrapper_type": "RecordIO", "shuffle_seed": 7},
                "test": "s3://bkt/v",
            }
        }
    )
    assert spec.channels == (
        Channel(name="train", s3_uri="s3://bkt/t", record_wrapping="RecordIO", shuffle_seed=7),
        Channel(name="test", s3_uri="s3://bkt/v"),
    )


def test_spec_round_trips_through_its_manifest_table() -> None:
    spec = resolve(
        {
            "max_run": "90m",
            "use_spot_instances": True,
            "checkpoint_s3_uri": "s3://bkt/ckpt",
            "channels": {"train": {"s3_uri": "s3://bkt/t", "input_mode": "Pipe", "attribute_names": ["a", "b"]}},
            "metric_definitions": [{"Name": "loss", "Regex": "loss=(.*)"}],
            "distribution": {"mpi": {"enabled": True, "processes_per_host": 2}},
            "instance_type": "ml.g5.12xlarge",
            "environment": {"A": "1"},
            "request_overrides": {"ResourceConfig": {"KeepAlivePeriodInSeconds": 60}},
            "subnets": ["subnet-1"],
            "security_group_ids": ["sg-1"],
            "model_dir": False,
        }
    )
    table = spec_to_manifest(spec)
    assert resolve_spec(Manifest(source="spec", table=table), Defaults()) == spec
    assert set(table) <= set(MANIFEST_KEYS)


def test_every_training_spec_field_but_bookkeeping_is_a_manifest_key() -> None:
    fields = set(TrainingSpec.__dataclass_fields__) - {"source", "declared", "requirements"}
    assert fields | {"transformers_version"} == set(MANIFEST_KEYS)


@pytest.mark.parametrize(
    ("files", "script", "message"),
    [
        ({"sagepush.toml": b"max_run = "}, None, "sagepush.toml: is not valid TOML"),
        ({"sagepush.toml": b"\xff\xfe"}, None, "sagepush.toml: is not UTF-8 text"),
        ({"pyproject.toml": b"[tool]\nsagepush = 3\n"}, None, "pyproject.toml: [tool.sagepush]: must be a table"),
        ({"t.py": b"# /// script\n# x = \n# ///\n"}, "t.py", "t.py: the `# /// script` block is not valid TOML"),
        (
            {"t.py": b"# /// script\n# a = 1\n# ///\nx = 1\n# /// script\n# b = 1\n# ///\n"},
            "t.py",
            "t.py: more than one `# /// script` block",
        ),
        ({"t.py": b'# /// script\n# dependencies = "numpy"\n# ///\n'}, "t.py", "t.py: dependencies: must be a list"),
    ],
)
def test_unreadable_manifests_name_the_file(files: dict[str, bytes], script: str | None, message: str) -> None:
    with pytest.raises(SpecError) as caught:
        find_manifest(files, script=script)
    assert str(caught.value).startswith(message)
