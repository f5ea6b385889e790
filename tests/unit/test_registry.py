"""The manifest's `[model]` and `[endpoint]`, the approval gate, and the registry and hosting requests."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from sagepush import registry
from sagepush.config import JobDefaultSettings
from sagepush.errors import InputError
from sagepush.events import direct_start
from sagepush.policy import Policy
from sagepush.registry import Condition, EndpointSettings, RegistryError, Verdict
from sagepush.spec import Defaults, Manifest, SpecError, find_manifest, resolve_spec
from sagepush.starting import prepare_direct_start
from sagepush_cli.project import render_jobs

METRICS = [{"Name": "validation:accuracy", "Regex": "acc=(.*)"}, {"Name": "validation:loss", "Regex": "loss=(.*)"}]
GOOD: dict[str, Any] = {
    "metric_definitions": METRICS,
    "model": {"approve_if": ["validation:accuracy >= 0.9", "validation:loss < 0.2"]},
    "endpoint": {"instance_type": "ml.m5.large", "alarms": ["iris-5xx"]},
}
SOURCE = {"commit": "0123abc", "branch": "feature/x", "repo": "example/iris"}


def read(table: dict[str, Any], project: str = "iris") -> registry.ModelSettings | None:
    return registry.read_model(table, project=project, origin="sagepush.toml")


def with_model(**model: Any) -> dict[str, Any]:
    return {"metric_definitions": METRICS, "model": model}


def with_endpoint(**endpoint: Any) -> dict[str, Any]:
    return {"metric_definitions": METRICS, "model": {}, "endpoint": endpoint}


# ---- reading the model and endpoint tables


def test_reads_the_model_and_its_endpoint_with_defaults() -> None:
    settings = read(GOOD)

    assert settings is not None
    assert settings.register == "best" and settings.group == "iris"
    assert [c.text for c in settings.approve_if] == ["validation:accuracy >= 0.9", "validation:loss < 0.2"]
    assert settings.content_types == settings.response_types == ("text/csv", "application/json")
    assert settings.endpoint == EndpointSettings(name="iris", instance_type="ml.m5.large", alarms=("iris-5xx",))
    assert not settings.endpoint.serverless


def test_no_model_or_register_false_registers_nothing() -> None:
    assert read({"metric_definitions": METRICS}) is None
    assert read(with_model(register=False)) is None
    all_jobs = read(with_model(register="all", group="shared"))
    assert all_jobs is not None and all_jobs.register == "all" and all_jobs.group == "shared"


def test_serverless_endpoint_defaults_its_concurrency() -> None:
    settings = read(with_endpoint(name="iris-live", memory_size_in_mb=3072))
    assert settings is not None and settings.endpoint is not None
    assert settings.endpoint.serverless and settings.endpoint.max_concurrency == registry.DEFAULT_MAX_CONCURRENCY


@pytest.mark.parametrize(
    ("table", "where", "message"),
    [
        (with_model(approve_if=["validation:acc >= 0.9"]), "model.approve_if[0]", "defined: validation:accuracy, "),
        (
            {"model": {"approve_if": ["accuracy > 1"]}},
            "model.approve_if[0]",
            "the manifest defines no metric_definitions",
        ),
        (with_model(approve_if=["validation:loss < 0.2", "validation:loss"]), "model.approve_if[1]", "not a condition"),
        (with_model(approve_if=["validation:loss =< 0.2"]), "model.approve_if[0]", "not a condition"),
        (with_model(approve_if=["validation:loss < low"]), "model.approve_if[0]", "not a finite number"),
        (with_model(approve_if=["validation:loss < nan"]), "model.approve_if[0]", "not a finite number"),
        (with_model(approve_if="validation:loss < 0.2"), "model.approve_if", "must be a list"),
        (with_model(approve_if=[0.2]), "model.approve_if[0]", "must be a string"),
        (with_model(registr=True), "model.registr", "unknown key (did you mean `register`?)"),
        (with_model(register="yes"), "model.register", 'must be true, false or "all"'),
        (with_model(group="iris_models"), "model.group", "is not a SageMaker name"),
        (with_model(group="g" * 64), "model.group", "is not a SageMaker name"),
        (with_model(content_types="text/csv"), "model.content_types", "must be a list of strings"),
        (with_model(response_types=["csv"]), "model.response_types[0]", "is not a MIME type"),
        (with_model(inference_entry_point="../serve.py"), "model.inference_entry_point", "relative"),
        ({"model": []}, "model", "must be a table"),
        (with_endpoint(instance_type="ml.m5.large", memory_size_in_mb=2048), "endpoint", "sets both"),
        (with_endpoint(name="iris"), "endpoint", "sets neither"),
        (with_endpoint(memory_size_in_mb=1000), "endpoint.memory_size_in_mb", "is not one of 1024, 2048"),
        (with_endpoint(memory_size_in_mb=7168), "endpoint.memory_size_in_mb", "is not one of 1024, 2048"),
        (with_endpoint(memory_size_in_mb=2048, max_concurrency=0), "endpoint.max_concurrency", "between 1 and 200"),
        (with_endpoint(memory_size_in_mb=2048, max_concurrency=201), "endpoint.max_concurrency", "between 1 and 200"),
        (with_endpoint(memory_size_in_mb="2GB"), "endpoint.memory_size_in_mb", "must be an integer"),
        (with_endpoint(memory_size_in_mb=2048, alarms=["a"]), "endpoint.alarms", "does not apply"),
        (with_endpoint(instance_type="ml.m5.large", max_concurrency=5), "endpoint.max_concurrency", "serverless"),
        (with_endpoint(instance_type="ml.m5.lrage"), "endpoint.instance_type", "did you mean `ml.m5.large`?"),
        (with_endpoint(instance_type="ml.m5.large", initial_instance_count=0), "endpoint.initial_instance_count", ""),
        (
            with_endpoint(instance_type="ml.m5.large", initial_instance_count=True),
            "endpoint.initial_instance_count",
            "must be an integer",
        ),
        (with_endpoint(instance_type="ml.m5.large", alarms=["a b"]), "endpoint.alarms[0]", "allows letters"),
        (with_endpoint(instance_type="ml.m5.large", alarms=[f"a{i}" for i in range(11)]), "endpoint.alarms", "10"),
        (with_endpoint(instance_type="ml.m5.large", name="-iris"), "endpoint.name", "is not a SageMaker name"),
        (with_endpoint(instance_type="ml.m5.large", nmae="x"), "endpoint.nmae", "unknown key (did you mean `name`?)"),
        ({"endpoint": {"instance_type": "ml.m5.large"}}, "endpoint", "add [model] with register = true"),
        (
            {"model": {"register": False}, "endpoint": {"instance_type": "ml.m5.large"}},
            "endpoint",
            "model.register is false",
        ),
    ],
    ids=lambda value: value if isinstance(value, str) else None,
)
def test_every_error_names_its_field(table: dict[str, Any], where: str, message: str) -> None:
    with pytest.raises(SpecError) as raised:
        read(table)
    assert raised.value.where == f"sagepush.toml: {where}"
    assert message in raised.value.message


def test_a_project_name_that_is_no_sagemaker_name_asks_for_a_group() -> None:
    with pytest.raises(SpecError, match=r"^sagepush.toml: model.group: the project name .* \(the default\)"):
        read(with_model(), project="iris-")
    assert read(with_model(group="iris"), project="iris-") is not None


def test_model_and_endpoint_tables_are_no_unknown_keys_of_the_training_spec(tmp_path: Path) -> None:
    defaults = Defaults(
        role="arn:aws:iam::123456789012:role/R", instance_type="ml.m5.large", output_path="s3://bucket/output/"
    )
    table = {"framework": "sklearn", "framework_version": "1.2-1", "entry_point": "train.py", **GOOD}
    assert resolve_spec(Manifest(source="sagepush.toml", table=table), defaults).entry_point == "train.py"
    pyproject = (
        b'[tool.sagepush]\nframework = "sklearn"\nframework_version = "1.2-1"\nentry_point = "train.py"\n'
        b"[tool.sagepush.model]\nregister = true\n"
    )
    script = (
        b'# /// script\n# [tool.sagepush]\n# framework = "sklearn"\n# framework_version = "1.2-1"\n'
        b'# [tool.sagepush.model]\n# group = "g"\n# ///\n'
    )
    for files, name in (({"pyproject.toml": pyproject}, None), ({"train.py": script}, "train.py")):
        manifest = find_manifest(files, script=name)
        assert manifest is not None and "model" in manifest.table
        resolve_spec(manifest, defaults)
        assert read(dict(manifest.table)) is not None
    with pytest.raises(SpecError, match="modle: unknown key \\(did you mean `model`\\?\\)"):
        resolve_spec(Manifest(source="sagepush.toml", table={"entry_point": "t.py", "modle": {}}), defaults)


# ---- the gate


@pytest.mark.parametrize(
    ("text", "value", "holds"),
    [
        ("m >= 0.9", 0.9, True),
        ("m >= 0.9", 0.89, False),
        ("m > 0.9", 0.9, False),
        ("m <= 1e-3", 0.001, True),
        ("m < -1", -2.0, True),
        ("m == 3", 3.0, True),
        ("m != 3", 3.0, False),
        ("m != 3", None, False),
        ("m != 3", float("nan"), False),
        ("m>=0.5", 0.7, True),
    ],
)
def test_conditions_hold_as_their_operator_says_and_never_on_a_missing_metric(
    text: str, value: float | None, holds: bool
) -> None:
    assert registry.parse_condition(text, "where").holds(value) is holds


def test_metric_names_may_hold_colons_and_spaces() -> None:
    condition = registry.parse_condition("  train loss:avg   <=  0.5 ", "where")
    assert condition == Condition("train loss:avg", "<=", 0.5, "train loss:avg <= 0.5")


def test_the_gate_approves_only_when_every_condition_holds() -> None:
    settings = read(GOOD)
    assert settings is not None
    passed = registry.gate(settings.approve_if, {"validation:accuracy": 0.95, "validation:loss": 0.1})
    failed = registry.gate(settings.approve_if, {"validation:accuracy": 0.95, "validation:loss": 0.3})
    missing = registry.gate(settings.approve_if, {"validation:accuracy": 0.95})

    assert registry.approval_status(passed) == "Approved"
    assert registry.approval_status(failed) == registry.approval_status(missing) == "PendingManualApproval"
    assert registry.approval_status(()) == "PendingManualApproval"  # no gate: a person decides
    assert [v.document() for v in missing] == [
        {"condition": "validation:accuracy >= 0.9", "value": 0.95, "holds": True},
        {"condition": "validation:loss < 0.2", "value": None, "holds": False},
    ]
    assert registry.gate_description(failed) == (
        "approve_if: validation:accuracy >= 0.9 holds (0.95); validation:loss < 0.2 fails (0.3)"
    )


# ---- documents


@pytest.mark.parametrize(
    "endpoint",
    [
        EndpointSettings(name="iris", instance_type="ml.m5.large", initial_instance_count=2, alarms=("a", "b")),
        EndpointSettings(name="iris", memory_size_in_mb=2048, max_concurrency=5),
    ],
    ids=["instances", "serverless"],
)
def test_endpoint_settings_round_trip_through_the_package(endpoint: EndpointSettings) -> None:
    settings = registry.ModelSettings(register="best", group="iris", endpoint=endpoint)
    package = package_request(settings)
    assert registry.endpoint_of_package(package) == endpoint
    assert registry.endpoint_of_package({"CustomerMetadataProperties": {}}) is None


def package_request(settings: registry.ModelSettings, **changes: Any) -> dict[str, Any]:
    verdicts = registry.gate(settings.approve_if, {"validation:accuracy": 0.95, "validation:loss": 0.1})
    arguments: dict[str, Any] = {
        "settings": settings,
        "image": "683313688378.dkr.ecr.us-east-1.amazonaws.com/sagemaker-scikit-learn:1.2-1-cpu-py3",
        "model_data_url": "s3://sagepush-artifacts/output/iris/job/output/model.tar.gz",
        "environment": registry.inference_environment(
            program="train.py", submit_directory="s3://sagepush-artifacts/code/iris/d/sourcedir.tar.gz", region="r"
        ),
        "approval_status": registry.approval_status(verdicts),
        "metrics": {"validation:accuracy": 0.95, "validation:loss": 0.1},
        "verdicts": verdicts,
        "job_name": "iris-0123abcd-456789",
        "project": "iris",
        "source": SOURCE,
        "tags": {"sagepush:project": "iris"},
    }
    return registry.model_package_request(**(arguments | changes))


def test_the_package_carries_lineage_metrics_and_the_endpoint_in_values_sagemaker_accepts() -> None:
    settings = read(GOOD)
    assert settings is not None
    package = package_request(settings)

    assert package["ModelApprovalStatus"] == "Approved" and package["ClientToken"] == "iris-0123abcd-456789"
    assert package["MetadataProperties"] == {
        "CommitId": "0123abc",
        "Repository": "example/iris",
        "GeneratedBy": "iris-0123abcd-456789",
    }
    assert package["CustomerMetadataProperties"] == {
        "sagepush:project": "iris",
        "sagepush:job": "iris-0123abcd-456789",
        "sagepush:commit": "0123abc",
        "sagepush:branch": "feature/x",
        "sagepush:repository": "example/iris",
        "sagepush:endpoint": "iris",
        "sagepush:endpoint:instance_type": "ml.m5.large",
        "sagepush:endpoint:initial_instance_count": "1",
        "sagepush:endpoint:alarms": "iris-5xx",
        "metric:validation:accuracy": "0.95",
        "metric:validation:loss": "0.1",
    }
    assert registry.metrics_of_package(package) == {"validation:accuracy": 0.95, "validation:loss": 0.1}
    assert package["InferenceSpecification"]["SupportedRealtimeInferenceInstanceTypes"] == ["ml.m5.large"]
    assert package["ModelPackageDescription"].startswith("approve_if: validation:accuracy >= 0.9 holds")
    assert "ModelMetrics" not in package  # no statistics document named


def test_the_package_points_its_model_quality_statistics_at_the_metrics_document() -> None:
    settings = read(GOOD)
    assert settings is not None
    uri = registry.metrics_uri("s3://sagepush-artifacts/output/iris/job/output/model.tar.gz")
    assert uri == "s3://sagepush-artifacts/output/iris/job/output/model-metrics.json"
    package = package_request(settings, metrics_uri=uri)
    assert package["ModelMetrics"] == {
        "ModelQuality": {"Statistics": {"ContentType": "application/json", "S3Uri": uri}},
        "Bias": {},
        "Explainability": {},
    }
    with pytest.raises(RegistryError, match=r"CreateModelPackage\.ModelMetrics\.ModelQuality\.Statistics\.S3Uri"):
        package_request(settings, metrics_uri="metrics.json")


@pytest.mark.parametrize("model_data", ["metrics.json", "s3://bucket", "s3://bucket/", "s3:///key", "https://x/y"])
def test_a_metrics_document_goes_only_next_to_an_s3_object(model_data: str) -> None:
    with pytest.raises(RegistryError, match="is not an S3 object's address"):
        registry.metrics_uri(model_data)
    assert registry.metrics_uri("s3://bucket/model.tar.gz") == "s3://bucket/model-metrics.json"


def test_the_metrics_document_says_what_it_holds_and_is_the_same_bytes_for_the_same_job() -> None:
    metrics = {"validation:loss": 0.1, "validation:accuracy": 0.95, "odd": float("nan"), "big": float("inf")}
    body = registry.metrics_statistics("iris-0123abcd-456789", metrics)
    assert json.loads(body) == {
        "sagepush": {
            "job_name": "iris-0123abcd-456789",
            "metrics": {
                "validation:loss": {"value": 0.1},
                "validation:accuracy": {"value": 0.95},
                "odd": {"value": "NaN"},
                "big": {"value": "Infinity"},
            },
        }
    }
    reordered = dict(reversed(list(metrics.items())))
    assert registry.metrics_statistics("iris-0123abcd-456789", reordered) == body


def test_metadata_is_cleaned_and_capped_as_sagemaker_requires() -> None:
    settings = registry.ModelSettings(register="best", group="iris")
    metrics = {f"m{i}": float(i) for i in range(60)} | {"acc(%)": 1.0}
    package = package_request(settings, metrics=metrics, source={"branch": 'fix "quotes", {braces}'})
    properties = package["CustomerMetadataProperties"]
    assert len(properties) == 50 and "metric:acc(%)" not in properties
    assert properties["sagepush:branch"] == "fix _quotes__ _braces_"


def test_a_long_job_name_makes_a_client_token_that_fits() -> None:
    long_name = "a-very-long-project-name-indeed-0123abcd-456789"
    token = registry.client_token(long_name)
    assert len(token) == 36 and token != registry.client_token(long_name + "x")
    assert registry.client_token("short") == "short"


def test_versioned_names_fit_sagemakers_63_characters() -> None:
    assert registry.model_name("iris", 3) == "iris-v3"
    assert registry.endpoint_config_name("iris-live", 12) == "iris-live-v12"
    long = "g" * 63
    named = registry.model_name(long, 12345)
    assert len(named) == 63 and named.endswith("-v12345")
    assert named != registry.model_name("g" * 62 + "h", 12345)
    registry.validate("CreateModel", {"ModelName": named})


# ---- the requests, checked against botocore's model


def test_hosting_requests_have_the_sdks_shape() -> None:
    instances = EndpointSettings(name="iris", instance_type="ml.m5.large", alarms=("iris-5xx",))
    serverless = EndpointSettings(name="iris", memory_size_in_mb=2048, max_concurrency=5)
    config = registry.endpoint_config_request(name="iris-v2", model_name="iris-v2", endpoint=serverless, tags={})
    assert config["ProductionVariants"] == [
        {
            "ModelName": "iris-v2",
            "VariantName": "AllTraffic",
            "InitialVariantWeight": 1,
            "ServerlessConfig": {"MemorySizeInMB": 2048, "MaxConcurrency": 5},
        }
    ]
    assert registry.update_endpoint_request(endpoint=instances, config_name="iris-v2")["DeploymentConfig"] == {
        "BlueGreenUpdatePolicy": {
            "TrafficRoutingConfiguration": {"Type": "ALL_AT_ONCE", "WaitIntervalInSeconds": 300},
        },
        "AutoRollbackConfiguration": {"Alarms": [{"AlarmName": "iris-5xx"}]},
    }
    assert registry.update_endpoint_request(endpoint=serverless, config_name="iris-v2") == {
        "EndpointName": "iris",
        "EndpointConfigName": "iris-v2",
    }
    assert registry.create_endpoint_request(endpoint=instances, config_name="iris-v2", tags={"k": "v"}) == {
        "EndpointName": "iris",
        "EndpointConfigName": "iris-v2",
        "Tags": [{"Key": "k", "Value": "v"}],
    }
    group = registry.model_package_group_request(group="iris", project="iris", tags={})
    assert group["ModelPackageGroupName"] == "iris"


@pytest.mark.parametrize(
    ("operation", "request_", "where"),
    [
        ("CreateModel", {"ModelName": "iris_v1"}, "CreateModel.ModelName"),
        ("CreateModel", {"ModelName": "m" * 64}, "CreateModel.ModelName"),
        ("CreateModel", {}, "CreateModel"),
        ("CreateModel", {"ModelName": "m", "Unknown": 1}, "CreateModel"),
        (
            "CreateModel",
            {"ModelName": "m", "PrimaryContainer": {"Image": "i", "Environment": {"1BAD": "x"}}},
            "CreateModel.PrimaryContainer.Environment.1BAD",
        ),
        (
            "CreateModelPackage",
            {"ModelPackageGroupName": "g", "CustomerMetadataProperties": {"k": '{"json": true}'}},
            "CreateModelPackage.CustomerMetadataProperties.k",
        ),
        (
            "CreateModelPackage",
            {"ModelPackageGroupName": "g", "ClientToken": "t" * 37},
            "CreateModelPackage.ClientToken",
        ),
        ("CreateModelPackage", {"ModelApprovalStatus": "Maybe"}, "CreateModelPackage.ModelApprovalStatus"),
        (
            "CreateEndpointConfig",
            {
                "EndpointConfigName": "c",
                "ProductionVariants": [
                    {"VariantName": "v", "ServerlessConfig": {"MemorySizeInMB": 8192, "MaxConcurrency": 1}}
                ],
            },
            "CreateEndpointConfig.ProductionVariants[0].ServerlessConfig.MemorySizeInMB",
        ),
        (
            "UpdateEndpoint",
            {
                "EndpointName": "e",
                "EndpointConfigName": "c",
                "DeploymentConfig": {"AutoRollbackConfiguration": {"Alarms": [{"AlarmName": "a"}] * 11}},
            },
            "UpdateEndpoint.DeploymentConfig.AutoRollbackConfiguration.Alarms",
        ),
        (
            "CreateModelPackageGroup",
            {"ModelPackageGroupName": "g", "Tags": [{"Key": "k", "Value": "{x}"}]},
            "CreateModelPackageGroup.Tags[0].Value",
        ),
        ("CreateEndpoint", {"EndpointName": "e-", "EndpointConfigName": "c"}, "CreateEndpoint.EndpointName"),
    ],
)
def test_a_request_sagemaker_would_refuse_is_named_by_operation_and_path(
    operation: str, request_: dict[str, Any], where: str
) -> None:
    with pytest.raises(RegistryError) as raised:
        registry.validate(operation, request_)
    assert raised.value.where == where


def test_the_packaged_cut_model_is_the_locked_botocores_and_validates_as_the_whole(monkeypatch: Any) -> None:
    # scripts/cut_botocore_model.py writes it; after a botocore upgrade this fails until it is run again.
    import botocore
    from botocore.loaders import create_loader
    from botocore.model import ServiceModel
    from botocore.validate import ParamValidator

    shipped = json.loads(registry.PACKAGED_MODEL.read_text())
    whole = create_loader().load_service_model("sagemaker", "service-2")
    assert shipped["botocore"] == botocore.__version__
    assert shipped["model"] == registry.cut_hosting_model(whole)
    assert set(shipped["model"]["operations"]) == set(registry.OPERATIONS)
    assert len(registry.PACKAGED_MODEL.read_bytes()) < 100_000
    settings = read(GOOD)
    assert settings is not None
    requests = {"CreateModelPackage": package_request(settings), "CreateModel": {"ModelName": 5}}
    for operation, built in requests.items():
        shapes = [
            ServiceModel(m, "sagemaker").operation_model(operation).input_shape for m in (whole, shipped["model"])
        ]
        reports = [ParamValidator().validate(built, shape) for shape in shapes if shape is not None]
        assert reports[0].generate_report() == reports[1].generate_report()
    registry.hosting_model.cache_clear()
    monkeypatch.setattr("botocore.loaders.create_loader", lambda: pytest.fail("the packaged model was not used"))
    assert registry.hosting_model() == shipped["model"]


# ---- refused where jobs are resolved: at upload (StageFunction's plan and a direct start) and at render


DIRECT_SETTINGS = JobDefaultSettings(
    aws_region="us-east-1",
    sagemaker_role_arn="arn:aws:iam::123456789012:role/SagepushTraining",
    output_path="s3://sagepush-artifacts-example/output/",
    output_kms_key=None,
    default_instance_type="ml.m5.large",
    default_volume_size=30,
    default_max_run=3600,
    default_tags={},
    job_policy=Policy(),
)
SAMPLE: dict[str, Any] = json.loads((Path(__file__).resolve().parents[2] / "events" / "direct-start.json").read_text())


def test_a_direct_start_with_a_malformed_model_is_refused_naming_the_field() -> None:
    metric = {"metric_definitions": [{"Name": "validation:accuracy", "Regex": "acc=(.*)"}]}
    good = {**SAMPLE, "spec": {**SAMPLE["spec"], **metric, "model": {"approve_if": ["validation:accuracy > 0.8"]}}}
    document = prepare_direct_start(direct_start(good), execution_name="e-1", settings=DIRECT_SETTINGS)
    assert document["spec"]["model"] == {"approve_if": ["validation:accuracy > 0.8"]}
    bad = {**SAMPLE, "spec": {**SAMPLE["spec"], **metric, "model": {"approve_if": ["validation:auc > 0.8"]}}}
    with pytest.raises(InputError) as raised:
        prepare_direct_start(direct_start(bad), execution_name="e-1", settings=DIRECT_SETTINGS)
    assert raised.value.where == "input: model.approve_if[0]"


MANIFEST = 'framework = "sklearn"\nframework_version = "1.2-1"\nentry_point = "train.py"\n'


def test_render_refuses_a_malformed_model_naming_the_field(tmp_path: Path) -> None:
    (tmp_path / "train.py").write_text("print('training')\n")
    (tmp_path / "sagepush.toml").write_text(
        MANIFEST + '[model]\ngroup = "iris"\n[endpoint]\ninstance_type = "ml.m5.large"\n'
    )
    assert len(render_jobs(tmp_path, region="us-east-1", project="iris")) == 1
    (tmp_path / "sagepush.toml").write_text(MANIFEST + "[endpoint]\nmemory_size_in_mb = 1000\n[model]\n")
    with pytest.raises(SpecError, match=r"^sagepush.toml: endpoint.memory_size_in_mb: 1000 is not one of"):
        render_jobs(tmp_path, region="us-east-1", project="iris")


def test_render_names_the_matrix_job_whose_model_is_malformed(tmp_path: Path) -> None:
    (tmp_path / "train.py").write_text("print('training')\n")
    strategy = '[strategy.matrix]\nmetric_definitions = [[{ Name = "a", Regex = "a=(.*)" }], []]\n'
    (tmp_path / "sagepush.toml").write_text(MANIFEST + '[model]\napprove_if = ["a > 1"]\n' + strategy)
    with pytest.raises(SpecError) as raised:
        render_jobs(tmp_path, region="us-east-1", project="iris")
    assert raised.value.where.startswith("sagepush.toml (matrix job 2: ")
    assert raised.value.where.endswith(": model.approve_if[0]")


def test_verdict_document_is_json() -> None:
    verdict = Verdict(Condition("m", ">", 1.0, "m > 1"), 2.0, True)
    assert json.loads(json.dumps(verdict.document())) == {"condition": "m > 1", "value": 2.0, "holds": True}


def test_a_tensorflow_model_gets_no_script_mode_environment_as_the_sdk_s_tensorflow_model() -> None:
    def environment(framework: str) -> dict[str, str]:
        return registry.inference_environment(
            program="inference.py", submit_directory="/opt/ml/model/code", region="eu-west-1", framework=framework
        )

    assert environment("tensorflow") == {}
    assert environment("pytorch") == {
        "SAGEMAKER_PROGRAM": "inference.py",
        "SAGEMAKER_SUBMIT_DIRECTORY": "/opt/ml/model/code",
        "SAGEMAKER_CONTAINER_LOG_LEVEL": "20",
        "SAGEMAKER_REGION": "eu-west-1",
    }
