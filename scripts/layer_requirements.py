"""Write the Lambda layer's requirements.txt from uv.lock, every package pinned with its hashes, or check it.

`sam build` installs layers/sagepush/requirements.txt into the layer with pip. Each line carries the hashes uv.lock
records, so pip runs in hash-checking mode: a file whose hash the lock does not name, or a package the file does not
pin, fails the build instead of reaching the layer. The file is the project's dependencies from uv.lock without the
dev group and without what only the CLI needs (`CLI_ONLY` and whatever only they pull in), exactly as
`uv export` writes them, under a fixed header.

    uv run --frozen python scripts/layer_requirements.py            # (re)write the file after a lock change
    uv run --frozen python scripts/layer_requirements.py --check    # exit 1, with a diff, if it differs

`make lint-deps` runs the check, so the file cannot drift from the lock.
"""

from __future__ import annotations

import argparse
import difflib
import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
REQUIREMENTS = ROOT / "layers/sagepush/requirements.txt"
# The project's dependencies that only the CLI (cli/sagepush_cli/) imports: the layer's core never does.
CLI_ONLY = ("typer", "rich", "tomlkit")
REGENERATE = "uv run --frozen python scripts/layer_requirements.py"
HEADER = f"""\
# Runtime dependencies of the sagepush core (layers/sagepush/sagepush/), installed by `sam build` into the layer's
# python/ for the python3.13 arm64 runtime. GENERATED from uv.lock by scripts/layer_requirements.py: do not edit.
# It is the project's dependencies without the dev group and without the CLI's {", ".join(CLI_ONLY)}, each pinned with
# the hashes uv.lock records, so pip installs only files the lock names. To change a version, change pyproject.toml
# or run `uv lock --upgrade-package NAME`, then regenerate it:
#   {REGENERATE}
# `make lint-deps` fails while this file differs from what uv.lock gives.
#
# boto3/botocore ship with the runtime, but the copy there trails releases by weeks to months. CreateTrainingJob
# requests are validated against botocore's SageMaker service model, so the layer carries the botocore the tests
# ran with: a field SageMaker added lately validates in Lambda exactly as it did in CI.
"""


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="compare instead of writing; exit 1 when they differ")
    parser.add_argument("--uv", default=os.environ.get("UV") or shutil.which("uv") or "uv", help="the uv executable")
    parser.add_argument("file", nargs="?", type=Path, default=REQUIREMENTS, help="the requirements file")
    args = parser.parse_args()

    try:
        expected = generate(args.uv)
    except subprocess.CalledProcessError as exc:
        print(f"error: uv export failed (exit {exc.returncode}):\n{exc.stderr}", file=sys.stderr)
        return 1
    if not args.check:
        args.file.write_text(expected, encoding="utf-8")
        print(f"wrote {args.file}")
        return 0
    actual = args.file.read_text(encoding="utf-8") if args.file.exists() else ""
    if actual == expected:
        print(f"{_shown(args.file)} is what uv.lock gives (every package pinned with hashes)")
        return 0
    diff = difflib.unified_diff(
        actual.splitlines(keepends=True),
        expected.splitlines(keepends=True),
        fromfile=_shown(args.file),
        tofile="from uv.lock",
    )
    sys.stderr.writelines(diff)
    print(f"error: {_shown(args.file)} differs from what uv.lock gives: run `{REGENERATE}`", file=sys.stderr)
    return 1


def generate(uv: str) -> str:
    """Return the layer's requirements as uv.lock gives them, header included.

    Raises:
        subprocess.CalledProcessError: uv export failed (no uv.lock, or one that does not parse).
    """
    command = [uv, "export", "--frozen", "--format", "requirements.txt", "--no-dev", "--no-emit-project"]
    command += ["--no-header", *(f"--prune={name}" for name in CLI_ONLY)]
    exported = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, check=True)
    return f"{HEADER}\n{exported.stdout}"


def _shown(path: Path) -> str:
    return str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else str(path)


if __name__ == "__main__":
    sys.exit(main())
