"""One function per benchmark row: measure the subject and its reference in the same run, return a `Row`."""

from __future__ import annotations

import gzip
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

ROOT = Path(__file__).resolve().parents[1]
LAYER = ROOT / "layers" / "sagepush"
SDK_REQUIREMENT = "sagemaker==2.257.7"
ISOLATED_STAGING = ("isal", "pathspec", "aws-lambda-powertools", "boto3")
UV = os.environ.get("UV") or shutil.which("uv") or "uv"
"""The uv running the benchmarks (`uv run` names itself in $UV; make installs one into .local/uv if PATH has none)."""
SLACK = 1.25
"""A regression check fails only when a ratio is more than 25 % behind its target."""

# Plausible deployment values for every variable a function's settings read (see sagepush.config).
FUNCTION_ENV = {
    "AWS_REGION": "us-east-1",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_EC2_METADATA_DISABLED": "true",
    "POWERTOOLS_SERVICE_NAME": "sagepush",
    "POWERTOOLS_METRICS_NAMESPACE": "sagepush",
    "SAGEMAKER_ROLE_ARN": "arn:aws:iam::123456789012:role/sagepush-sagemaker-execution",
    "OUTPUT_PATH": "s3://sagepush-artifacts-123456789012/output/",
    "OUTPUT_KMS_KEY": "",
    "DEFAULT_INSTANCE_TYPE": "ml.m5.xlarge",
    "DEFAULT_VOLUME_SIZE": "30",
    "DEFAULT_MAX_RUN": "86400",
    "DEFAULT_TAGS": '{"team": "ml"}',
    "CAPACITY_WAIT_SECONDS": "43200",
    "JOB_POLICY": '{"instance_types": "ml.m5.*,ml.g5.xlarge", "input_locations": "s3://sagepush-artifacts-123456789012/data/{project}/"}',
    "ARTIFACT_BUCKET": "sagepush-artifacts-123456789012",
    "INGEST_PREFIX": "incoming/",
    "CODE_PREFIX": "code/",
    "STATE_MACHINE_ARN": "arn:aws:states:us-east-1:123456789012:stateMachine:sagepush-training",
    "MATRIX_STATE_MACHINE_ARN": "arn:aws:states:us-east-1:123456789012:stateMachine:sagepush-matrix",
    "DEAD_LETTER_QUEUE_URL": "https://sqs.us-east-1.amazonaws.com/123456789012/sagepush-stage-dlq",
    "MAX_UPLOAD_BYTES": "1073741824",
    "MAX_EXPANDED_BYTES": "2147483648",
    "MAX_MEMBERS": "10000",
    "LEDGER_TABLE": "sagepush-ledger",
    "ALERTS_TOPIC_ARN": "arn:aws:sns:us-east-1:123456789012:sagepush-alerts",
    "ALERT_ON": "all",
    "RECONCILE_GRACE_SECONDS": "3600",
    "RECONCILE_MAX_JOBS": "100",
    "SUBMIT_LOG_GROUP": "/aws/lambda/sagepush-SubmitFunction-AbCdEf123456",
}

PYTORCH_MANIFEST = """\
framework = "pytorch"
framework_version = "2.5.1"
py_version = "py311"
entry_point = "train.py"
instance_type = "ml.g5.xlarge"
instance_count = 2
max_run = "2h"
hyperparameters = { epochs = 10, lr = 0.001, batch_size = 64 }
distribution = { torch_distributed = { enabled = true } }
"""


@dataclass
class Row:
    """One line of the table: the subject against its reference, as a ratio checked against a target."""

    what: str
    reference: str
    measured: str
    ratio: float | None
    target: str
    limit: float | None
    kind: Literal["at_most", "at_least", "check"]
    passed: bool
    note: str = ""

    def within_slack(self, slack: float = SLACK) -> bool:
        """Tell whether the ratio is no more than `slack` times behind its target (a check row must pass)."""
        if self.ratio is None or self.limit is None:
            return self.passed
        if self.kind == "at_most":
            return self.ratio <= self.limit * slack
        return self.ratio >= self.limit / slack

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


def _row(what: str, reference: str, measured: str, ratio: float, kind: str, limit: float, **extra: str) -> Row:
    passed = ratio <= limit if kind == "at_most" else ratio >= limit
    target = f"≤ {limit:g}x" if kind == "at_most" else f"≥ {limit:g}x"
    return Row(what, reference, measured, round(ratio, 3), target, limit, kind, passed, **extra)


def wall(argv: Sequence[str], **kwargs: object) -> float:
    """Run a command to completion and return its wall time in seconds; a failure raises."""
    start = time.perf_counter()
    subprocess.run(argv, check=True, stdout=subprocess.DEVNULL, **kwargs)
    return time.perf_counter() - start


def _median(values: Sequence[float]) -> float:
    return statistics.median(values)


# --------------------------------------------------------------------------------------------------- staging


@dataclass
class StagingRuns:
    """Staging timed against GNU tar and gzip -dc on one archive, runs interleaved; every staging result kept."""

    archive: Path
    results: list[dict[str, object]]
    tar_seconds: list[float]
    gunzip_seconds: list[float]
    output: Path

    @property
    def staging_seconds(self) -> list[float]:
        return [float(r["seconds"]) for r in self.results]


def stage_once(archive: Path, output: Path, python: Sequence[str] = (sys.executable,), **kwargs: object) -> dict:
    """Stage `archive` into `output` in a fresh process (see bench.stage_worker) and return what it reported."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(LAYER), str(ROOT)])}
    done = subprocess.run(
        [*python, "-m", "bench.stage_worker", str(archive), str(output)],
        check=False,
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        **kwargs,
    )
    if done.returncode != 0:
        raise subprocess.CalledProcessError(done.returncode, done.args, done.stdout, done.stderr[-3000:])
    return json.loads(done.stdout.strip().splitlines()[-1])


def run_staging(archive: Path, work: Path, runs: int) -> StagingRuns:
    """Time staging, `tar -xzf` + `tar -czf`, and `gzip -dc` on `archive`, `runs` times each, interleaved."""
    results, tar_s, gunzip_s = [], [], []
    output = work / "sourcedir.tar.gz"
    for i in range(runs):
        gunzip_s.append(_gunzip(archive))
        results.append(stage_once(archive, work / f"staged-{i}.tar.gz"))
        tree = work / "extracted"
        tree.mkdir()
        start = time.perf_counter()
        subprocess.run(["tar", "-xzf", str(archive), "-C", str(tree)], check=True)
        subprocess.run(["tar", "-czf", str(work / "repacked.tar.gz"), "-C", str(tree), "."], check=True)
        tar_s.append(time.perf_counter() - start)
        shutil.rmtree(tree)
        (work / "repacked.tar.gz").unlink()
    (work / "staged-0.tar.gz").replace(output)
    for i in range(1, runs):
        (work / f"staged-{i}.tar.gz").unlink()
    return StagingRuns(archive, results, tar_s, gunzip_s, output)


def _gunzip(archive: Path) -> float:
    start = time.perf_counter()
    with Path(os.devnull).open("wb") as null:
        subprocess.run(["gzip", "-dc", str(archive)], check=True, stdout=null)
    return time.perf_counter() - start


def staging_rows(runs: StagingRuns, label: str) -> list[Row]:
    """The speed, size and same-Python reproducibility rows from one set of staging runs."""
    stage = _median(runs.staging_seconds)
    tar = _median(runs.tar_seconds)
    gunzip = _median(runs.gunzip_seconds)
    staged = runs.output.read_bytes()
    gzip6 = len(gzip.compress(gzip.decompress(staged), compresslevel=6, mtime=0))
    digests = {r["sha256"] for r in runs.results}
    return [
        _row(
            f"staging {label}",
            f"tar -xzf + tar -czf: {tar:.2f} s",
            f"{stage:.2f} s",
            tar / stage,
            "at_least",
            5,
            note=f"median of {len(runs.results)}; times faster",
        ),
        _row(
            f"staging {label}",
            f"gzip -dc > /dev/null: {gunzip:.2f} s",
            f"{stage:.2f} s",
            stage / gunzip,
            "at_most",
            1.3,
            note=f"median of {len(runs.results)}",
        ),
        _row(
            "staged size",
            f"gzip -6 of the same tar: {gzip6 / 2**20:.1f} MiB",
            f"{len(staged) / 2**20:.1f} MiB",
            len(staged) / gzip6,
            "at_most",
            1.05,
        ),
        Row(
            "reproducible across runs",
            f"{len(runs.results)} runs, same Python",
            f"{len(digests)} distinct output SHA-256(s)",
            None,
            "byte-identical",
            None,
            "check",
            len(digests) == 1,
        ),
    ]


def memory_row(archive: Path, work: Path) -> Row:
    """Peak RSS of a staging process on a large archive, against the 64 MiB budget."""
    size_mib = archive.stat().st_size / 2**20
    result = stage_once(archive, work / "large-staged.tar.gz")
    (work / "large-staged.tar.gz").unlink()
    peak = float(result["peak_rss_mib"])
    return _row(
        "staging peak RSS",
        f"64 MiB budget; input {size_mib:,.0f} MiB",
        f"{peak:.1f} MiB (after imports {float(result['baseline_rss_mib']):.1f})",
        peak / 64,
        "at_most",
        1.0,
        note="ratio is peak RSS / 64 MiB",
    )


def python313() -> list[str] | None:
    """Return an interpreter argument for `uv run --python` that is Python 3.13, or None."""
    candidates = ["3.13", *sorted(str(p) for p in Path.home().glob(".pyenv/versions/3.13*/bin/python3.13"))]
    for candidate in candidates:
        probe = subprocess.run(
            [UV, "run", "--isolated", "--no-project", "--python", candidate, "python", "-c", "print(1)"],
            capture_output=True,
            text=True,
            check=False,
        )
        if probe.returncode == 0:
            return [candidate]
    return None


def cross_python_row(archive: Path, work: Path, expected: str) -> Row:
    """Stage under Python 3.13 in an isolated uv environment and compare the output's SHA-256 with this run's."""
    what, reference = "reproducible across Pythons", f"Python {sys.version.split()[0]} output {expected[:12]}"
    interpreter = python313()
    if interpreter is None:
        return Row(what, reference, "Python 3.13 not available", None, "byte-identical", None, "check", False)
    withs = [arg for name in ISOLATED_STAGING for arg in ("--with", name)]
    result = None
    for offline in ([], ["--offline"]):
        command = [UV, "run", "--isolated", "--no-project", *offline, "--python", *interpreter, *withs, "python"]
        try:
            result = stage_once(archive, work / "py313.tar.gz", python=command)
            break
        except subprocess.CalledProcessError:
            continue
    if result is None:
        return Row(what, reference, "staging under 3.13 failed", None, "byte-identical", None, "check", False)
    (work / "py313.tar.gz").unlink()
    digest = str(result["sha256"])
    return Row(
        what,
        reference,
        f"Python {result['python']} output {digest[:12]}",
        None,
        "byte-identical",
        None,
        "check",
        digest == expected,
    )


# --------------------------------------------------------------------------------------------------- cold init


def handler_clients(app: Path) -> list[str]:
    """Return the services whose clients a handler module asks `sagepush.aws` for."""
    return sorted(set(re.findall(r"""aws\.client\(\s*["']([a-z0-9-]+)["']""", app.read_text())))


def built_layer(work: Path) -> Path:
    """Build the layer as `sam build` does (layers/sagepush/Makefile), for this machine's Python and platform:
    the pinned dependencies and the sagepush package, all compiled to bytecode. Returns its python/ directory."""
    artifacts = work / "layer"
    make = ["make", "--no-print-directory", "-C", str(LAYER), "build-SagepushLayer"]
    settings = [f"ARTIFACTS_DIR={artifacts}", f"PYTHON={sys.executable}", "PLATFORMS="]
    subprocess.run([*make, *settings], check=True, stdout=subprocess.DEVNULL)
    return artifacts / "python"


def cold_init_rows(runs: int, work: Path) -> list[Row]:
    """Process wall time of importing each handler module against `import boto3` plus creating its clients, both
    from the layer as built for deployment (bytecode compiled at build, as Lambda's read-only /opt needs)."""
    rows = []
    env = {**os.environ, **FUNCTION_ENV, "PYTHONPATH": str(built_layer(work)), "PYTHONDONTWRITEBYTECODE": "1"}
    for app in sorted(ROOT.glob("functions/*/app.py")):
        clients = handler_clients(app)
        reference_code = "import boto3; " + "; ".join(f"boto3.client({c!r})" for c in clients)
        handler = [sys.executable, "-c", "import app"]
        reference = [sys.executable, "-c", reference_code]
        kwargs = {"cwd": app.parent, "env": env}
        wall(handler, **kwargs), wall(reference, **kwargs)  # warm the page cache and bytecode
        handler_s, reference_s = [], []
        for _ in range(runs):
            handler_s.append(wall(handler, **kwargs))
            reference_s.append(wall(reference, **kwargs))
        h, r = _median(handler_s), _median(reference_s)
        rows.append(
            _row(
                f"cold init: {app.parent.name}",
                f"import boto3 + {', '.join(clients) or 'no'} client(s): {r * 1000:.0f} ms",
                f"{h * 1000:.0f} ms",
                h / r,
                "at_most",
                1.2,
                note=f"median of {runs}",
            )
        )
    return rows


# ------------------------------------------------------------------------------------------------------ render


def isolated(requirement: str, *command: str, stdin: str = "", runs: int) -> list[list[float]]:
    """Wall times of each command (`::` between commands) run `runs` times in turn, in a fresh uv environment holding
    only `requirement` (Python 3.11); one list per command.

    Bytecode is cached there (one untimed run first), as it is for any installed tool after its first use, whatever
    PYTHONDONTWRITEBYTECODE says in the calling shell.
    """
    env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "PYTHONDONTWRITEBYTECODE")}
    uv = [UV, "run", "--isolated", "--no-project", "--python", "3.11", "--with", requirement]
    spawn = [*uv, "python", str(ROOT / "bench" / "spawn.py"), str(runs), *command]
    done = subprocess.run(spawn, input=stdin, capture_output=True, text=True, env=env, cwd=ROOT, check=False)
    if done.returncode != 0:
        raise subprocess.CalledProcessError(done.returncode, done.args, done.stdout, done.stderr[-3000:])
    times: list[list[float]] = json.loads(done.stdout)
    return times


def render_rows(work: Path, runs: int, starts: int) -> list[Row]:
    """`sagepush render` of a PyTorch project against the SageMaker SDK v2 building the same request, and
    `sagepush --help` against `import boto3` in the same environment.

    Each side runs as a user installs it: in its own environment with its own dependencies only (this project as a
    wheel, not the development environment with SAM CLI and moto in it).
    """
    project = work / "pytorch-project"
    project.mkdir()
    (project / "train.py").write_text("import torch\n\nprint('training')\n")
    (project / "sagepush.toml").write_text(PYTORCH_MANIFEST)
    render = ["sagepush", "render", str(project), "--json"]
    env = {**os.environ, "AWS_REGION": "us-east-1"}
    rendered = json.loads(
        subprocess.run(
            [str(Path(sys.executable).with_name("sagepush")), *render[1:]],
            check=True,
            capture_output=True,
            text=True,
            env=env,
        ).stdout
    )
    # A wheel built now: uv caches what it builds from a project directory and does not rebuild it when only the
    # sources change, so `--with ROOT` could time an earlier build of this code.
    subprocess.run([UV, "build", "--quiet", "--wheel", "--out-dir", str(work / "dist"), str(ROOT)], check=True)
    (wheel,) = (work / "dist").glob("sagepush-*.whl")
    (sagepush_s,) = isolated(str(wheel), *render, runs=runs)
    case = {
        "code_uri": json.loads(rendered["HyperParameters"]["sagemaker_submit_directory"]),
        "job_name": rendered["TrainingJobName"],
    }
    script = str(ROOT / "bench" / "sdk_render.py")
    (sdk_s,) = isolated(SDK_REQUIREMENT, "python", script, stdin=json.dumps(case), runs=runs)
    s, k = _median(sagepush_s), _median(sdk_s)
    help_s, boto3_s = isolated(str(wheel), "sagepush", "--help", "::", "python", "-c", "import boto3", runs=starts)
    h, b = _median(help_s), _median(boto3_s)
    return [
        _row(
            "sagepush render (PyTorch)",
            f"SageMaker SDK v2 estimator.fit: {k:.2f} s",
            f"{s:.2f} s",
            k / s,
            "at_least",
            10,
            note=f"process wall time, each in its own environment, bytecode cached; median of {runs}; times faster",
        ),
        _row(
            "sagepush --help",
            f"python -c 'import boto3' in the same environment: {b * 1000:.0f} ms",
            f"{h * 1000:.0f} ms",
            h / b,
            "at_most",
            0.3,
            note=f"process wall time, taking turns, bytecode cached; median of {starts}",
        ),
    ]


def timed(rows: list[Row], step: Callable[[], list[Row]], label: str) -> None:
    """Run one benchmark step, append its rows, and say on stderr how long it took."""
    start = time.perf_counter()
    rows.extend(step())
    print(f"  {label}: {time.perf_counter() - start:.1f} s", file=sys.stderr)


# ------------------------------------------------------------------------------------------------ local stack


def stack_rows(archive: Path, runs: int, events: int, uploads: int) -> list[Row]:
    """S3 → S3 staging, status event → alert and upload → CreateTrainingJob, on one local stack (bench.stack_worker)."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(LAYER), str(ROOT)])}
    argv = [sys.executable, "-m", "bench.stack_worker", str(archive), str(runs), str(events), str(uploads)]
    done = subprocess.run(argv, check=False, capture_output=True, text=True, env=env, cwd=ROOT, timeout=1800)
    if done.returncode != 0:
        raise subprocess.CalledProcessError(done.returncode, done.args, done.stdout, done.stderr[-3000:])
    measured = json.loads(done.stdout.strip().splitlines()[-1])
    s3, status, upload = measured["s3"], measured["status"], measured["upload"]
    size = archive.stat().st_size / 2**20
    stage, copy = _median(s3["subject"]), _median(s3["reference"])
    published, handled, bare = _median(status["subject"]), _median(status["handler"]), _median(status["reference"])
    replayed = f"the same DynamoDB UpdateItem + SNS Publish, bare: {bare * 1000:.1f} ms"
    pushed = _median(upload["subject"])
    return [
        _row(
            f"staging S3 → S3 ({size:.0f} MiB tar.gz, moto server)",
            f"transfer-manager download + upload: {copy:.2f} s",
            f"{stage:.2f} s",
            stage / copy,
            "at_most",
            1.2,
            note=f"median of {len(s3['subject'])}",
        ),
        _row(
            "status event → alert published, warm, per event",
            replayed,
            f"{published * 1000:.1f} ms",
            published / bare,
            "at_most",
            1.5,
            note=f"median of {len(status['subject'])} events of submitted jobs; until the handler's Publish returned",
        ),
        _row(
            "status event, whole handler (alert marked sent), warm, per event",
            replayed,
            f"{handled * 1000:.1f} ms",
            handled / bare,
            "at_most",
            1.5,
            note=f"median of {len(status['handler'])} events of submitted jobs; the whole invocation",
        ),
        _row(
            "local stack: upload → CreateTrainingJob called",
            "1 s budget",
            f"{pushed * 1000:.0f} ms",
            pushed,
            "at_most",
            1.0,
            note=f"median of {len(upload['subject'])} pushes; ratio is seconds / 1 s",
        ),
    ]
