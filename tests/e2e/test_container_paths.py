"""A script that names /opt/ml paths itself, as many SageMaker scripts do, writes into its own job on the local stack."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from sagepush_cli.local import demo
from sagepush_cli.local.trainer import opt_ml_namespace
from tests.e2e.test_demo import ended, model_files

if TYPE_CHECKING:
    from pathlib import Path

    from sagepush_cli.local.stack import LocalStack

TRAIN = """\
import os
with open("/opt/ml/model/answer", "w") as answer:
    answer.write(os.environ["SM_MODEL_DIR"] + " " + os.getcwd())
"""


def test_a_script_writing_opt_ml_model_by_its_path_fills_its_own_model(stack: LocalStack, tmp_path: Path) -> None:
    if opt_ml_namespace() is None:
        pytest.skip("this machine allows no user namespaces, or /opt/ml cannot be made: the job runs in its folder")
    root = tmp_path / "paths"
    root.mkdir()
    (root / "train.py").write_text(TRAIN)
    (root / "sagepush.toml").write_text(
        'framework = "sklearn"\nframework_version = "1.2-1"\nentry_point = "train.py"\nmax_run = "10m"\n'
    )

    job = ended(demo.run(stack, root, project="paths"))

    assert job.status == "Completed", job.failure_reason
    assert model_files(job.model_uri or "")["answer"] == b"/opt/ml/model /opt/ml/code"  # as in a training container
