"""The CLI as a user installs it: the wheel with its runtime dependencies only, none of the development tools.

The development environment holds SAM CLI, the SAM translator, moto and the template beside the code; an installed
`sagepush` has none of them, so what it reads must be packaged with it.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

from sagepush_cli.project import render_jobs
from tests.reference.sdk import uv_path

ROOT = Path(__file__).resolve().parents[2]


def installed(wheel: Path, *command: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """Run `command` in a fresh environment holding only the wheel and what it depends on."""
    env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "PYTHONPATH")}
    env["AWS_REGION"] = "us-east-1"
    uv = [uv_path(), "run", "--isolated", "--no-project", "--python", "3.11", "--with", str(wheel)]
    return subprocess.run([*uv, *command], capture_output=True, text=True, env=env, cwd=cwd, check=False, timeout=600)


def test_an_installed_cli_renders_without_a_deployment_or_the_development_tools(tmp_path: Path) -> None:
    project = tmp_path / "iris"
    project.mkdir()
    (project / "train.py").write_text("print('training')\n")
    (project / "sagepush.toml").write_text(
        'framework = "sklearn"\nframework_version = "1.2-1"\nentry_point = "train.py"\n'
        "hyperparameters = { max_depth = 3 }\n"
    )
    built = subprocess.run(
        [uv_path(), "build", "--quiet", "--wheel", "--out-dir", str(tmp_path / "dist"), str(ROOT)],
        capture_output=True,
        text=True,
        check=False,
        timeout=600,
    )
    assert built.returncode == 0, built.stderr
    (wheel,) = (tmp_path / "dist").glob("sagepush-*.whl")

    rendered = installed(wheel, "sagepush", "render", str(project), "--json", cwd=tmp_path)
    assert rendered.returncode == 0, rendered.stderr[-2000:]
    assert json.loads(rendered.stdout) == render_jobs(project, region="us-east-1")[0]

    # The default job policy still applies: an instance type beyond it is refused, naming the field.
    (project / "sagepush.toml").write_text(
        'framework = "sklearn"\nframework_version = "1.2-1"\nentry_point = "train.py"\ninstance_type = "ml.p5.48xlarge"\n'
    )
    refused = installed(wheel, "sagepush", "render", str(project), cwd=tmp_path)
    assert refused.returncode != 0
    assert "instance_type" in refused.stderr + refused.stdout

    helped = installed(wheel, "sagepush", "--help", cwd=tmp_path)
    assert helped.returncode == 0 and "render" in helped.stdout
    for tool in ("samtranslator", "moto", "samcli"):
        probe = installed(wheel, "python", "-c", f"import {tool}", cwd=tmp_path)
        assert probe.returncode != 0, f"{tool} is installed with the CLI: the test no longer proves it is not needed"
