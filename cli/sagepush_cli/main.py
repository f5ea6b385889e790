"""The `sagepush` command: every subcommand imports what it needs when it runs, so `--help` stays instant."""

from __future__ import annotations

import contextlib
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, NoReturn

import typer

from sagepush import aws

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator, Mapping

    from sagepush_cli.local.demo import DemoResult
    from sagepush_cli.local.state import Note

app = typer.Typer(
    name="sagepush",
    help="Push training code, get a SageMaker training job, and hear how it went.",
    no_args_is_help=True,
    rich_markup_mode="rich",
    pretty_exceptions_enable=False,
)
local_app = typer.Typer(help="Run the whole pipeline on this machine: a moto server, the real template, real training.")
app.add_typer(local_app, name="local")

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_INPUT = 2
"""Exit codes: 0 success; 1 the operation ran and failed (a job failed, AWS refused); 2 the input is wrong."""

JsonOption = Annotated[bool, typer.Option("--json", help="Print one JSON document instead of text.")]
RegionOption = Annotated[str, typer.Option("--region", envvar="AWS_REGION", help="AWS region of the job.")]
AwsRegionOption = Annotated[
    str | None, typer.Option("--region", envvar="AWS_REGION", help="AWS region (default: the profile's).")
]
ProfileOption = Annotated[str | None, typer.Option("--profile", envvar="AWS_PROFILE", help="AWS named profile.")]
LocalOption = Annotated[
    bool,
    typer.Option(
        "--local",
        help="Use the stack `sagepush local up` runs on this machine: its endpoint, region and stack, nothing exported.",
    ),
]
StackOption = Annotated[
    str | None,
    typer.Option("--stack", help="The deployed sagepush stack (default: samconfig.toml's stack_name)."),
]
PolicyOption = Annotated[
    Path | None,
    typer.Option(
        "--policy",
        exists=True,
        dir_okay=False,
        help="A job policy file (TOML or JSON, sagepush.policy fields) to check the job against.",
    ),
]
PollOption = Annotated[float, typer.Option("--poll-seconds", hidden=True, help="Seconds between polls.")]
JobArgument = Annotated[str, typer.Argument(help="The training job name, as `sagepush push` printed it.")]


def _fail(message: str, code: int = EXIT_INPUT) -> NoReturn:
    from rich.console import Console

    Console(stderr=True).print(f"[bold red]error:[/] {message}", highlight=False, markup=True, soft_wrap=True)
    raise typer.Exit(code)


def _print_json(document: Any) -> None:
    sys.stdout.write(json.dumps(document, indent=2, sort_keys=False, default=str) + "\n")


def _session(region: str | None, profile: str | None, *, local: bool = False) -> Any:
    """A boto3 session for `--region`/`--profile` (AWS_ENDPOINT_URL and the usual variables apply as well), or with
    `local` for the stack `sagepush local up` runs (its endpoint, region and credentials, whatever is exported)."""
    import os

    import boto3
    from botocore.exceptions import ProfileNotFound

    if local:
        found = _running_local_stack()
        for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_DEFAULT_REGION"):
            os.environ.pop(name, None)
        os.environ.update(found.environment())  # every client this process makes, boto3's and the CLI's helpers
        return boto3.Session(region_name=found.region)
    try:
        return boto3.Session(profile_name=profile, region_name=region)
    except ProfileNotFound as exc:
        _fail(f"--profile: {exc}")


def _running_local_stack() -> Any:
    from sagepush_cli.local import running

    found = running.find()
    if found is None:
        _fail("--local: no local stack is running (start one with `sagepush local up`)")
    return found


def _stack(stack: str | None, *, local: bool) -> str | None:
    """`--stack`, or with `--local` the stack `sagepush local up` runs."""
    return stack or (_running_local_stack().stack_name if local else None)


@contextlib.contextmanager
def _readable_errors() -> Iterator[None]:
    """Turn what users meet (bad input, AWS refusals, no credentials) into one line and an exit code."""
    from botocore.exceptions import BotoCoreError, ClientError

    from sagepush.errors import InputError
    from sagepush_cli import follow
    from sagepush_cli.push import PushRefusedError, aws_access

    try:
        with aws_access():
            yield
    except InputError as exc:
        _fail(str(exc))
    except follow.UploadRefusedError as exc:
        _fail(str(exc))
    except (PushRefusedError, follow.FollowError) as exc:
        _fail(str(exc), EXIT_FAILED)
    except ClientError as exc:
        error = exc.response.get("Error", {})
        _fail(f"{exc.operation_name}: {error.get('Code', 'error')}: {error.get('Message', '')}", EXIT_FAILED)
    except BotoCoreError as exc:
        _fail(str(exc), EXIT_FAILED)


@app.command()
def push(
    path: Annotated[Path, typer.Argument(help="The project directory (default: the current one).")] = Path(),
    project: Annotated[
        str | None, typer.Option(help="Project name: lower-case letters, digits and - (default: the directory name).")
    ] = None,
    bucket: Annotated[str | None, typer.Option(help="Ingest bucket to upload to.")] = None,
    stack: Annotated[
        str | None,
        typer.Option(help="Deployed stack whose IngestBucketName output is the bucket (default: samconfig.toml's)."),
    ] = None,
    settings: Annotated[
        list[str] | None,
        typer.Option(
            "--set",
            metavar="KEY=VALUE",
            help="Set a manifest value in the pushed archive, e.g. hyperparameters.epochs=5 (repeatable).",
        ),
    ] = None,
    worktree: Annotated[
        bool, typer.Option("--worktree", help="Push the working tree (uncommitted and untracked files too), not HEAD.")
    ] = False,
    wait: Annotated[
        bool,
        typer.Option("--wait", help="Follow the job: its transitions, then its log tail; exit 0 only if it completes."),
    ] = False,
    timeout: Annotated[
        float | None, typer.Option(help="With --wait: give up (exit 1) after this many seconds; default: no limit.")
    ] = None,
    policy: PolicyOption = None,
    new: Annotated[
        bool,
        typer.Option("--new", help="Upload and start another job even when this commit and code already became one."),
    ] = False,
    large_file_mb: Annotated[
        float,
        typer.Option(
            min=0,
            envvar="SAGEPUSH_LARGE_FILE_MB",
            help="Warn about files in the code larger than this many megabytes: every job downloads them.",
        ),
    ] = 50.0,
    local: LocalOption = False,
    region: AwsRegionOption = None,
    profile: ProfileOption = None,
    json_output: JsonOption = False,
    poll_seconds: PollOption = 2.0,
) -> None:
    """Archive PATH (git HEAD, or the directory), check it as staging will, and upload it to the ingest bucket.

    In a git repository the commit at HEAD is pushed, honouring export-ignore; uncommitted changes need --worktree.
    A commit already pushed with the same code and manifest is not uploaded again: push follows the job it became
    (--new starts another).
    Secrets, links, bad manifests and jobs beyond the deployment's policy (--policy FILE, else the stack's JobPolicy
    output, else template.yaml's defaults) are refused here, before anything is uploaded.
    Exit codes: 0 uploaded (with --wait: the job completed); 1 AWS refused, or the job failed, stopped or timed
    out; 2 the input is wrong (with --wait: also when staging refused the upload).
    """
    from sagepush_cli import project as projects
    from sagepush_cli import push as pushing

    session = _session(region, profile, local=local)
    with _readable_errors():
        pushed = pushing.push(
            path,
            job_policy=projects.policy_file(policy) if policy else None,
            session=session,
            project=project,
            bucket=bucket,
            stack=_stack(stack, local=local),
            settings=settings or (),
            worktree=worktree,
            progress=sys.stderr.isatty() and not json_output,
            new=new,
            large_file_mb=large_file_mb,
            local=local,
        )
    for large, size in pushed.large_files:
        typer.echo(
            f"warning: {large} is {size / 1_000_000:.0f} MB and ships with the code to every job; leave it out with "
            f"a line {large!r} in .sagepushignore (or export-ignore in .gitattributes) and read data from a channel",
            err=True,
        )
    commit = pushed.metadata.get("sagepush-commit")
    if not json_output and pushed.attached:
        typer.echo(f"already pushed {pushed.uri} (commit {(commit or '')[:12]}, same code): not uploaded again")
    elif not json_output:
        typer.echo(f"pushed {pushed.uri} ({pushed.size} bytes{f', commit {commit[:12]}' if commit else ''})")
        if pushed.left_out:
            typer.echo(f"  left out {len(pushed.left_out)} untracked file(s); --worktree pushes them", err=True)
    if not wait:
        if json_output:
            _print_json(pushed.summary())
        else:
            typer.echo(f"job {pushed.attached or pushed.job_name_prefix + '…'}")
        return
    with _readable_errors():
        followed = _follow_push(session, pushed, timeout=timeout, poll=poll_seconds, quiet=json_output)
    if isinstance(followed, dict):  # a [strategy] push: every job's end, and the best
        from sagepush.events import TrainingJobStatus

        if json_output:
            _print_json({**pushed.summary(), **followed})
        else:
            _print_matrix_end(followed)
        if not all(job["status"] == TrainingJobStatus.COMPLETED for job in followed["jobs"]):
            raise typer.Exit(EXIT_FAILED)
        return
    view, tail = followed
    if json_output:
        _print_json({**pushed.summary(), "job": view.as_dict(), "log_tail": tail})
    else:
        _print_end(view, tail)
    if not view.completed:
        raise typer.Exit(EXIT_FAILED)


STAGE_WAIT_SECONDS = 900.0
"""How long `push --wait` waits for StageFunction to tag the upload: its timeout times its attempts."""
SUMMARY_WAIT_SECONDS = 300.0
"""How long `push --wait` of a `[strategy]` push waits, after its last job ended, for the push's summary alert."""


def _follow_push(
    session: Any, pushed: Any, *, timeout: float | None, poll: float, quiet: bool
) -> tuple[Any, Any] | dict[str, Any]:
    """Wait for the upload's job, print its transitions as they happen, and return its end and its log tail; for a
    `[strategy]` push, follow every job (`_follow_matrix`)."""
    import time

    from sagepush_cli import follow

    started = time.monotonic()
    s3 = session.client("s3", config=aws.config("s3"))
    version = follow.upload_version(s3, bucket=pushed.bucket, key=pushed.key)
    stage_wait = min(timeout, STAGE_WAIT_SECONDS) if timeout is not None else STAGE_WAIT_SECONDS
    staged = follow.jobs_of_upload(
        s3, bucket=pushed.bucket, key=pushed.key, version_id=version, timeout=stage_wait, poll=poll
    )
    left = None if timeout is None else max(0.0, timeout - (time.monotonic() - started))
    if staged.push is not None:
        return _follow_matrix(session, pushed, staged, version=version, timeout=left, poll=poll, quiet=quiet)
    [job_name] = staged.jobs
    if not quiet:
        typer.echo(f"job {job_name}")
    shown = 0
    view = None
    for view in follow.watch(
        session.client("sagemaker", config=aws.config("sagemaker")), job_name, timeout=left, poll=poll
    ):
        if not quiet:
            for transition in view.transitions[shown:]:
                typer.echo(_transition_line(*transition))
        shown = len(view.transitions)
    assert view is not None  # watch() yields at least the job's end
    return view, follow.log_tail(session.client("logs", config=aws.config("logs")), job_name)


def _follow_matrix(
    session: Any, pushed: Any, staged: Any, *, version: str | None, timeout: float | None, poll: float, quiet: bool
) -> dict[str, Any]:
    """Follow every job of a `[strategy]` push until all have ended (or the push ended without creating some): a
    live table on a terminal, each transition as a line otherwise. Return `{"push", "jobs", "best", "objective"}`."""
    from sagepush import alerts, naming, pushes, strategy
    from sagepush_cli import follow

    matrix = strategy.of_manifest(pushed.staged.manifest, max_jobs=naming.MAX_MATRIX_JOBS)
    values = dict(zip(staged.jobs, matrix.jobs, strict=False)) if matrix else {}
    objective = (matrix.objective_metric_name, matrix.objective_type) if matrix else (None, "Maximize")
    s3 = session.client("s3", config=aws.config("s3"))
    extra = {"VersionId": version} if version else {}

    def push_ended() -> bool:
        tags = s3.get_object_tagging(Bucket=pushed.bucket, Key=pushed.key, **extra)["TagSet"]
        return any(tag["Key"] == pushes.UPLOAD_ENDED_TAG for tag in tags)

    if not quiet:
        typer.echo(f"push {staged.push}: {len(staged.jobs)} jobs")
    sagemaker = session.client("sagemaker", config=aws.config("sagemaker"))
    watched = follow.watch_all(sagemaker, staged.jobs, timeout=timeout, poll=poll, given_up=push_ended)
    views: dict[str, Any] = {}
    with _matrix_display(quiet) as show:
        for views in watched:
            show(_matrix_rows(views, values, objective[0]))
    # Every job has ended: the push ends once its summary alert is out (the upload is tagged then).
    if not follow.wait_until(push_ended, timeout=SUMMARY_WAIT_SECONDS, poll=poll) and not quiet:
        typer.echo(f"  the push's summary alert was not sent within {SUMMARY_WAIT_SECONDS:g}s", err=True)
    rows = _matrix_rows(views, values, objective[0])
    best = pushes.best_job(
        [
            alerts.MatrixJob(job_name=r["job_name"], matrix=r["matrix"], status=r["status"], objective=r["objective"])
            for r in rows
        ],
        objective[1],
    )
    return {
        "push": staged.push,
        "jobs": rows,
        "objective": {"metric_name": objective[0], "type": objective[1]} if objective[0] else None,
        "best": best,
    }


def _matrix_rows(views: Mapping[str, Any], values: Mapping[str, Any], metric: str | None) -> list[dict[str, Any]]:
    from sagepush.pushes import NOT_CREATED

    rows = []
    for name, view in views.items():
        rows.append(
            {
                "job_name": name,
                "matrix": dict(values.get(name, {})),
                "status": view.status if view else NOT_CREATED,
                "secondary_status": view.secondary_status if view else None,
                "training_seconds": view.training_seconds if view else None,
                "billable_seconds": view.billable_seconds if view else None,
                "objective": view.metrics.get(metric) if view and metric else None,
                "failure_reason": view.failure_reason if view else None,
                "transitions": [list(t) for t in view.transitions] if view else [],
            }
        )
    return rows


@contextlib.contextmanager
def _matrix_display(quiet: bool) -> Iterator[Callable[[list[dict[str, Any]]], None]]:
    """Show a push's jobs as they change: a live table on a terminal, else each new transition as one line."""
    from rich.console import Console
    from rich.live import Live

    console = Console(highlight=False)
    if quiet:
        yield lambda rows: None
        return
    if console.is_terminal:
        with Live(console=console, refresh_per_second=4, transient=True) as live:  # the end prints the table
            yield lambda rows: live.update(_matrix_table(rows))
        return
    shown: dict[str, int] = {}

    def print_new(rows: list[dict[str, Any]]) -> None:
        for row in rows:
            for status, start, message in row["transitions"][shown.get(row["job_name"], 0) :]:
                first = message.splitlines()[0] if message else ""
                typer.echo(f"  {(start or '')[11:19]}  {row['job_name']:<40} {status:<20} {first}")
            shown[row["job_name"]] = len(row["transitions"])

    yield print_new


def _matrix_table(rows: list[dict[str, Any]], best: str | None = None) -> Any:
    from rich.table import Table

    table = Table(box=None, header_style="bold")
    for column in ("job", "values", "status", "training", "billable", "objective"):
        table.add_column(column, no_wrap=column == "job")
    for row in rows:
        status = row["status"]
        if row["secondary_status"] and row["secondary_status"] != status:
            status = f"{status} ({row['secondary_status']})"
        objective = "" if row["objective"] is None else f"{row['objective']:g}"
        table.add_row(
            row["job_name"] + (" *" if row["job_name"] == best else ""),
            ", ".join(f"{path}={value}" for path, value in row["matrix"].items()),
            f"[{_status_colour(row['status'])}]{status}[/]",
            "" if row["training_seconds"] is None else f"{row['training_seconds']}s",
            "" if row["billable_seconds"] is None else f"{row['billable_seconds']}s",
            objective,
        )
    return table


def _print_matrix_end(followed: Mapping[str, Any]) -> None:
    from rich.console import Console

    from sagepush.events import TrainingJobStatus

    out = Console(highlight=False, soft_wrap=True)
    out.print(_matrix_table(followed["jobs"], followed["best"]))
    for row in followed["jobs"]:
        if row["failure_reason"]:
            out.print(f"[bold]{row['job_name']}[/] failed: ", end="")
            out.print(row["failure_reason"], markup=False)
    completed = sum(row["status"] == TrainingJobStatus.COMPLETED for row in followed["jobs"])
    out.print(f"[bold]push {followed['push']}[/]: {completed} of {len(followed['jobs'])} jobs completed")
    if followed["best"]:
        best = next(row for row in followed["jobs"] if row["job_name"] == followed["best"])
        metric = followed["objective"]["metric_name"]
        out.print(f"[bold]best[/] {followed['best']} ({metric} = {best['objective']:g})")


def _transition_line(status: str, start: str | None, message: str) -> str:
    """Return one secondary status transition as `push --wait` and `local demo` print it."""
    return f"  {(start or '')[11:19]}  {status:<20} {message.splitlines()[0] if message else ''}"


def _print_end(view: Any, tail: list[str]) -> None:
    from rich.console import Console

    out = Console(highlight=False, soft_wrap=True)
    if tail:
        out.print("[bold]Log tail[/]")
        for line in tail:
            out.print(f"  {line}", markup=False)
    for name, value in view.metrics.items():
        out.print(f"[bold]metric[/] {name} = {value:g}")
    if view.model_uri and view.completed:
        out.print(f"[bold]model[/]  {view.model_uri}")
    if view.failure_reason:
        out.print("[bold]failure reason[/]")
        out.print(view.failure_reason, markup=False)
    colour = _status_colour(view.status)
    out.print(f"[bold]{view.name}[/] [{colour}]{view.status}[/] ({view.secondary_status})")


def _status_colour(status: str | None) -> str:
    """Return the colour a job's status is printed in: green completed, red failed, yellow otherwise."""
    from sagepush.events import TrainingJobStatus

    colours: dict[str, str] = {TrainingJobStatus.COMPLETED: "green", TrainingJobStatus.FAILED: "red"}
    return colours.get(status or "", "yellow")


@app.command()
def render(
    path: Annotated[
        Path, typer.Argument(help="A project directory, an archive (.tar.gz .tgz .tar .zip) or a .py script.")
    ],
    region: RegionOption = "us-east-1",
    project: Annotated[str | None, typer.Option(help="Project name (default: the directory or file name).")] = None,
    role: Annotated[str | None, typer.Option(help="Execution role ARN (default: a placeholder).")] = None,
    output_path: Annotated[str, typer.Option(help="Deployment output path.")] = "s3://sagepush-artifacts/output/",
    policy: PolicyOption = None,
    json_output: JsonOption = False,
) -> None:
    """Print the CreateTrainingJob request a push of PATH would send (a dry run: no AWS call); with a \\[strategy]
    matrix, every job's request (--json: a list, in matrix order).

    The job is checked against the deployment's job policy: --policy FILE, else template.yaml's defaults.
    """
    from sagepush.errors import InputError
    from sagepush_cli import project as projects

    try:
        job_policy = projects.policy_file(policy) if policy else None
        requests = projects.render_jobs(
            path, region=region, project=project, role=role, output_path=output_path, job_policy=job_policy
        )
    except InputError as exc:
        _fail(str(exc))
    if json_output:
        _print_json(requests[0] if len(requests) == 1 else requests)  # a [strategy] matrix: a list, in matrix order
        return
    from rich.console import Console
    from rich.syntax import Syntax

    console = Console()
    for rendered in requests:
        code = rendered["HyperParameters"]["sagemaker_submit_directory"]
        console.print(f"[bold]{rendered['TrainingJobName']}[/]  (code {code})")
        console.print(Syntax(json.dumps(rendered, indent=2), "json", theme="ansi_dark", word_wrap=True))


@app.command()
def stage(
    archive: Annotated[
        Path, typer.Argument(help="An archive (.tar.gz .tgz .tar .zip) or a .py script.", exists=True, dir_okay=False)
    ],
    output: Annotated[Path, typer.Option("-o", "--output", help="Where to write sourcedir.tar.gz.")],
    json_output: JsonOption = False,
) -> None:
    """Stage a local archive as SageMaker's sourcedir.tar.gz, with no AWS; exit 2 with the reason if refused."""
    from sagepush import staging
    from sagepush.errors import InputError

    partial = output.with_name(output.name + ".partial")
    try:
        with archive.open("rb") as src, partial.open("wb") as dst:
            staged = staging.stage_archive(src, dst, filename=archive.name)
    except InputError as exc:
        partial.unlink(missing_ok=True)
        _fail(str(exc))
    except BaseException:  # Ctrl-C, a full disk, a bug: never leave half a sourcedir.tar.gz behind
        partial.unlink(missing_ok=True)
        raise
    partial.replace(output)
    summary = {
        "output": str(output),
        "digest": staged.digest,
        "size": staged.size,
        "members": list(staged.members),
        "dropped": list(staged.dropped),
        "manifest": staged.manifest.source if staged.manifest else None,
    }
    if json_output:
        _print_json(summary)
        return
    typer.echo(f"{staged.digest}  {output}  ({len(staged.members)} members, {staged.size} bytes)")
    for name in staged.dropped:
        typer.echo(f"  dropped {name}")


@app.command("image-uri")
def image_uri(
    framework: Annotated[str, typer.Option(help="pytorch, tensorflow, sklearn, xgboost or huggingface.")],
    version: Annotated[str, typer.Option(help="Framework version, e.g. 2.5 or 1.2-1.")],
    instance_type: Annotated[str, typer.Option(help="Training instance type, e.g. ml.g5.xlarge.")],
    region: RegionOption = "us-east-1",
    py_version: Annotated[str | None, typer.Option(help="Python version tag, e.g. py311.")] = None,
    base_framework_version: Annotated[
        str | None, typer.Option(help="huggingface only: the base framework, e.g. pytorch2.1.0.")
    ] = None,
) -> None:
    """Print the framework training image URI for a framework, version, instance type and region."""
    from sagepush import images
    from sagepush.errors import InputError

    try:
        uri = images.training_image_uri(
            framework,
            version,
            region=region,
            instance_type=instance_type,
            py_version=py_version,
            base_framework_version=base_framework_version,
        )
    except InputError as exc:
        _fail(str(exc))
    typer.echo(uri)


@app.command()
def invoke(
    function: Annotated[str, typer.Argument(help="Logical id in template.yaml, e.g. SubmitFunction.")],
    event: Annotated[
        Path, typer.Option("-e", "--event", help="JSON event file, e.g. events/submit.json.", exists=True)
    ],
) -> None:
    """Run a function's handler in this process with the environment template.yaml gives it (no Docker).

    The template is deployed into a local moto server first, so the environment's references resolve to real
    (local) resources.
    """
    from sagepush_cli.local.stack import LocalStack

    payload = json.loads(event.read_text())
    with LocalStack() as stack:
        if function not in stack.functions:
            _fail(f"{function!r} is not a function in template.yaml (one of {', '.join(sorted(stack.functions))})")
        try:
            result = stack.invoke(function, payload)
        except Exception as exc:
            _print_json({"errorType": type(exc).__name__, "errorMessage": str(exc)})
            raise typer.Exit(EXIT_FAILED) from exc
    _print_json(result)


@app.command()
def status(
    job: Annotated[
        str | None, typer.Argument(help="One job to show in detail (default: a table of recent jobs).")
    ] = None,
    project: Annotated[str | None, typer.Option(help="Only this project's jobs.")] = None,
    limit: Annotated[int, typer.Option(min=1, max=1000, help="How many recent jobs to list.")] = 20,
    stack: StackOption = None,
    local: LocalOption = False,
    region: AwsRegionOption = None,
    profile: ProfileOption = None,
    json_output: JsonOption = False,
) -> None:
    """Show recent jobs from the ledger (newest first), or one job in detail: its transitions, metrics and alerts.

    Exit codes: 0 shown; 1 AWS refused; 2 no such stack or job.
    """
    from sagepush.ledger import DynamoDBLedger
    from sagepush_cli import follow
    from sagepush_cli.push import deployed_output

    session = _session(region, profile, local=local)
    with _readable_errors():
        table = deployed_output(
            session, "LedgerTableName", stack=_stack(stack, local=local), samconfig=Path("samconfig.toml")
        )
        ledger = DynamoDBLedger(table, dynamodb=session.client("dynamodb", config=aws.config("dynamodb")))
        if job is None:
            entries = ledger.project_jobs(project, limit=limit) if project else ledger.recent_jobs(limit=limit)
            rows = _grouped_by_push([_ledger_row(entry) for entry in entries])
        else:
            entry = ledger.get(job)
            view = follow.describe(session.client("sagemaker", config=aws.config("sagemaker")), job)
    if job is None:
        if json_output:
            _print_json(rows)
        else:
            _print_jobs(rows)
        return
    if entry is None and view is None:
        _fail(f"no job named {job!r} in the ledger or in SageMaker ({session.region_name or 'default region'})")
    detail = {**(_ledger_row(entry) if entry else {"job_name": job}), "job": view.as_dict() if view else None}
    if entry is not None:
        detail["alerts"] = {key: dict(value) for key, value in entry.alerts.items()}
        detail["failure_reason"] = entry.failure_reason
    if json_output:
        _print_json(detail)
    else:
        _print_job(detail)


def _ledger_row(entry: Any) -> dict[str, Any]:
    return {
        "job_name": entry.job_name,
        "push": entry.push,
        "project": entry.project,
        "status": entry.status,
        "secondary_status": entry.secondary_status,
        "created_at": entry.created_at,
        "commit": entry.source.get("commit"),
        "branch": entry.source.get("branch"),
        "code_uri": entry.code_uri,
    }


def _grouped_by_push(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The rows newest first, each `[strategy]` push's jobs together in matrix order where its newest job stands."""
    pushes: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        if row["push"]:
            pushes.setdefault(row["push"], []).append(row)
    grouped: list[dict[str, Any]] = []
    for row in rows:
        if not row["push"]:
            grouped.append(row)
        elif row is pushes[row["push"]][0]:
            grouped += sorted(pushes[row["push"]], key=lambda job: int(job["job_name"].rsplit("-", 1)[1]))
    return grouped


def _print_jobs(rows: list[dict[str, Any]]) -> None:
    from collections import Counter

    from rich.console import Console
    from rich.table import Table

    if not rows:
        typer.echo("no jobs yet")
        return
    table = Table(box=None, header_style="bold")
    table.add_column("job", no_wrap=True, min_width=max(len(row["job_name"]) + 4 for row in rows))
    for column in ("status", "created", "commit", "branch"):
        table.add_column(column)
    shown_push = None
    for row in rows:
        if row["push"] and row["push"] != shown_push:
            jobs = [other for other in rows if other["push"] == row["push"]]
            ended = Counter(job["status"] for job in jobs)
            counts = ", ".join(f"{count} {status}" for status, count in sorted(ended.items()))
            table.add_row(f"[bold]push {row['push']}[/]", f"{len(jobs)} jobs: {counts}", "", "", "")
        shown_push = row["push"]
        status_text = (
            row["status"]
            if row["status"] == row["secondary_status"]
            else f"{row['status']} ({row['secondary_status']})"
        )
        table.add_row(
            f"  {row['job_name']}" if row["push"] else row["job_name"],
            status_text,
            (row["created_at"] or "")[:19],
            (row["commit"] or "")[:12],
            row["branch"] or "",
        )
    Console(highlight=False).print(table)


def _print_job(detail: dict[str, Any]) -> None:
    from rich.console import Console

    from sagepush.events import TrainingJobStatus

    out = Console(highlight=False, soft_wrap=True)
    view = detail.get("job") or {}
    out.print(f"[bold]{detail['job_name']}[/]  {view.get('status') or detail.get('status')}")
    for label, key in (("project", "project"), ("created", "created_at"), ("commit", "commit"), ("code", "code_uri")):
        if detail.get(key):
            out.print(f"  {label:<8} {detail[key]}", markup=False)
    for transition in view.get("transitions", []):
        out.print(
            f"  {(transition['start'] or '')[11:19]}  {transition['status']:<20} {transition['message']}", markup=False
        )
    for name, value in view.get("metrics", {}).items():
        out.print(f"  metric   {name} = {value:g}", markup=False)
    if view.get("model_uri") and view.get("status") == TrainingJobStatus.COMPLETED:
        out.print(f"  model    {view['model_uri']}", markup=False)
    reason = view.get("failure_reason") or detail.get("failure_reason")
    if reason:
        out.print(f"  failure  {reason}", markup=False)
    for key, alert in sorted(detail.get("alerts", {}).items()):
        out.print(f"  alert    {key}: {alert.get('state', '')}", markup=False)


@app.command()
def logs(
    job: JobArgument,
    follow_logs: Annotated[
        bool, typer.Option("--follow", "-f", help="Keep printing new lines until the job ends.")
    ] = False,
    lines: Annotated[int, typer.Option(min=0, help="Print only the last N lines first (0: all of them).")] = 50,
    local: LocalOption = False,
    region: AwsRegionOption = None,
    profile: ProfileOption = None,
    json_output: Annotated[bool, typer.Option("--json", help="Print one JSON object per line.")] = False,
    poll_seconds: PollOption = 2.0,
) -> None:
    """Print a training job's log (CloudWatch Logs, every host), optionally following it until the job ends.

    Exit codes: 0 printed (with --follow: the job completed); 1 AWS refused, or with --follow the job failed or
    stopped; 2 no such job.
    """
    import time

    from sagepush_cli import follow

    session = _session(region, profile, local=local)

    def emit(events: list[dict[str, Any]]) -> None:
        for event in events:
            message = event["message"].rstrip("\n")
            if json_output:
                record = {"timestamp": event.get("timestamp"), "stream": event["logStreamName"], "message": message}
                sys.stdout.write(json.dumps(record) + "\n")
            else:
                typer.echo(message)
        sys.stdout.flush()

    with _readable_errors():
        sagemaker = session.client("sagemaker", config=aws.config("sagemaker"))
        reader = follow.LogReader(session.client("logs", config=aws.config("logs")), job)
        events = reader.new_events()
        view = follow.describe(sagemaker, job)
        if view is None and not events:
            _fail(f"no training job named {job!r} ({session.region_name or 'default region'})")
        emit(events[-lines:] if lines else events)
        while follow_logs and view is not None and not view.finished:
            time.sleep(poll_seconds)  # polling CloudWatch Logs and SageMaker: the job runs elsewhere
            view = follow.describe(sagemaker, job)
            emit(reader.new_events())
        if follow_logs:
            emit(reader.new_events())  # the lines written between the last read and the end
    if follow_logs and view is not None and not view.completed:
        reason = (view.failure_reason or "").partition("\n")[0]
        typer.echo(f"{job} {view.status}" + (f": {reason}" if reason else ""), err=True)
        raise typer.Exit(EXIT_FAILED)


@app.command()
def stop(
    job: JobArgument,
    local: LocalOption = False,
    region: AwsRegionOption = None,
    profile: ProfileOption = None,
    json_output: JsonOption = False,
) -> None:
    """Stop a running training job (SageMaker sends SIGTERM, then SIGKILL); the job ends as Stopped.

    Exit codes: 0 stopping; 1 AWS refused (e.g. the job has already ended); 2 no such job.
    """
    from sagepush_cli import follow

    session = _session(region, profile, local=local)
    with _readable_errors():
        sagemaker = session.client("sagemaker", config=aws.config("sagemaker"))
        view = follow.describe(sagemaker, job)
        if view is None:
            _fail(f"no training job named {job!r} ({session.region_name or 'default region'})")
        if view.finished:
            _fail(f"{job} has already ended ({view.status})", EXIT_FAILED)
        sagemaker.stop_training_job(TrainingJobName=job)
    if json_output:
        _print_json({"job_name": job, "stopping": True})
    else:
        typer.echo(f"stopping {job}")


GroupOption = Annotated[
    str | None,
    typer.Option(
        "--group",
        help="The Model Package Group (default: the manifest's \\[model] group, else the project's name).",
    ),
]
VersionArgument = Annotated[
    str, typer.Argument(help="A version number of the group, as `sagepush models` lists it, or a model package ARN.")
]


@app.command()
def models(
    project: Annotated[
        str | None,
        typer.Argument(help="The project whose models to list (default: the current directory's, as push names it)."),
    ] = None,
    group: GroupOption = None,
    limit: Annotated[int, typer.Option(min=1, max=1000, help="How many of the newest versions to list.")] = 20,
    local: LocalOption = False,
    region: AwsRegionOption = None,
    profile: ProfileOption = None,
    json_output: JsonOption = False,
) -> None:
    """List the versions of a project's model (its Model Package Group), newest first: status, metrics, commit, job.

    Exit codes: 0 listed; 1 AWS refused; 2 no such group.
    """
    from sagepush_cli import models as registered

    session = _session(region, profile, local=local)
    with _readable_errors():
        name = registered.default_group(project, group, Path.cwd())
        versions = registered.list_versions(
            session.client("sagemaker", config=aws.config("sagemaker")), name, limit=limit
        )
    if json_output:
        _print_json([version.as_dict() for version in versions])
    else:
        _print_models(name, versions)


def _print_models(group: str, versions: list[Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    from sagepush.registry import APPROVED, REJECTED

    if not versions:
        typer.echo(f"no versions in model package group {group!r} yet")
        return
    colours = {APPROVED: "green", REJECTED: "red"}
    table = Table(box=None, header_style="bold", title=f"model package group {group}", title_justify="left")
    for column in ("version", "status", "metrics", "commit", "job", "created"):
        table.add_column(column, no_wrap=column in ("version", "status"), overflow="fold")
    for version in versions:
        table.add_row(
            str(version.version),
            f"[{colours.get(version.status, 'yellow')}]{version.status}[/]",
            "\n".join(f"{name}={value:g}" for name, value in sorted(version.metrics.items())),
            (version.commit or "")[:12],
            version.job or "",
            (version.created or "")[:16].replace("T", " "),
        )
    Console(highlight=False).print(table)


@app.command()
def approve(
    version: VersionArgument,
    group: GroupOption = None,
    local: LocalOption = False,
    region: AwsRegionOption = None,
    profile: ProfileOption = None,
    json_output: JsonOption = False,
) -> None:
    """Approve a registered model version; when its manifest names an \\[endpoint], approval deploys it there.

    A version already Approved is left as it is.
    Exit codes: 0 approved (or already so); 1 AWS refused; 2 no such version.
    """
    _set_approval(version, group, "Approved", None, local=local, region=region, profile=profile, json=json_output)


@app.command()
def reject(
    version: VersionArgument,
    reason: Annotated[str, typer.Option("--reason", help="Why: kept as the version's approval description.")],
    group: GroupOption = None,
    local: LocalOption = False,
    region: AwsRegionOption = None,
    profile: ProfileOption = None,
    json_output: JsonOption = False,
) -> None:
    """Reject a registered model version, with the reason; a rejected version is not deployed.

    A version already Rejected is left as it is.
    Exit codes: 0 rejected (or already so); 1 AWS refused; 2 no such version.
    """
    _set_approval(version, group, "Rejected", reason, local=local, region=region, profile=profile, json=json_output)


def _set_approval(
    version: str,
    group: str | None,
    status: str,
    reason: str | None,
    *,
    local: bool,
    region: str | None,
    profile: str | None,
    json: bool,
) -> None:
    """Set VERSION's approval status unless it has it already; print what was done."""
    from sagepush.registry import APPROVED
    from sagepush_cli import models as registered

    session = _session(region, profile, local=local)
    with _readable_errors():
        name = (group or "") if version.startswith("arn:") else registered.default_group(None, group, Path.cwd())
        found = registered.find_version(session.client("sagemaker", config=aws.config("sagemaker")), name, version)
        updated = found.status != status
        if updated:
            registered.set_status(
                session.client("sagemaker", config=aws.config("sagemaker")), found, status, reason=reason
            )
    label = f"{found.group} version {found.version}"
    if json:
        _print_json({**found.as_dict(), "status": status, "previous_status": found.status, "updated": updated})
    elif not updated:
        typer.echo(f"{label} is already {status}: nothing changed")
    elif status == APPROVED:
        deploys = f"; endpoint {found.endpoint} deploys it" if found.endpoint else ""
        typer.echo(f"approved {label} (was {found.status}){deploys}")
    else:
        typer.echo(f"rejected {label} (was {found.status}): {reason}")


@app.command()
def predict(
    endpoint: Annotated[str, typer.Argument(help="The endpoint's name, e.g. the \\[endpoint] name of the manifest.")],
    body: Annotated[
        str, typer.Option("--body", metavar="FILE", help="The request body: a file, or - to read standard input.")
    ],
    content_type: Annotated[
        str, typer.Option("--content-type", help="The body's MIME type, as the model's input_fn takes it.")
    ] = "text/csv",
    accept: Annotated[
        str | None, typer.Option("--accept", help="The MIME type to answer in (default: the model's choice).")
    ] = None,
    local: LocalOption = False,
    region: AwsRegionOption = None,
    profile: ProfileOption = None,
) -> None:
    """Send a request to an endpoint (InvokeEndpoint) and print the model's answer as it is.

    A model that answers with an error (ModelError) has its message printed, and its log stream named.
    Exit codes: 0 answered; 1 the model answered with an error, or AWS refused; 2 no such endpoint, or no body.
    """
    from sagepush_cli import models as registered

    try:
        data = sys.stdin.buffer.read() if body == "-" else Path(body).read_bytes()
    except OSError as exc:
        _fail(f"--body: {body}: {exc.strerror or exc}")
    session = _session(region, profile, local=local)
    with _readable_errors():
        runtime = session.client("sagemaker-runtime", config=aws.config("sagemaker-runtime"))
        try:
            answer = registered.predict(runtime, endpoint, data, content_type=content_type, accept=accept)
        except registered.ModelAnswerError as exc:
            if exc.log_stream:
                typer.echo(f"the model's log: {exc.log_stream}", err=True)
            _fail(str(exc), EXIT_FAILED)
    typer.echo(answer.body, nl=False)
    if sys.stdout.isatty() and not answer.body.endswith(b"\n"):
        typer.echo("")


@app.command()
def init(
    path: Annotated[
        Path, typer.Argument(help="The project directory (default: the current one).", file_okay=False)
    ] = Path(),
    project: Annotated[str | None, typer.Option(help="Project name (default: the directory name).")] = None,
    framework: Annotated[
        str | None, typer.Option(help="pytorch, tensorflow, sklearn, xgboost or huggingface (default: detected).")
    ] = None,
    entry_point: Annotated[
        str | None,
        typer.Option(
            help="The script that trains, relative to PATH (default: train.py, main.py, training.py or the "
            "only script)."
        ),
    ] = None,
    workflow: Annotated[
        bool, typer.Option(help="Also write .github/workflows/sagepush.yml at the repository root.")
    ] = True,
    cli_source: Annotated[
        str | None,
        typer.Option(
            envvar="SAGEPUSH_CLI_SOURCE",
            help="The git repository (https) the workflow installs the sagepush CLI from "
            "(default: the one this sagepush was installed from).",
        ),
    ] = None,
    cli_commit: Annotated[
        str | None,
        typer.Option(
            envvar="SAGEPUSH_CLI_COMMIT",
            help="The full 40-hex commit of that repository the workflow installs (default: this sagepush's).",
        ),
    ] = None,
    container: Annotated[
        bool,
        typer.Option(
            "--container",
            help="The project trains in its own image, built from its Dockerfile: the workflow builds it, pushes it "
            "to --image-repository and pushes the manifest pinned to the image's digest.",
        ),
    ] = False,
    image_repository: Annotated[
        str | None,
        typer.Option(help="With --container: the ECR repository URI, no tag (the stack's GitHubImageRepositoryUri)."),
    ] = None,
    force: Annotated[bool, typer.Option("--force", help="Replace files that exist.")] = False,
    json_output: JsonOption = False,
) -> None:
    """Write a commented sagepush.toml (the framework read from requirements.txt or pyproject.toml, else from what the
    scripts import; with --container, the project's own image) and a GitHub Actions workflow that pushes every commit
    on main, installing the CLI from a git repository at a pinned commit.

    Exit codes: 0 written; 2 a file exists (nothing is written), the project is not understood, or the CLI's
    source for the workflow is not known (pass --cli-source and --cli-commit).
    """
    from sagepush import naming
    from sagepush_cli import init as initialising
    from sagepush_cli.project import project_name
    from sagepush_cli.push import read_git_state

    directory = path.resolve()
    with _readable_errors():
        if not directory.is_dir():
            _fail(f"{path}: is not a directory")
        name = naming.check_project(project or project_name(directory), where="--project")
        if container and (framework or entry_point):
            _fail("--container: the image runs its own entrypoint; --framework and --entry-point do not apply")
        if not container and image_repository:
            _fail("--image-repository: applies only with --container")
        if container and not image_repository:
            _fail("--image-repository: is required with --container (the ECR repository the workflow pushes to)")
        chosen = None
        if container:
            repository = initialising.image_repository(image_repository or "", directory)
            manifest = initialising.container_manifest_text(repository)
        else:
            chosen = initialising.plan(directory, project=name, framework=framework, entry_point=entry_point)
            manifest = initialising.manifest_text(chosen)
        root = None  # where the workflow goes: the repository's root, else the project directory
        pinned = None  # where the workflow installs the CLI from
        text = None
        if workflow:
            pinned = initialising.cli_source(cli_source, cli_commit, origin=initialising.installed_origin())
            git = read_git_state(directory)
            root = git.root if git else directory
            if container:
                context = directory.relative_to(root).as_posix() if directory != root else "."
                text = initialising.container_workflow_text(pinned, name, context)
            else:
                text = initialising.workflow_text(pinned, name)
        written = initialising.write(directory, manifest=manifest, workflow=text, workflow_root=root, force=force)
    if json_output:
        document = {"written": [str(p) for p in written], "framework": chosen.framework if chosen else None}
        _print_json({**document, "project": name, "cli_source": pinned.requirement if pinned else None})
        return
    for written_path in written:
        typer.echo(f"wrote {written_path}")
    if pinned:
        typer.echo(f"the workflow installs the CLI from {pinned.requirement}")
    if chosen is None:
        typer.echo(
            f"the image from {path}/Dockerfile, kept in {image_repository}; check it with `sagepush render {path}`"
        )
        return
    source = f" (from {chosen.detected_from})" if chosen.detected_from else " (no framework found: edit it)"
    typer.echo(
        f"framework {chosen.framework} {chosen.framework_version}{source}; check it with `sagepush render {path}`"
    )


@local_app.command("demo")
def local_demo(
    project_dir: Annotated[
        Path, typer.Argument(help="The training project to push: a directory, archive or .py script.", exists=True)
    ] = Path("examples/sklearn-iris"),
    project: Annotated[str | None, typer.Option(help="Project name (default: the directory or file name).")] = None,
    predict: Annotated[
        str | None,
        typer.Option(
            help="A CSV row to ask the endpoint for, once it serves the model registered from the job ([model] and "
            "[endpoint] in the manifest)."
        ),
    ] = None,
    json_output: JsonOption = False,
    verbose: Annotated[bool, typer.Option("--verbose", help="Show the functions' own log lines.")] = False,
) -> None:
    """Start the local stack, push PROJECT_DIR, follow its training job to the end and print how it went; with
    --predict, wait for the endpoint to serve the registered model and print its prediction.

    Exits 0 only when the job completed (and, with --predict, the endpoint answered).
    """
    import contextlib
    import os

    from rich.console import Console

    from sagepush_cli import follow
    from sagepush_cli.local import demo
    from sagepush_cli.local.stack import LocalStack

    console = Console(stderr=True)
    _quiet_local(verbose)
    # stdout carries only the summary: the handlers' log lines (Powertools writes to stdout) go to stderr.
    with contextlib.redirect_stdout(sys.stderr):
        if not verbose:
            os.environ.setdefault("POWERTOOLS_LOG_LEVEL", "WARNING")
        with console.status("starting the local stack (moto server + template.yaml)"):
            stack = LocalStack(keep_staged_code=True).start()
        try:
            console.print(f"local stack up at {stack.endpoint}")
            with console.status(f"training {project_dir} on the local stack"):
                result = demo.run(
                    stack,
                    project_dir,
                    project=project,
                    metadata={"sagepush-commit": "local", "sagepush-branch": "demo"},
                    predict=predict,
                )
        except follow.UploadRefusedError as exc:
            _fail(str(exc))
        except follow.FollowError as exc:
            _fail(str(exc), EXIT_FAILED)
        finally:
            stack.stop()
    if json_output:
        _print_json(result.as_dict())
    else:
        _print_demo(result)
    if not result.completed or (predict is not None and result.prediction is None):
        raise typer.Exit(EXIT_FAILED)


def _quiet_local(verbose: bool) -> None:
    import logging

    if not verbose:
        # A job that does not complete ends its execution in a Fail state, which moto logs as an error.
        logging.getLogger("moto.stepfunctions.parser").setLevel(logging.CRITICAL)


def _print_demo(result: DemoResult) -> None:
    from rich.console import Console

    out = Console(highlight=False, soft_wrap=True)
    job = result.job
    assert job is not None  # demo.run returns at the job's end
    colour = _status_colour(job.status)
    out.print(f"[bold]{job.name}[/]  [{colour}]{job.status}[/] ({job.secondary_status})")
    out.print(f"  created {result.seconds_to_create:.1f}s after the upload; ended after {result.seconds_total:.1f}s")
    reused = " (reused: staged by an earlier push of the same code)" if result.code_reused else ""
    out.print(f"  staged code: {result.code_uri}{reused}")
    out.print("\n[bold]Transitions[/]")
    for transition in job.transitions:
        out.print(_transition_line(*transition), markup=False)
    if job.failure_reason:
        out.print("\n[bold]Failure reason[/]")
        out.print(job.failure_reason, markup=False)
    out.print("\n[bold]Log tail[/]")
    for line in result.log_tail:
        out.print(f"  {line}", markup=False)
    out.print("\n[bold]Final metrics[/]")
    for name, value in job.metrics.items():
        out.print(f"  {name} = {value:g}")
    if not job.metrics:
        out.print("  (none)")
    out.print(f"\n[bold]Model artifact[/]  {job.model_uri or '(none)'}")
    cause = f": {result.execution_error}" if result.execution_error else ""
    out.print(f"[bold]Execution[/]       {result.execution_status}{cause}")
    if result.model is not None:
        model = result.model
        endpoint = f", endpoint {model['endpoint']}" if model["endpoint"] else ""
        out.print(f"[bold]Registered[/]      {model['group']} v{model['version']}: {model['status']}{endpoint}")
    if result.prediction is not None:
        from rich.markup import escape

        out.print(f"[bold]Prediction[/]      {escape(result.prediction)}")
    out.print(f"\n[bold]Alerts received[/] ({len(result.alerts)})")
    for alert in result.alerts:
        out.print(f"  {alert['subject']}", markup=False)


@local_app.command("up")
def local_up(
    port: Annotated[
        int,
        typer.Option(min=0, max=65535, envvar="SAGEPUSH_LOCAL_PORT", help="The port on 127.0.0.1 (0: any free one)."),
    ] = 4599,
    verbose: Annotated[bool, typer.Option("--verbose", help="Show the functions' own log lines.")] = False,
    fresh: Annotated[
        bool,
        typer.Option("--fresh", help="Start empty instead of restoring the state saved when the stack last stopped."),
    ] = False,
) -> None:
    """Run the local stack until Ctrl-C: print its endpoint and resources; jobs pushed to it train for real.

    push, status, logs and stop find it with --local; `sagepush local alerts` follows its alerts.
    Ctrl-C saves its state (buckets, ledger, jobs, executions, logs) in the local cache; the next start restores it.
    Jobs still running are stopped first and come back Stopped; --fresh starts empty.
    A state saved under another moto or Python, or before template.yaml or the parameters changed, starts empty.
    """
    import os
    import signal
    import threading

    from sagepush_cli.local import running, trainer
    from sagepush_cli.local.stack import LocalStack, PortInUseError

    stopping = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):  # Ctrl-C or a service manager: stop the stack cleanly
        signal.signal(signum, lambda *_: stopping.set())
    _quiet_local(verbose)
    if not verbose:
        os.environ.setdefault("POWERTOOLS_LOG_LEVEL", "WARNING")
    stack = LocalStack(keep_staged_code=True, port=port, persist=True, fresh=fresh)
    try:
        stack.start()
    except PortInUseError as exc:
        _fail(f"--port: {exc}: another `sagepush local up`? (--port 0 picks a free port)")
    try:
        with running.announced(stack.endpoint, stack.region, stack.stack_name) as announced:
            typer.echo(f"sagepush local stack at {stack.endpoint} (region {stack.region})")
            _state_note(stack.state_note)
            typer.echo(
                f"  push, status, logs and stop with --local use it; other AWS clients: export {_exports(announced)}"
            )
            for key, value in sorted(stack.outputs.items()):
                typer.echo(f"  {key:<26} {value}")
            typer.echo(f"  jobs and their logs under {trainer.home() / 'jobs'}; Ctrl-C stops the stack")
            stopping.wait()
            typer.echo("stopping the local stack (running jobs are stopped first)", err=True)
    finally:
        stack.stop()
        _state_note(stack.saved_note, err=True)


def _state_note(note: Note | None, *, err: bool = False) -> None:
    """One line about the local stack's saved state: a warning on stderr, else indented under the banner."""
    if note is not None:
        typer.echo(f"warning: {note.text}" if note.warning else f"  {note.text}", err=err or note.warning)


def _exports(found: Any) -> str:
    return " ".join(f"{name}={value}" for name, value in found.environment().items())


@local_app.command("stop")
def local_stop(
    job_name: Annotated[str, typer.Argument(help="The training job to stop.")],
) -> None:
    """Stop a training job on the running local stack (StopTrainingJob: SIGTERM, then SIGKILL after the grace).

    The same as `sagepush stop JOB --local`.
    """
    stop(job_name, local=True, region=None, profile=None, json_output=False)


@local_app.command("alerts")
def local_alerts(
    json_output: Annotated[bool, typer.Option("--json", help="Print each alert's JSON document on one line.")] = False,
    limit: Annotated[
        int | None, typer.Option(min=1, help="Stop after this many alerts (default: follow until Ctrl-C).")
    ] = None,
) -> None:
    """Follow the running local stack's alerts (an SQS queue subscribed to AlertsTopic): one line per alert."""
    import uuid

    found = _running_local_stack()
    session = _session(None, None, local=True)
    with _readable_errors():
        sqs, sns = session.client("sqs", config=aws.config("sqs")), session.client("sns", config=aws.config("sns"))
        topic = _local_output(session, found.stack_name, "AlertsTopicArn")
        url = sqs.create_queue(QueueName=f"sagepush-local-alerts-{uuid.uuid4().hex[:8]}")["QueueUrl"]
        arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        subscription = sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=arn)["SubscriptionArn"]
        typer.echo(f"following the alerts of {found.stack_name} at {found.endpoint}; Ctrl-C stops", err=True)
        shown = 0
        try:
            while limit is None or shown < limit:
                for message in sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=5).get(
                    "Messages", []
                ):
                    sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
                    typer.echo(_alert_line(json.loads(message["Body"]), json_output=json_output))
                    shown += 1
        except KeyboardInterrupt:
            pass
        finally:
            sns.unsubscribe(SubscriptionArn=subscription)
            sqs.delete_queue(QueueUrl=url)


def _local_output(session: Any, stack_name: str, output: str) -> str:
    from sagepush_cli.push import deployed_output

    return deployed_output(session, output, stack=stack_name, samconfig=Path("samconfig.toml"))


def _alert_line(envelope: dict[str, Any], *, json_output: bool) -> str:
    """One alert as `local alerts` prints it: its time, job, status and the first line of its reason."""
    text = envelope.get("Message") or ""
    if json_output:
        return " ".join(text.split("\n"))
    try:
        document = json.loads(text)
    except ValueError:
        return envelope.get("Subject") or text.partition("\n")[0]
    reason = (document.get("failure_reason") or "").partition("\n")[0]
    fields = [document.get("time") or "", document.get("job_name") or document.get("project") or "", document["status"]]
    return "  ".join(str(field) for field in fields) + (f"  {reason}" if reason else "")


local_data_app = typer.Typer(help="Training data on the running local stack.")
local_app.add_typer(local_data_app, name="data")


@local_data_app.command("put")
def local_data_put(
    directory: Annotated[Path, typer.Argument(help="The files to upload (a directory, or one file).", exists=True)],
    uri: Annotated[
        str | None,
        typer.Argument(help="Where: s3://bucket/prefix/ (default: the artifact bucket's data/<project>/)."),
    ] = None,
    project: Annotated[
        str | None, typer.Option(help="The project the data is for (default: the directory name).")
    ] = None,
) -> None:
    """Upload training data to the running local stack; print the S3 URI to name as a channel in sagepush.toml."""
    from sagepush import naming
    from sagepush_cli.project import project_name

    found = _running_local_stack()
    session = _session(None, None, local=True)
    with _readable_errors():
        if uri is None:
            bucket = _local_output(session, found.stack_name, "ArtifactBucketName")
            name = naming.check_project(project or project_name(directory.resolve()), where="--project")
            uri = f"s3://{bucket}/data/{name}/"
        if not uri.startswith("s3://") or "/" not in uri.removeprefix("s3://"):
            _fail(f"{uri}: is not an s3://bucket/prefix/ URI")
        bucket, _, prefix = uri.removeprefix("s3://").partition("/")
        prefix = prefix if not prefix or prefix.endswith("/") else f"{prefix}/"
        files = [directory] if directory.is_file() else sorted(p for p in directory.rglob("*") if p.is_file())
        s3 = session.client("s3", config=aws.config("s3"))
        for file in files:
            relative = file.name if directory.is_file() else file.relative_to(directory).as_posix()
            s3.upload_file(str(file), bucket, prefix + relative)
    typer.echo(f"uploaded {len(files)} file(s) to s3://{bucket}/{prefix}")
    typer.echo(f'name it as a channel in sagepush.toml: channels = {{ train = "s3://{bucket}/{prefix}" }}')


@local_app.command("prune")
def local_prune(
    older_than: Annotated[
        str | None,
        typer.Option(
            "--older-than",
            help="Remove what was last used longer ago than this: 7d, 12h, 1d12h, 90m or seconds "
            "(default: $SAGEPUSH_LOCAL_PRUNE_AFTER, else 14d).",
        ),
    ] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Only print what would be removed.")] = False,
    json_output: JsonOption = False,
) -> None:
    """Remove local job directories, job environments and kept staged code not used lately (never one in use).

    A starting local stack does the same with $SAGEPUSH_LOCAL_PRUNE_AFTER (default 14d; `never` turns it off).
    Exit codes: 0 pruned (or nothing to prune); 1 an entry could not be removed; 2 the age is not a duration.
    """
    import os
    from datetime import UTC, datetime

    from rich.console import Console
    from rich.table import Table

    from sagepush.errors import InputError
    from sagepush_cli.local import cache

    configured = os.environ.get(cache.PRUNE_AFTER_ENV) or cache.DEFAULT_PRUNE_AFTER
    text = older_than or (configured if configured.strip().lower() != cache.NEVER else cache.DEFAULT_PRUNE_AFTER)
    try:
        seconds = cache.parse_age(text, "--older-than" if older_than else cache.PRUNE_AFTER_ENV)
    except InputError as exc:
        _fail(str(exc))
    if seconds is None:
        _fail("--older-than: 'never' prunes nothing (give an age such as 7d)")
    pruned = cache.prune(older_than=seconds, dry_run=dry_run)
    if json_output:
        _print_json(
            {
                "root": str(pruned.root),
                "older_than_seconds": seconds,
                "dry_run": dry_run,
                "removed": [
                    {"kind": e.kind, "path": str(e.path), "last_used": e.last_used, "bytes": e.size}
                    for e in pruned.removed
                ],
                "bytes_freed": pruned.bytes_freed,
                "in_use": [str(path) for path in pruned.in_use],
                "failed": [{"path": str(path), "error": error} for path, error in pruned.failed],
            }
        )
    else:
        out = Console(highlight=False, soft_wrap=True)
        verb = "would remove" if dry_run else "removed"
        if pruned.removed:
            table = Table(title=f"{verb} (unused for over {text})")
            table.add_column("kind", no_wrap=True)
            table.add_column("path", overflow="fold")
            table.add_column("last used (UTC)", no_wrap=True)
            table.add_column("size", justify="right", no_wrap=True)
            for entry in pruned.removed:
                used = datetime.fromtimestamp(entry.last_used, UTC).strftime("%Y-%m-%d %H:%M")
                table.add_row(entry.kind, str(entry.path.relative_to(pruned.root)), used, _size(entry.size))
            out.print(table)
        freed = "would free" if dry_run else "freed"
        out.print(f"{verb} {len(pruned.removed)} from {pruned.root}; {freed} {_size(pruned.bytes_freed)}")
        for path in pruned.in_use:
            out.print(f"  kept {path.relative_to(pruned.root)}: in use")
    for path, error in pruned.failed:
        typer.echo(f"error: could not remove {path}: {error}", err=True)
    if pruned.failed:
        raise typer.Exit(EXIT_FAILED)


def _size(count: int) -> str:
    """Bytes as people read them: 812 bytes, 3.4 MiB."""
    if count < 1024:
        return f"{count} bytes"
    value = float(count)
    for unit in ("KiB", "MiB", "GiB", "TiB"):
        value /= 1024
        if value < 1024 or unit == "TiB":
            return f"{value:.1f} {unit}"
    raise AssertionError("unreachable")


def main() -> None:
    """Entry point for `python -m sagepush_cli`."""
    app()
