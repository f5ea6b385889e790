"""The registry's requests are what the SageMaker Python SDK v2 sends for the same framework model: `register()`
(CreateModelPackage) and `deploy()` (CreateModel, CreateEndpointConfig, CreateEndpoint).

Both sides get the same image (the SDK's inference image), model data, staged code, names and the address of the
job's metrics document (the model quality statistics, `register(model_metrics=…)`). Where sagepush deliberately
differs, the difference is named below and everything else is compared exactly.
"""

from __future__ import annotations

import hashlib
import io
import json
import tarfile
from typing import TYPE_CHECKING, Any

import boto3
import pytest

from sagepush import registry, repack
from tests.reference.sdk import run_sdk_script

if TYPE_CHECKING:
    from pathlib import Path

ROLE = "arn:aws:iam::123456789012:role/SagepushModel"
PROJECT = "iris"
JOB = "iris-0123abcd-456789"
SOURCE = {"commit": "0123456789abcdef", "branch": "main", "repo": "example/iris"}
TAGS = {"sagepush:project": PROJECT, "sagepush:job": JOB}
METRICS = {"validation:accuracy": 0.95, "validation:loss": 0.12}
METRIC_DEFINITIONS = [
    {"Name": "validation:accuracy", "Regex": "accuracy=([0-9.]+)"},
    {"Name": "validation:loss", "Regex": "loss=([0-9.]+)"},
]
CODE_LOCATION = "s3://sagepush-artifacts/models/iris"
# What sagepush adds to the SDK's CreateModelPackage: a ClientToken (a retried registration creates nothing twice) and
# the lineage tags (`register()` takes no tags). The package's metadata and description are passed to the SDK as
# sagepush builds them, so they are compared as the SDK encodes them.
ADDED_TO_PACKAGE = frozenset({"ClientToken", "Tags"})

CASES: dict[str, dict[str, Any]] = {
    "sklearn-instances": {
        "framework": "sklearn",
        "framework_version": "1.2-1",
        "py_version": "py3",
        "region": "us-east-1",
        "model": {"approve_if": ["validation:accuracy >= 0.9"]},
        "endpoint": {"instance_type": "ml.m5.large"},
    },
    "sklearn-inference-entry-point-serverless": {
        "framework": "sklearn",
        "framework_version": "1.2-1",
        "py_version": "py3",
        "region": "eu-central-1",
        "model": {
            "inference_entry_point": "serve.py",
            "content_types": ["text/csv"],
            "response_types": ["application/json"],
            "approve_if": ["validation:accuracy >= 0.99", "validation:loss < 0.2"],
        },
        "endpoint": {"name": "iris-live", "memory_size_in_mb": 2048, "max_concurrency": 10},
    },
    "xgboost-instances": {
        "framework": "xgboost",
        "framework_version": "1.7-1",
        "py_version": "py3",
        "region": "us-west-2",
        "model": {"group": "iris-xgb"},
        "endpoint": {"instance_type": "ml.c5.xlarge", "initial_instance_count": 2},
    },
    "xgboost-inference-entry-point": {
        "framework": "xgboost",
        "framework_version": "1.7-1",
        "py_version": "py3",
        "region": "us-east-1",
        "model": {"inference_entry_point": "inference/serve.py"},
        "endpoint": {"instance_type": "ml.m5.large"},
        "metrics": {},  # a job that reported no metrics: no metrics document, no ModelMetrics
    },
    "pytorch-instances": {
        "framework": "pytorch",
        "framework_version": "2.5",
        "py_version": "py311",
        "region": "us-east-1",
        "model": {"approve_if": ["validation:loss <= 0.1"]},
        "endpoint": {"instance_type": "ml.g5.xlarge"},
    },
    "pytorch-inference-entry-point-serverless": {
        "framework": "pytorch",
        "framework_version": "2.5",
        "py_version": "py311",
        "region": "us-east-1",
        "model": {"inference_entry_point": "serve.py"},
        "endpoint": {"memory_size_in_mb": 4096},
    },
    "tensorflow-instances": {
        "framework": "tensorflow",
        "framework_version": "2.16",
        "py_version": "py310",
        "region": "eu-west-1",
        "model": {"inference_entry_point": "inference.py"},
        "endpoint": {"instance_type": "ml.c5.xlarge"},
    },
}


def _settings(case: dict[str, Any]) -> registry.ModelSettings:
    table = {"metric_definitions": METRIC_DEFINITIONS, "model": case["model"], "endpoint": case["endpoint"]}
    settings = registry.read_model(table, project=PROJECT, origin="sagepush.toml")
    assert settings is not None and settings.endpoint is not None
    return settings


def _code_uri(case_id: str) -> str:
    return f"s3://sagepush-artifacts/code/iris/{case_id}/sourcedir.tar.gz"


def _model_data(case_id: str) -> str:
    return f"s3://sagepush-artifacts/output/iris/{case_id}/output/model.tar.gz"


def _metrics(case: dict[str, Any]) -> dict[str, float]:
    metrics: dict[str, float] = case.get("metrics", METRICS)
    return metrics


def _metrics_uri(case_id: str) -> str | None:
    """Where the job's metrics document is, as `hosting.register_job` writes it: next to the job's own model.tar.gz
    (also for a PyTorch model, whose package names the SDK's repacked model)."""
    return registry.metrics_uri(_model_data(case_id)) if _metrics(CASES[case_id]) else None


def _sdk_case(case_id: str, case: dict[str, Any]) -> dict[str, Any]:
    settings = _settings(case)
    endpoint = settings.endpoint
    assert endpoint is not None
    verdicts = registry.gate(settings.approve_if, _metrics(case))
    deployed: dict[str, Any] = {"name": endpoint.name}
    if endpoint.serverless:
        deployed |= {"memory_size_in_mb": endpoint.memory_size_in_mb, "max_concurrency": endpoint.max_concurrency}
    else:
        deployed |= {"instance_type": endpoint.instance_type, "initial_instance_count": endpoint.initial_instance_count}
    package_metadata = {"CommitId": SOURCE["commit"], "Repository": SOURCE["repo"], "GeneratedBy": JOB}
    return {
        "id": case_id,
        "region": case["region"],
        "framework": case["framework"],
        "framework_version": case["framework_version"],
        "py_version": case["py_version"],
        "entry_point": settings.inference_entry_point or "train.py",
        "code_uri": _code_uri(case_id),
        "code_location": CODE_LOCATION,
        "model_data": _model_data(case_id),
        "role": ROLE,
        "model_name": registry.model_name(settings.group, 1),
        "group": settings.group,
        "content_types": list(settings.content_types),
        "response_types": list(settings.response_types),
        "approval_status": registry.approval_status(verdicts),
        "description": registry.gate_description(verdicts) if verdicts else None,
        "metadata": package_metadata,
        "customer_metadata": registry.customer_metadata(
            project=PROJECT, job_name=JOB, source=SOURCE, endpoint=endpoint, metrics=_metrics(case)
        ),
        "metrics_uri": _metrics_uri(case_id),
        "endpoint": deployed,
        "tags": [{"Key": key, "Value": value} for key, value in TAGS.items()],
    }


@pytest.fixture(scope="module")
def sdk() -> dict[str, dict[str, Any]]:
    answers: dict[str, dict[str, Any]] = run_sdk_script(
        "model_reference.py", [_sdk_case(case_id, case) for case_id, case in CASES.items()]
    )
    return {case_id: _at_our_repacked_address(case_id, answer) for case_id, answer in answers.items()}


def _at_our_repacked_address(case_id: str, answer: dict[str, Any]) -> dict[str, Any]:
    """The SDK's answer with its repacked model's address (`<code_location>/<model name>/model.tar.gz`, a key per
    model name) replaced by sagepush's, the one deliberate difference: sagepush writes it next to the job's
    model.tar.gz, a key per job, so the repack is done at registration, once, and the package names it. Which
    frameworks are repacked, the environment that points into the model and every other field are compared."""
    case = CASES[case_id]
    if not repack.repacked_by_the_sdk(case["framework"], case["framework_version"]) or "error" in answer:
        return answer
    sdk_address = f"{CODE_LOCATION}/{registry.model_name(_settings(case).group, 1)}/model.tar.gz"
    text = json.dumps(answer)
    assert sdk_address in text, f"the SDK did not repack {case_id}'s model to {sdk_address}"
    replaced: dict[str, Any] = json.loads(text.replace(sdk_address, repack.repacked_uri(_model_data(case_id))))
    return replaced


def _ours(case_id: str, sdk_answer: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """sagepush's requests for the case, with the SDK's image; a model the SDK repacks with its code (PyTorch) is
    named by sagepush's repacked address (`repack.repacked_uri`) and the code inside it."""
    case = CASES[case_id]
    settings = _settings(case)
    endpoint = settings.endpoint
    assert endpoint is not None
    image = sdk_answer["image"]
    program = settings.inference_entry_point or "train.py"
    model_data, submit_directory = _model_data(case_id), _code_uri(case_id)
    if repack.repacked_by_the_sdk(case["framework"], case["framework_version"]):
        model_data, submit_directory = repack.repacked_uri(model_data), repack.SUBMIT_DIRECTORY
    environment = registry.inference_environment(
        program=program, submit_directory=submit_directory, region=case["region"], framework=case["framework"]
    )
    verdicts = registry.gate(settings.approve_if, _metrics(case))
    model = registry.model_name(settings.group, 1)
    config = registry.endpoint_config_name(endpoint.name, 1)
    return {
        "CreateModelPackage": registry.model_package_request(
            settings=settings,
            image=image,
            model_data_url=model_data,
            environment=environment,
            approval_status=registry.approval_status(verdicts),
            metrics=_metrics(case),
            verdicts=verdicts,
            job_name=JOB,
            project=PROJECT,
            source=SOURCE,
            tags=TAGS,
            framework=case["framework"],
            framework_version=case["framework_version"],
            metrics_uri=_metrics_uri(case_id),
        ),
        "CreateModel": registry.model_request(
            name=model,
            image=image,
            model_data_url=model_data,
            environment=environment,
            role_arn=ROLE,
            tags=TAGS,
        ),
        "CreateEndpointConfig": registry.endpoint_config_request(
            name=config, model_name=model, endpoint=endpoint, tags=TAGS
        ),
        "CreateEndpoint": registry.create_endpoint_request(endpoint=endpoint, config_name=config, tags=TAGS),
    }


@pytest.mark.parametrize("case_id", list(CASES))
def test_model_package_request_matches_the_sdk(case_id: str, sdk: dict[str, dict[str, Any]]) -> None:
    answer = sdk[case_id]
    assert "error" not in answer, answer.get("error")
    ours = _ours(case_id, answer)["CreateModelPackage"]
    assert ours["ClientToken"] == JOB
    assert ours["Tags"] == [{"Key": key, "Value": value} for key, value in TAGS.items()]
    assert {k: v for k, v in ours.items() if k not in ADDED_TO_PACKAGE} == answer["CreateModelPackage"]
    assert ("ModelMetrics" in answer["CreateModelPackage"]) == bool(_metrics(CASES[case_id]))


@pytest.mark.parametrize("case_id", list(CASES))
def test_model_request_matches_the_sdk(case_id: str, sdk: dict[str, dict[str, Any]]) -> None:
    answer = sdk[case_id]
    assert "error" not in answer, answer.get("error")
    assert _ours(case_id, answer)["CreateModel"] == answer["CreateModel"]


@pytest.mark.parametrize("case_id", list(CASES))
def test_endpoint_requests_match_the_sdk_but_for_the_versioned_config(
    case_id: str, sdk: dict[str, dict[str, Any]]
) -> None:
    # `deploy()` names the configuration after the endpoint; sagepush names one per version (`<endpoint>-v<n>`), so
    # a new version updates the endpoint to a configuration of its own (blue/green) instead of reusing the name.
    answer = sdk[case_id]
    assert "error" not in answer, answer.get("error")
    ours = _ours(case_id, answer)
    settings = _settings(CASES[case_id])
    assert settings.endpoint is not None
    config = registry.endpoint_config_name(settings.endpoint.name, 1)
    assert ours["CreateEndpointConfig"] == answer["CreateEndpointConfig"] | {"EndpointConfigName": config}
    assert ours["CreateEndpoint"] == answer["CreateEndpoint"] | {"EndpointConfigName": config}


def test_covers_every_framework_with_and_without_an_inference_entry_point() -> None:
    frameworks = {case["framework"] for case in CASES.values()}
    assert frameworks == {"sklearn", "xgboost", "pytorch", "tensorflow"}
    for framework in frameworks - {"tensorflow"}:  # TensorFlow Serving reads code/inference.py only
        own = [c for c in CASES.values() if c["framework"] == framework]
        assert {"inference_entry_point" in c["model"] for c in own} == {True, False}
    assert {"memory_size_in_mb" in c["endpoint"] for c in CASES.values()} == {True, False}
    assert {bool(_metrics(c)) for c in CASES.values()} == {True, False}


# ---------------------------------------------------------------------------------------------- the repack itself
REPACK_MODEL_MEMBERS: dict[str, bytes | None] = {
    "./": None,
    "./model.pth": b"weights" * 1000,
    "./extra/": None,
    "./extra/vocab.txt": b"a b c",
    "./code/": None,
    "./code/serve.py": b"# the model's own copy, replaced by the staged one",
    "./code/notes.txt": b"kept: the staged code has no such file",
}
REPACK_CODE_MEMBERS: dict[str, bytes | None] = {
    "serve.py": b"def model_fn(model_dir):\n    return None\n",
    "train.py": b"print('train')\n",
    "lib/": None,
    "lib/common/": None,
    "lib/common/util.py": b"X = 1\n",  # a dependency, as staging lays `dependencies` out (the SDK's lib/<name>)
    "requirements.txt": b"numpy\n",
}


def _tar_gz(members: dict[str, bytes | None]) -> bytes:
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w:gz") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            if data is None:
                info.type = tarfile.DIRTYPE
                tar.addfile(info)
            else:
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
    return out.getvalue()


def _files(data: bytes) -> tuple[dict[str, str], set[str]]:
    files, dirs = {}, set()
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
        for info in tar:
            if info.isfile():
                extracted = tar.extractfile(info)
                assert extracted is not None
                files[info.name] = hashlib.sha256(extracted.read()).hexdigest()
            else:
                assert info.isdir(), f"{info.name} is neither a file nor a directory"
                dirs.add(info.name)
    return files, dirs


def test_the_repacked_model_holds_what_the_sdks_repack_model_writes(tmp_path: Path) -> None:
    from moto import mock_aws

    model, code = _tar_gz(REPACK_MODEL_MEMBERS), _tar_gz(REPACK_CODE_MEMBERS)
    (tmp_path / "model.tar.gz").write_bytes(model)
    (tmp_path / "sourcedir.tar.gz").write_bytes(code)
    code_uri, model_data = _code_uri("repack"), _model_data("repack")
    answer = run_sdk_script(
        "model_reference.py",
        {
            "repack": {
                "model_file": str(tmp_path / "model.tar.gz"),
                "code_file": str(tmp_path / "sourcedir.tar.gz"),
                "code_uri": code_uri,
                "entry_point": "serve.py",
                "output": str(tmp_path / "sdk-repacked.tar.gz"),
            }
        },
    )
    with mock_aws():
        s3 = boto3.client("s3", region_name="us-east-1", aws_access_key_id="k", aws_secret_access_key="s")
        s3.create_bucket(Bucket="sagepush-artifacts")
        for uri, body in ((model_data, model), (code_uri, code)):
            s3.put_object(Bucket="sagepush-artifacts", Key=uri.split("/", 3)[3], Body=body)
        ours = repack.repack(s3=s3, model_data_url=model_data, code_uri=code_uri)
        data = s3.get_object(Bucket="sagepush-artifacts", Key=ours.split("/", 3)[3])["Body"].read()
    files, dirs = _files(data)
    sdk_files = {name: m["sha256"] for name, m in answer["members"].items() if m["type"] == "file"}
    sdk_dirs = {name for name, m in answer["members"].items() if m["type"] == "dir"}
    assert files == sdk_files
    assert "code/serve.py" in files and "code/notes.txt" in files and "code/lib/common/util.py" in files
    # The SDK archives every directory of the tree it extracted (and the root, as ""); sagepush keeps the model's
    # directories and adds code/: each directory the repacked model names is one the SDK's names.
    assert dirs <= sdk_dirs - {""}
    assert {name.rsplit("/", 1)[0] for name in files if "/" in name} <= sdk_dirs
