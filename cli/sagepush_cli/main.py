"""The `sagepush` command: every subcommand imports what it needs when it runs, so `--help` stays instant."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer

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


def _fail(message: str, code: int = EXIT_INPUT) -> NoReturn:
    from rich.console import Console

    Console(stderr=True).print(f"[bold red]error:[/] {message}", highlight=False, markup=True, soft_wrap=True)
    raise typer.Exit(code)


def _print_json(document: Any) -> None:
    sys.stdout.write(json.dumps(document, indent=2, sort_keys=False, default=str) + "\n")


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
    region: Annotated[str | None, typer.Option(envvar="AWS_REGION", help="AWS region.")] = None,
    profile: Annotated[str | None, typer.Option(envvar="AWS_PROFILE", help="AWS named profile.")] = None,
    json_output: JsonOption = False,
) -> None:
    """Archive PATH (git HEAD, or the directory), check it as staging will, and upload it to the ingest bucket.

    In a git repository the commit at HEAD is pushed, honouring export-ignore; uncommitted changes need --worktree.
    Secrets, links and bad manifests are refused here, before anything is uploaded.
    Exit codes: 0 uploaded, 2 the input is wrong, 1 AWS refused.
    """
    import boto3
    from botocore.exceptions import ProfileNotFound

    from sagepush.errors import InputError
    from sagepush_cli import push as pushing

    try:
        session = boto3.Session(profile_name=profile, region_name=region)
        pushed = pushing.push(
            path,
            session=session,
            project=project,
            bucket=bucket,
            stack=stack,
            settings=settings or (),
            worktree=worktree,
            progress=sys.stderr.isatty() and not json_output,
        )
    except ProfileNotFound as exc:
        _fail(f"--profile: {exc}")
    except InputError as exc:
        _fail(str(exc))
    except pushing.PushRefusedError as exc:
        _fail(str(exc), EXIT_FAILED)
    if json_output:
        _print_json(pushed.summary())
        return
    commit = pushed.metadata.get("sagepush-commit")
    typer.echo(f"pushed {pushed.uri} ({pushed.size} bytes{f', commit {commit[:12]}' if commit else ''})")
    typer.echo(f"job {pushed.job_name_prefix}…")
    if pushed.left_out:
        typer.echo(f"  left out {len(pushed.left_out)} untracked file(s); --worktree pushes them", err=True)


@app.command()
def render(
    path: Annotated[
        Path, typer.Argument(help="A project directory, an archive (.tar.gz .tgz .tar .zip) or a .py script.")
    ],
    region: RegionOption = "us-east-1",
    project: Annotated[str | None, typer.Option(help="Project name (default: the directory or file name).")] = None,
    role: Annotated[str | None, typer.Option(help="Execution role ARN (default: a placeholder).")] = None,
    output_path: Annotated[str, typer.Option(help="Deployment output path.")] = "s3://sagepush-artifacts/output/",
    json_output: JsonOption = False,
) -> None:
    """Print the CreateTrainingJob request a push of PATH would send (a dry run: no AWS call)."""
    from sagepush.errors import InputError
    from sagepush_cli import project as projects

    try:
        rendered = projects.render(path, region=region, project=project, role=role, output_path=output_path)
    except InputError as exc:
        _fail(str(exc))
    if json_output:
        _print_json(rendered)
        return
    from rich.console import Console
    from rich.syntax import Syntax

    console = Console()
    console.print(
        f"[bold]{rendered['TrainingJobName']}[/]  (code {rendered['HyperParameters']['sagemaker_submit_directory']})"
    )
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


@local_app.command("demo")
def local_demo(
    project_dir: Annotated[
        Path, typer.Argument(help="The training project to push: a directory, archive or .py script.", exists=True)
    ] = Path("examples/sklearn-iris"),
    project: Annotated[str | None, typer.Option(help="Project name (default: the directory or file name).")] = None,
    json_output: JsonOption = False,
    verbose: Annotated[bool, typer.Option("--verbose", help="Show the functions' own log lines.")] = False,
) -> None:
    """Start the local stack, push PROJECT_DIR, follow its training job to the end and print how it went.

    Exits 0 only when the job completed.
    """
    import contextlib
    import os

    from rich.console import Console

    from sagepush_cli.local import demo
    from sagepush_cli.local.stack import LocalStack

    console = Console(stderr=True)
    _quiet_local(verbose)
    # stdout carries only the summary: the handlers' log lines (Powertools writes to stdout) go to stderr.
    with contextlib.redirect_stdout(sys.stderr):
        if not verbose:
            os.environ.setdefault("POWERTOOLS_LOG_LEVEL", "WARNING")
        with console.status("starting the local stack (moto server + template.yaml)"):
            stack = LocalStack().start()
        try:
            console.print(f"local stack up at {stack.endpoint}")
            with console.status(f"training {project_dir} on the local stack"):
                result = demo.run(
                    stack,
                    project_dir,
                    project=project,
                    metadata={"sagepush-commit": "local", "sagepush-branch": "demo"},
                )
        finally:
            stack.stop()
    if json_output:
        _print_json(result.as_dict())
    else:
        _print_demo(result)
    if not result.completed:
        raise typer.Exit(EXIT_FAILED)


def _quiet_local(verbose: bool) -> None:
    import logging

    if not verbose:
        # A job that does not complete ends its execution in a Fail state, which moto logs as an error.
        logging.getLogger("moto.stepfunctions.parser").setLevel(logging.CRITICAL)


def _print_demo(result: Any) -> None:
    from rich.console import Console

    out = Console(highlight=False, soft_wrap=True)
    colour = {"Completed": "green", "Failed": "red"}.get(result.status or "", "yellow")
    out.print(f"[bold]{result.job_name}[/]  [{colour}]{result.status}[/] ({result.secondary_status})")
    out.print(f"  created {result.seconds_to_create:.1f}s after the upload; ended after {result.seconds_total:.1f}s")
    out.print(f"  staged code: {result.code_uri}")
    out.print("\n[bold]Transitions[/]")
    for transition in result.transitions:
        out.print(f"  {transition.start[11:23]}  {transition.status:<20} {transition.message.splitlines()[0]}")
    if result.failure_reason:
        out.print("\n[bold]Failure reason[/]")
        out.print(result.failure_reason, markup=False)
    out.print("\n[bold]Log tail[/]")
    for line in result.log_tail:
        out.print(f"  {line}", markup=False)
    out.print("\n[bold]Final metrics[/]")
    for name, value in result.metrics.items():
        out.print(f"  {name} = {value:g}")
    if not result.metrics:
        out.print("  (none)")
    out.print(f"\n[bold]Model artifact[/]  {result.model_uri or '(none)'}")
    cause = f": {result.execution_error}" if result.execution_error else ""
    out.print(f"[bold]Execution[/]       {result.execution_status}{cause}")
    out.print(f"\n[bold]Alerts received[/] ({len(result.alerts)})")
    for alert in result.alerts:
        out.print(f"  {alert['subject']}", markup=False)


@local_app.command("up")
def local_up() -> None:
    """Run the local stack until Ctrl-C: print its endpoint and resources; jobs pushed to it train for real."""
    import signal
    import threading

    from sagepush_cli.local import trainer
    from sagepush_cli.local.stack import LocalStack

    stopping = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):  # Ctrl-C or a service manager: stop the stack cleanly
        signal.signal(signum, lambda *_: stopping.set())
    with LocalStack() as stack:
        state = trainer.home() / "endpoint"
        state.parent.mkdir(parents=True, exist_ok=True)
        state.write_text(stack.endpoint)
        typer.echo(f"sagepush local stack at {stack.endpoint} (region {stack.region})")
        typer.echo(
            f"  export AWS_ENDPOINT_URL={stack.endpoint} AWS_ACCESS_KEY_ID=testing AWS_SECRET_ACCESS_KEY=testing"
        )
        for key, value in sorted(stack.outputs.items()):
            typer.echo(f"  {key:<26} {value}")
        typer.echo(f"  jobs and their logs under {trainer.home() / 'jobs'}; Ctrl-C stops the stack")
        try:
            stopping.wait()
            typer.echo("stopping the local stack (running jobs are stopped first)", err=True)
        finally:
            state.unlink(missing_ok=True)


@local_app.command("stop")
def local_stop(
    job_name: Annotated[str, typer.Argument(help="The training job to stop.")],
    endpoint: Annotated[
        str | None, typer.Option(help="The local stack's endpoint (default: the one `sagepush local up` runs).")
    ] = None,
    region: RegionOption = "us-east-1",
) -> None:
    """Stop a training job on the running local stack (StopTrainingJob: SIGTERM, then SIGKILL after the grace)."""
    import boto3
    from botocore.exceptions import ClientError

    from sagepush_cli.local import trainer

    state = trainer.home() / "endpoint"
    url = endpoint or (state.read_text().strip() if state.is_file() else None)
    if not url:
        _fail("no local stack is running (start one with `sagepush local up`, or pass --endpoint)")
    sagemaker = boto3.client(
        "sagemaker",
        endpoint_url=url,
        region_name=region,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )
    try:
        sagemaker.stop_training_job(TrainingJobName=job_name)
    except ClientError as exc:
        _fail(exc.response["Error"]["Message"], EXIT_FAILED)
    typer.echo(f"stopping {job_name}")


def main() -> None:
    """Entry point for `python -m sagepush_cli`."""
    app()
