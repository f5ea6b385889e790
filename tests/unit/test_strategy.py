"""`[strategy]`: one push, several jobs, with GitHub Actions' `strategy.matrix` semantics (sagepush.strategy)."""

from __future__ import annotations

import json
import tomllib
from typing import TYPE_CHECKING, Any

import pytest
from typer.testing import CliRunner

from sagepush.spec import Defaults, Manifest, SpecError, resolve_spec
from sagepush.strategy import Strategy, combinations, read_strategy
from sagepush_cli.main import EXIT_INPUT, app

if TYPE_CHECKING:
    from pathlib import Path

ROLE = "arn:aws:iam::123456789012:role/SagepushTraining"

ISSUE_MANIFEST = """
framework = "sklearn"
framework_version = "1.2-1"
entry_point = "train.py"
instance_type = "ml.m5.large"
metric_definitions = [{ Name = "validation:accuracy", Regex = "accuracy=([0-9.]+)" }]
hyperparameters = { max_depth = 4 }

[strategy]
max_parallel = 2
fail_fast = false
objective_metric_name = "validation:accuracy"
objective_type = "Maximize"

[strategy.matrix]
instance_type = ["ml.m5.large", "ml.c5.xlarge"]
hyperparameters = { n_estimators = [50, 100, 200] }
include = [{ instance_type = "ml.g5.xlarge", hyperparameters = { n_estimators = 400 } }]
exclude = [{ instance_type = "ml.c5.xlarge", hyperparameters = { n_estimators = 200 } }]
"""


def read(text: str, max_jobs: int = 8) -> Strategy | None:
    table = tomllib.loads(text)
    names = [m["Name"] for m in table.get("metric_definitions", [])]
    return read_strategy(table, source="sagepush.toml", max_jobs=max_jobs, metric_names=names)


def test_github_s_documented_include_example_gives_github_s_documented_jobs() -> None:
    # docs.github.com, "Expanding or adding matrix configurations": the example and the jobs it lists.
    jobs = combinations(
        {"fruit": ["apple", "pear"], "animal": ["cat", "dog"]},
        include=[
            {"color": "green"},
            {"color": "pink", "animal": "cat"},
            {"fruit": "apple", "shape": "circle"},
            {"fruit": "banana"},
            {"fruit": "banana", "animal": "cat"},
        ],
    )

    assert jobs == [
        {"fruit": "apple", "animal": "cat", "color": "pink", "shape": "circle"},
        {"fruit": "apple", "animal": "dog", "color": "green", "shape": "circle"},
        {"fruit": "pear", "animal": "cat", "color": "pink"},
        {"fruit": "pear", "animal": "dog", "color": "green"},
        {"fruit": "banana"},
        {"fruit": "banana", "animal": "cat"},
    ]


def test_an_exclude_entry_removes_every_combination_it_matches_partially_before_includes_apply() -> None:
    jobs = combinations(
        {"os": ["macos", "windows"], "version": [12, 14, 16], "env": ["dev", "prod"]},
        exclude=[{"os": "macos", "version": 12, "env": "prod"}, {"os": "windows", "version": 16}],
        include=[{"os": "windows", "version": 16, "env": "prod"}],
    )

    assert len(jobs) == 12 - 1 - 2 + 1
    assert {"os": "macos", "version": 12, "env": "prod"} not in jobs
    assert jobs[-1] == {"os": "windows", "version": 16, "env": "prod"}  # excluded first, then included on its own


def test_the_issue_s_manifest_gives_six_jobs_and_each_job_manifest_holds_its_values() -> None:
    strategy = read(ISSUE_MANIFEST)

    assert strategy is not None
    assert [(j["instance_type"], j["hyperparameters.n_estimators"]) for j in strategy.jobs] == [
        ("ml.m5.large", 50),
        ("ml.m5.large", 100),
        ("ml.m5.large", 200),
        ("ml.c5.xlarge", 50),
        ("ml.c5.xlarge", 100),
        ("ml.g5.xlarge", 400),
    ]
    assert (strategy.max_parallel, strategy.fail_fast, strategy.objective_type) == (2, False, "Maximize")
    manifests = strategy.manifests(tomllib.loads(ISSUE_MANIFEST))
    assert all("strategy" not in m for m in manifests)
    assert manifests[5]["instance_type"] == "ml.g5.xlarge"
    assert manifests[5]["hyperparameters"] == {"max_depth": 4, "n_estimators": 400}  # other entries kept


def test_a_manifest_without_strategy_is_one_job_as_before() -> None:
    assert read('entry_point = "train.py"\n') is None


def test_max_parallel_is_capped_by_the_policy_s_jobs_per_push() -> None:
    strategy = read(ISSUE_MANIFEST.replace("max_parallel = 2", "max_parallel = 50"), max_jobs=6)

    assert strategy is not None and strategy.max_parallel == 6


def test_v3_groups_vary_by_their_dotted_names() -> None:
    strategy = read('[strategy.matrix]\ncompute = { instance_type = ["ml.m5.large", "ml.c5.xlarge"] }\n')

    assert strategy is not None
    assert strategy.jobs == ({"compute.instance_type": "ml.m5.large"}, {"compute.instance_type": "ml.c5.xlarge"})
    assert strategy.manifests({"compute": {"instance_count": 1}})[1]["compute"] == {
        "instance_count": 1,
        "instance_type": "ml.c5.xlarge",
    }


@pytest.mark.parametrize(
    ("text", "where", "message"),
    [
        (
            '[strategy.matrix]\ninstance_typ = ["ml.m5.large"]\n',
            "strategy.matrix.instance_typ",
            "is not a manifest field",
        ),
        ("[strategy.matrix]\ninstance_type = []\n", "strategy.matrix.instance_type", "is an empty list"),
        ('[strategy.matrix]\ninstance_type = "ml.m5.large"\n', "strategy.matrix.instance_type", "must be a list"),
        (
            "[strategy.matrix]\nhyperparameters = { lr = 0.1 }\n",
            "strategy.matrix.hyperparameters.lr",
            "must be a list of values to try",
        ),
        ('[strategy.matrix]\ncompute = { instance_typ = ["a"] }\n', "strategy.matrix.compute.instance_typ", "not a"),
        (
            '[strategy.matrix]\ninstance_type = ["a", "b", "c"]\nhyperparameters = { lr = [1, 2, 3] }\n',
            "strategy.matrix",
            "makes 9 jobs, more than the deployment's policy allows per push (8)",
        ),
        (
            '[strategy]\nobjective_metric_name = "loss"\n[strategy.matrix]\nmax_run = ["1h"]\n',
            "strategy.objective_metric_name",
            "not a metric it defines",
        ),
        (
            '[strategy]\nobjective_type = "Max"\n[strategy.matrix]\nmax_run = ["1h"]\n',
            "strategy.objective_type",
            "not one of",
        ),
        ("[strategy]\nmax_paralel = 2\n", "strategy.max_paralel", "unknown key"),
        ('[strategy]\nmax_parallel = 0\n[strategy.matrix]\nmax_run = ["1h"]\n', "strategy.max_parallel", "positive"),
        ("[strategy.matrix]\ninclude = [{}]\n", "strategy.matrix.include[0]", "is empty"),
        ('[strategy.matrix]\nmax_run = ["1h"]\nexclude = [{ max_run = "1h" }]\n', "strategy.matrix", "leaves no job"),
        ("[strategy.matrix]\nrequest_overrides = [{}]\n", "strategy.matrix.request_overrides", "not a manifest field"),
    ],
    ids=[
        "unknown-field",
        "empty-list",
        "not-a-list",
        "named-entry-not-a-list",
        "unknown-v3-attribute",
        "beyond-policy",
        "undefined-objective",
        "objective-type",
        "unknown-strategy-key",
        "max-parallel",
        "empty-include",
        "nothing-left",
        "overrides-not-varied",
    ],
)
def test_a_bad_strategy_is_refused_naming_the_key(text: str, where: str, message: str) -> None:
    with pytest.raises(SpecError) as caught:
        read(text)

    assert caught.value.where == f"sagepush.toml: {where}"
    assert message in caught.value.message


def test_matrix_values_need_not_be_strings() -> None:
    strategy: Any = read('[strategy.matrix]\nuse_spot_instances = [true, false]\nmax_run = ["1h", 7200]\n')

    assert len(strategy.jobs) == 4 and strategy.jobs[0] == {"use_spot_instances": True, "max_run": "1h"}


def test_render_prints_every_job_s_request_in_matrix_order(tmp_path: Path) -> None:
    project = tmp_path / "boost"
    project.mkdir()
    (project / "train.py").write_text("print('validation accuracy=0.9')\n")
    manifest = ISSUE_MANIFEST.replace('"sklearn"', '"xgboost"').replace('"1.2-1"', '"1.7-1"')
    (project / "sagepush.toml").write_text(manifest)
    policy = tmp_path / "policy.toml"
    policy.write_text('max_jobs_per_push = 8\ninstance_types = ["ml.m5.*", "ml.c5.*", "ml.g5.xlarge"]\n')

    result = CliRunner().invoke(app, ["render", str(project), "--json", "--policy", str(policy)])

    assert result.exit_code == 0, result.output
    requests = json.loads(result.stdout)
    assert [(r["ResourceConfig"]["InstanceType"], r["HyperParameters"]["n_estimators"]) for r in requests] == [
        ("ml.m5.large", "50"),
        ("ml.m5.large", "100"),
        ("ml.m5.large", "200"),
        ("ml.c5.xlarge", "50"),
        ("ml.c5.xlarge", "100"),
        ("ml.g5.xlarge", "400"),
    ]
    names = [r["TrainingJobName"] for r in requests]
    assert [name.rsplit("-", 1)[1] for name in names] == ["1", "2", "3", "4", "5", "6"]
    assert len(set(names)) == 6 and all(len(name) <= 63 for name in names)
    assert all(r["HyperParameters"]["max_depth"] == "4" for r in requests)
    # Beyond the template's default policy (4 jobs per push), the same manifest is refused by name.
    refused = CliRunner().invoke(app, ["render", str(project)])
    assert refused.exit_code == EXIT_INPUT
    assert "strategy.matrix: makes 6 jobs, more than the deployment's policy allows per push (4)" in refused.stderr


def test_one_job_s_manifest_cannot_hold_a_matrix() -> None:
    # A direct start or a submission runs one job: a [strategy] there is refused by name, with what to do instead.
    with pytest.raises(SpecError) as caught:
        resolve_spec(Manifest(source="spec", table=tomllib.loads(ISSUE_MANIFEST)), Defaults(role=ROLE))

    assert caught.value.where == "spec: strategy"
    assert "a matrix of jobs runs from a push" in caught.value.message
