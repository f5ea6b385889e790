"""What the local trainer reports as a job's FailureReason when its environment does not build."""

from __future__ import annotations

import pytest

from sagepush_cli.local.environments import install_failure


@pytest.mark.parametrize(
    ("output", "reason"),
    [
        (
            [
                "Using Python 3.11.7 environment at: /home/me/.cache/sagepush/local/envs/.0a1b2c3d",
                "error: No solution found when resolving dependencies",
                "  cause: Because there is no version of scikit-learn==0.0.1 and you require scikit-learn==0.0.1, we "
                "can conclude that your requirements are unsatisfiable.",
            ],
            "InstallRequirementsError: No solution found when resolving dependencies\n"
            "  cause: Because there is no version of scikit-learn==0.0.1",
        ),
        (
            [
                "Using CPython 3.11.7 interpreter at: /usr/bin/python3",
                "Resolved 12 packages in 40ms",
                "  \N{MULTIPLICATION SIGN} Failed to build `broken-pkg==1.0`",
                "  ╰─▶ The build backend returned an error",
            ],
            "InstallRequirementsError: Failed to build `broken-pkg==1.0`\n  ╰─▶ The build backend returned an error",
        ),
        (
            ["Using Python 3.11.7 environment at: /tmp/env", "Resolved 3 packages in 5ms", "something odd happened"],
            "InstallRequirementsError: something odd happened",
        ),
        (
            [
                "Collecting pandas==0.0.1 (from -r requirements.txt (line 1))",
                "ERROR: Could not find a version that satisfies the requirement pandas==0.0.1 (from versions: 2.2.3)",
                "ERROR: No matching distribution found for pandas==0.0.1",
            ],
            "InstallRequirementsError: Could not find a version that satisfies the requirement pandas==0.0.1",
        ),
        ([], "InstallRequirementsError: the environment build failed"),
    ],
    ids=["no-solution", "build-failure", "no-error-line", "pip", "no-output"],
)
def test_the_reason_is_uv_s_error_not_its_banner(output: list[str], reason: str) -> None:
    assert install_failure(output).startswith(reason)
    assert "environment at" not in install_failure(output)
