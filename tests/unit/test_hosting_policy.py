"""The hosting half of the deployment's policy: what an `[endpoint]` may ask for, checked wherever its manifest is
(the upload, render, registration, deployment), each refusal naming the field."""

from __future__ import annotations

from typing import Any

import pytest

from sagepush import jobs, spec
from sagepush.policy import Policy, PolicyError

MANIFEST: dict[str, Any] = {
    "framework": "sklearn",
    "framework_version": "1.2-1",
    "entry_point": "train.py",
    "metric_definitions": [{"Name": "validation:accuracy", "Regex": "accuracy=([0-9.]+)"}],
    "model": {"approve_if": ["validation:accuracy >= 0.9"]},
}


def check(endpoint: dict[str, Any], policy: Policy | None = None, **manifest: Any) -> Any:
    table = {**MANIFEST, **manifest, "endpoint": endpoint}
    resolved = spec.resolve_spec(
        spec.Manifest(source="sagepush.toml", table=table),
        spec.Defaults(
            role="arn:aws:iam::123456789012:role/sagemaker", instance_type="ml.m5.large", output_path="s3://out/iris/"
        ),
    )
    return jobs.check_model(
        table,
        project="iris",
        origin="sagepush.toml",
        job_policy=policy or Policy(),
        resolved=resolved,
        region="us-east-1",
    )


def test_an_endpoint_inside_the_policy_is_read() -> None:
    model = check({"instance_type": "ml.m5.large", "initial_instance_count": 2})
    assert model.endpoint.instance_type == "ml.m5.large" and model.endpoint.initial_instance_count == 2


@pytest.mark.parametrize(
    ("endpoint", "policy", "field", "words"),
    [
        ({"instance_type": "ml.p4d.24xlarge"}, Policy(), "endpoint.instance_type", "allowed: ml.c5.*, ml.m5.*"),
        ({"instance_type": "ml.m5.large", "initial_instance_count": 3}, Policy(), "endpoint.initial_instance_count",
         "at most 2"),
        ({"instance_type": "ml.m5.large"}, Policy(serverless_only=True), "endpoint.instance_type", "serverless"),
        ({"memory_size_in_mb": 4096}, Policy(max_serverless_memory=2048), "endpoint.memory_size_in_mb", "at most 2048"),
    ],
)  # fmt: skip
def test_an_endpoint_beyond_the_policy_is_refused_naming_its_field(
    endpoint: dict[str, Any], policy: Policy, field: str, words: str
) -> None:
    with pytest.raises(PolicyError) as refused:
        check(endpoint, policy)
    assert refused.value.where == f"sagepush.toml: {field}"
    assert words in refused.value.message


def test_a_serverless_endpoint_passes_a_serverless_only_policy() -> None:
    assert check({"memory_size_in_mb": 2048}, Policy(serverless_only=True)).endpoint.serverless


def test_the_policy_document_carries_the_hosting_limits() -> None:
    policy = Policy.from_document(
        {"hosting_instance_types": "ml.c5.*", "max_hosting_instance_count": "4", "serverless_only": "true"}
    )
    assert policy.hosting_instance_types == ("ml.c5.*",)
    assert (policy.max_hosting_instance_count, policy.serverless_only) == (4, True)


def test_a_model_no_inference_image_serves_is_refused_before_it_is_trained() -> None:
    # PyTorch trains on versions it has no inference image for yet: the push would train a model nothing can serve.
    with pytest.raises(spec.SpecError) as refused:
        check({"instance_type": "ml.m5.large"}, framework="pytorch", framework_version="2.8", py_version="py312")
    assert refused.value.where == "sagepush.toml: framework_version"
    assert "no image serves the model [model] registers" in refused.value.message
