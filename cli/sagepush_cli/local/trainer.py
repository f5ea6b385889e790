"""The local trainer: each CreateTrainingJob on the local stack runs its staged code for real, as SageMaker would.

moto records a training job and reports it Completed at once. Here each job instead runs on its own thread:
- for each of its InstanceCount hosts, a job directory laid out as the container's /opt/ml (`SAGEMAKER_BASE_DIR`),
  mounted there in a namespace of the host's own where the machine allows it: input/config/{hyperparameters,
  inputdataconfig,resourceconfig}.json, channels downloaded from S3 into input/data/<channel>, model/, output/, code/;
- the staged sourcedir.tar.gz (`sagemaker_submit_directory`) unpacked into code/, and a job virtualenv over the
  framework image's packages and the job's requirements.txt (local/environments.py);
- the `sagemaker-training` toolkit, the framework containers' entrypoint, run on every host at once in that env; each
  host's output is kept in a log file and shipped to CloudWatch Logs (/aws/sagemaker/TrainingJobs, stream
  <job>/algo-<n>-<epoch>);
- model.tar.gz and output.tar.gz, every host's files, uploaded to <S3OutputPath>/<job>/output/;
- DescribeTrainingJob answering with the real status, secondary status and transitions, FailureReason, ModelArtifacts,
  BillableTimeInSeconds and the final values of the job's metric definitions, and a "SageMaker Training Job State
  Change" event put on EventBridge at each transition.
MaxRuntimeInSeconds and StopTrainingJob (which moto lacks) stop a job as `docker stop -t 120` does: SIGTERM to every
process of the job, SIGKILL after the grace period (SAGEPUSH_LOCAL_STOP_GRACE_SECONDS, default 120).
See https://docs.aws.amazon.com/sagemaker/latest/dg/your-algorithms-training-algo-dockerfile.html
"""

from __future__ import annotations

import contextlib
import functools
import json
import logging
import math
import os
import re
import shutil
import signal
import subprocess
import tarfile
import tempfile
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sagepush.events import SecondaryStatus, TrainingJobStatus
from sagepush_cli.follow import LOG_GROUP
from sagepush_cli.local.cache import home as home  # where jobs and environments live; named here by the CLI and tests
from sagepush_cli.local.cache import in_use
from sagepush_cli.local.environments import BuildError, BuildStopped, Environments, JobPython

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping

logger = logging.getLogger(__name__)

GRACE_ENV = "SAGEPUSH_LOCAL_STOP_GRACE_SECONDS"
EVENT_SOURCE = "aws.sagemaker"
EVENT_DETAIL_TYPE = "SageMaker Training Job State Change"
CONTAINER_ROOT = "/opt/ml/"
"""Where a training container's files are; a job directory stands for it here."""
JOB_VENV = ".python"
"""The job's own virtualenv, in its job directory, over the cached environment layers (local/environments.py)."""
HOST = "localhost"
"""The host named in resourceconfig.json: the toolkit waits until every host resolves, and algo-1 never does here."""
DEFAULT_GRACE_SECONDS = 120.0
FAILURE_REASON_LIMIT = 1024
"""DescribeTrainingJob returns the first 1024 characters of the failure description."""

_JOIN_TIMEOUT = 30
_POLL_SECONDS = 0.2
_SHIP_SECONDS = 1.0
_TRACEBACK_LINES = 12
_TOOLKIT_LOG = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d+ sagemaker-training-toolkit ")
_INVOKING = "Invoking script with the following command:"  # the toolkit's last words before the script runs
_REPORTING = "Reporting training FAILURE"  # its first after a script failed

_MESSAGES = {
    SecondaryStatus.STARTING: "Preparing the instances for training",
    SecondaryStatus.DOWNLOADING: "Downloading input data",
    SecondaryStatus.TRAINING: "Training image download completed. Training in progress.",
    SecondaryStatus.UPLOADING: "Uploading generated training model",
    SecondaryStatus.STOPPING: "Stopping the training job",
    SecondaryStatus.COMPLETED: "Training job completed",
    SecondaryStatus.FAILED: "Training job failed",
    SecondaryStatus.STOPPED: "Training job stopped",
    SecondaryStatus.MAX_RUNTIME_EXCEEDED: "Training job stopped: it exceeded MaxRuntimeInSeconds",
}


class JobError(Exception):
    """A job cannot go on; `reason` becomes its FailureReason."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass
class _Run:
    """One job's run: the moto job object it drives and what stopping it needs."""

    name: str
    job: Any
    region: str
    directory: Path
    environment: dict[str, str]
    stop_requested: threading.Event = field(default_factory=threading.Event)
    stop_reason: SecondaryStatus = SecondaryStatus.STOPPED
    done: threading.Event = field(default_factory=threading.Event)
    log_file: Path | None = None
    failed_host: int | None = None
    """The host that failed first, when one did: the other hosts were stopped, and their exit says nothing."""
    holds: contextlib.ExitStack = field(default_factory=contextlib.ExitStack)
    """What the run holds in use while it lasts (its job directory, its environment): pruning leaves them alone."""


@dataclass
class _Host:
    """One of the job's instances: its name, its /opt/ml and its log."""

    name: str
    layout: Path
    sink: _LogSink


class LocalTrainer:
    """Runs the local stack's training jobs; installed on moto's SageMaker API by `install_trainer`."""

    def __init__(self, *, endpoint: str, region: str, root: Path, grace_seconds: float) -> None:
        self.endpoint = endpoint
        self.region = region
        self.root = root
        self.grace_seconds = grace_seconds
        self.runs: dict[str, _Run] = {}
        self.uninstall: Callable[[], None] = self.shutdown
        self._lock = threading.Lock()
        self.environments = Environments(root)

    def __call__(self) -> None:
        """Stop every job and take the trainer off moto's SageMaker API (the stack's undo hook)."""
        self.uninstall()

    # ------------------------------------------------------------------ control
    def start(self, job: Any, *, region: str, environment: Mapping[str, str]) -> None:
        """Mark `job` InProgress/Starting in moto and run it on a new thread."""
        from moto.core.utils import utcnow

        now = utcnow()
        # Every attribute DescribeTrainingJob reads exists from the start: moto serialises the job by iterating its
        # __dict__ on the server's thread, so the run only ever reassigns attributes.
        job.training_job_status = TrainingJobStatus.IN_PROGRESS
        job.secondary_status = SecondaryStatus.STARTING
        job.secondary_status_transitions = []
        job.training_start_time = None
        job.training_end_time = None
        job.last_modified_time = now
        job.final_metric_data_list = None
        job.model_artifacts = None
        job.failure_reason = None
        job.billable_time_in_seconds = None
        job.training_time_in_seconds = None
        job.environment = dict(environment) or None
        run = _Run(
            name=job.training_job_name,
            job=job,
            region=region,
            directory=self.root / "jobs" / job.training_job_name,
            environment=dict(environment),
        )
        thread = threading.Thread(target=self._execute, args=(run,), name=f"train-{run.name}", daemon=True)
        with self._lock:
            self.runs[run.name] = run
            thread.start()  # under the lock, so shutdown() never sees a run whose thread has not started

    def stop(self, name: str, reason: SecondaryStatus = SecondaryStatus.STOPPED) -> bool:
        """Ask a running job to stop (SIGTERM, then SIGKILL after the grace); False when it is not running."""
        run = self.runs.get(name)
        if run is None or run.done.is_set() or run.stop_requested.is_set():
            return False
        run.stop_reason = reason
        run.stop_requested.set()
        return True

    def wait(self, name: str, timeout: float) -> bool:
        """Wait until the job's run has ended; False if it is still running after `timeout` seconds."""
        run = self.runs.get(name)
        return True if run is None else run.done.wait(timeout)

    def shutdown(self) -> None:
        """Stop every running job and wait for the runs to end (bounded by the grace period)."""
        with self._lock:
            runs = list(self.runs.values())
        for run in runs:
            self.stop(run.name)
        for run in runs:
            run.done.wait(self.grace_seconds + _JOIN_TIMEOUT)

    def log_file(self, name: str) -> Path | None:
        """The kept log of a job's run, once it has one."""
        run = self.runs.get(name)
        return run.log_file if run else None

    # ------------------------------------------------------------------ the run
    def _execute(self, run: _Run) -> None:
        import boto3

        from sagepush import aws

        session = boto3.session.Session(region_name=run.region)
        clients = {
            name: session.client(name, endpoint_url=self.endpoint, config=aws.config(name))
            for name in ("s3", "events", "logs")
        }
        hosts: list[_Host] = []
        try:
            self._transition(run, clients["events"], SecondaryStatus.STARTING)
            _check_runs_a_script(run.job)
            hosts.extend(self._hosts(run, clients["logs"]))
            first = hosts[0]
            run.log_file = first.sink.path
            run.job.training_start_time = _now()
            self._transition(run, clients["events"], SecondaryStatus.DOWNLOADING)
            for index, host in enumerate(hosts):
                _download_channels(run.job, host.layout, clients["s3"], host.sink, shard=(index, len(hosts)))
                _download_code(run.job, host.layout, clients["s3"])
            if run.stop_requested.is_set():
                self._finish_stopped(run, clients, hosts)
                return
            built = self._python(run, first)
            if built is None:
                self._finish_stopped(run, clients, hosts)
                return
            python = built.python
            run.environment = {**built.variables, **run.environment}  # the request's Environment wins, as on SageMaker
            _check_launcher(run.job, python)
            self._transition(run, clients["events"], SecondaryStatus.TRAINING)
            codes = self._train(run, python, hosts, clients["events"])
            failed = (
                run.failed_host
                if run.failed_host is not None
                else next((i for i, code in enumerate(codes) if code != 0), None)
            )
            if run.stop_requested.is_set():
                self._finish_stopped(run, clients, hosts)
            elif failed is None:
                self._transition(run, clients["events"], SecondaryStatus.UPLOADING)
                _upload(run.job, hosts, clients["s3"], model=True)
                self._end(run, clients["events"], TrainingJobStatus.COMPLETED, SecondaryStatus.COMPLETED, hosts)
            else:
                host = hosts[failed]
                reason = _failure_reason(host.layout, host.sink, codes[failed])
                if len(hosts) > 1:
                    reason = f"{reason} (host algo-{failed + 1})"
                _upload(run.job, hosts, clients["s3"], model=False)
                self._end(
                    run, clients["events"], TrainingJobStatus.FAILED, SecondaryStatus.FAILED, hosts, reason=reason
                )
        except JobError as exc:
            reason = exc.reason[:FAILURE_REASON_LIMIT]
            self._end(run, clients["events"], TrainingJobStatus.FAILED, SecondaryStatus.FAILED, hosts, reason=reason)
        except Exception as exc:
            logger.exception("local training job failed to run", extra={"job_name": run.name})
            reason = f"InternalServerError: {type(exc).__name__}: {exc}"[:FAILURE_REASON_LIMIT]
            self._end(run, clients["events"], TrainingJobStatus.FAILED, SecondaryStatus.FAILED, hosts, reason=reason)
        finally:
            for host in hosts:
                host.sink.close()
            run.holds.close()
            run.done.set()

    def _hosts(self, run: _Run, logs: Any) -> list[_Host]:
        """Lay out every host's /opt/ml and open its log stream; the job directory is held in use from here."""
        names = host_names(run.job)
        started = int(time.time())
        hosts = []
        for index, name in enumerate(names):
            layout = _lay_out(run, names, index)
            if index == 0:
                run.holds.enter_context(in_use(layout))
            definitions = run.job.algorithm_specification.get("MetricDefinitions") or []
            sink = _LogSink(layout / "training.log", logs, f"{run.name}/algo-{index + 1}-{started}", definitions)
            hosts.append(_Host(name, layout, sink))
        return hosts

    def _python(self, run: _Run, first: _Host) -> JobPython | None:
        """The job's python (local/environments.py), every host's; None when the job was stopped during the build."""
        try:
            return self.environments.job_python(
                run.job.algorithm_specification.get("TrainingImage"),
                first.layout / "code",
                first.layout / JOB_VENV,
                first.sink,
                run.holds,
                run.stop_requested,
            )
        except BuildStopped:
            return None
        except BuildError as exc:
            raise JobError(exc.reason) from exc

    def _finish_stopped(self, run: _Run, clients: Mapping[str, Any], hosts: list[_Host]) -> None:
        # A stopped job keeps what its SIGTERM handler saved: SageMaker uploads the model dir as it stands.
        self._transition(run, clients["events"], SecondaryStatus.UPLOADING)
        _upload(run.job, hosts, clients["s3"], model=True)
        self._end(run, clients["events"], TrainingJobStatus.STOPPED, run.stop_reason, hosts)

    def _launch(
        self, run: _Run, python: Path, hosts: list[_Host]
    ) -> tuple[list[subprocess.Popen[bytes]], list[threading.Thread]]:
        """Start the toolkit's entrypoint on every host, each in its own process group, its output read into its log."""
        at_opt_ml = opt_ml_namespace()
        if at_opt_ml is None:
            hosts[0].sink.write(
                f"sagepush local: this job's {CONTAINER_ROOT} is {hosts[0].layout}: a script that names {CONTAINER_ROOT}"
                " paths itself reaches another folder (the trainer mounts it there where user namespaces are allowed"
                f" and {CONTAINER_ROOT} exists)"
            )
        processes = [
            subprocess.Popen(
                [*(at_opt_ml or []), str(host.layout), str(python), "-m", "sagemaker_training.cli.train"]
                if at_opt_ml
                else [str(python), "-m", "sagemaker_training.cli.train"],
                cwd=host.layout,
                env=_container_environment(
                    run, python, Path(CONTAINER_ROOT) if at_opt_ml else host.layout, self.endpoint
                ),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                # One pipe, as a container's single log stream: a traceback stays after the lines printed before it.
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its own process group: a stop signals the toolkit and the user's script
            )
            for host in hosts
        ]
        readers = [
            threading.Thread(target=host.sink.pump, args=(process.stdout,), name=f"log-{run.name}-{index}", daemon=True)
            for index, (host, process) in enumerate(zip(hosts, processes, strict=True))
        ]
        for reader in readers:
            reader.start()
        return processes, readers

    def _train(self, run: _Run, python: Path, hosts: list[_Host], events: Any) -> list[int]:
        """Run the toolkit's entrypoint on every host at once; honour MaxRuntimeInSeconds and stop requests; stop the
        other hosts when one fails; return each host's exit code."""
        processes, readers = self._launch(run, python, hosts)
        max_runtime = float((run.job.stopping_condition or {}).get("MaxRuntimeInSeconds") or 86400)
        deadline = time.monotonic() + max_runtime
        terminated_at: float | None = None
        killed = False
        shipped = time.monotonic()

        def signal_all(signum: signal.Signals, message: str) -> None:
            for host, process in zip(hosts, processes, strict=True):
                host.sink.write(message)
                _signal_group(process.pid, signum)

        while any(p.poll() is None for p in processes) or any(reader.is_alive() for reader in readers):
            now = time.monotonic()
            if terminated_at is None and (run.stop_requested.is_set() or now >= deadline):
                if not run.stop_requested.is_set():
                    run.stop_reason = SecondaryStatus.MAX_RUNTIME_EXCEEDED
                    run.stop_requested.set()
                signal_all(
                    signal.SIGTERM, f"sagepush local: {run.stop_reason}: sending SIGTERM to the training processes"
                )
                terminated_at = now
                self._transition(run, events, SecondaryStatus.STOPPING, status=TrainingJobStatus.STOPPING)
            elif terminated_at is None and any(p.poll() not in (None, 0) for p in processes):
                # One host failed: as on SageMaker, the job fails and the other hosts are stopped.
                run.failed_host = next(i for i, p in enumerate(processes) if p.poll() not in (None, 0))
                signal_all(
                    signal.SIGTERM, "sagepush local: another host failed: sending SIGTERM to the training processes"
                )
                terminated_at = now
            elif terminated_at is not None and not killed and now - terminated_at >= self.grace_seconds:
                signal_all(
                    signal.SIGKILL,
                    f"sagepush local: still running {self.grace_seconds:g}s after SIGTERM: sending SIGKILL",
                )
                killed = True
            elif killed and now - (terminated_at or now) >= self.grace_seconds + _JOIN_TIMEOUT:
                break  # a process left the group but holds the pipe open: stop reading it
            if now - shipped >= _SHIP_SECONDS:
                for host in hosts:
                    host.sink.ship()
                shipped = now
            run.stop_requested.wait(_POLL_SECONDS) if terminated_at is None else time.sleep(_POLL_SECONDS)
        codes = [process.wait(timeout=_JOIN_TIMEOUT) for process in processes]
        for reader in readers:
            reader.join(timeout=1)
        return codes

    # ------------------------------------------------------------------ state and events
    def _transition(
        self, run: _Run, events: Any, secondary: SecondaryStatus, *, status: TrainingJobStatus | None = None
    ) -> None:
        job = run.job
        now = _now()
        transitions = [dict(t) for t in job.secondary_status_transitions]
        if transitions and "EndTime" not in transitions[-1]:
            transitions[-1]["EndTime"] = now
        transitions.append({"Status": secondary, "StartTime": now, "StatusMessage": _MESSAGES[secondary]})
        job.secondary_status_transitions = transitions
        job.secondary_status = secondary
        if status is not None:
            job.training_job_status = status
        job.last_modified_time = now
        _put_state_change(events, job, run.region)

    def _end(
        self,
        run: _Run,
        events: Any,
        status: TrainingJobStatus,
        secondary: SecondaryStatus,
        hosts: list[_Host],
        *,
        reason: str | None = None,
    ) -> None:
        job = run.job
        now = _now()
        metrics: dict[str, dict[str, Any]] = {}
        for host in reversed(hosts):  # each metric's value from the first host that reports it
            host.sink.ship()
            metrics.update({metric["MetricName"]: metric for metric in host.sink.final_metrics()})
        job.final_metric_data_list = [metrics[name] for name in sorted(metrics)] or None
        job.failure_reason = reason
        if job.training_start_time is not None:
            job.training_end_time = now
            seconds = max(1, math.ceil((now - job.training_start_time).total_seconds()))
            job.training_time_in_seconds = seconds
            job.billable_time_in_seconds = seconds
        job.training_job_status = status
        self._transition(run, events, secondary)
        transitions = [dict(t) for t in job.secondary_status_transitions]
        transitions[-1]["EndTime"] = now
        if reason:
            transitions[-1]["StatusMessage"] = reason
        job.secondary_status_transitions = transitions


def install_trainer(*, endpoint: str, region: str) -> LocalTrainer:
    """Route moto's CreateTrainingJob and StopTrainingJob to a LocalTrainer; call the result to undo."""
    from moto.core.responses import EmptyResult
    from moto.sagemaker.exceptions import ValidationError
    from moto.sagemaker.responses import SageMakerResponse

    grace = float(os.environ.get(GRACE_ENV) or DEFAULT_GRACE_SECONDS)
    trainer = LocalTrainer(endpoint=endpoint, region=region, root=home(), grace_seconds=grace)
    previous_create = SageMakerResponse.create_training_job
    # moto's backends are process-wide: with two stacks in one process the newest trainer runs every job, once.
    original_create = getattr(previous_create, "moto_original", previous_create)
    had_stop = "stop_training_job" in SageMakerResponse.__dict__
    original_stop = SageMakerResponse.__dict__.get("stop_training_job")

    def create_training_job(response: Any) -> Any:
        name = response._get_param("TrainingJobName")
        # moto replaces the metric definitions with its own sample: keep the caller's.
        definitions = (response._get_param("AlgorithmSpecification") or {}).get("MetricDefinitions") or []
        result = original_create(response)
        job = response.sagemaker_backend.training_jobs[name]
        job.algorithm_specification["MetricDefinitions"] = definitions
        trainer.start(job, region=response.region, environment=response._get_param("Environment") or {})
        return result

    def stop_training_job(response: Any) -> Any:
        name = response._get_param("TrainingJobName")
        job = response.sagemaker_backend.training_jobs.get(name)
        if job is None:
            raise ValidationError(message=f"Requested resource not found: training job {name}")
        if not trainer.stop(name):
            raise ValidationError(
                message=f"The training job {name} is {job.training_job_status}: only an InProgress job can be stopped"
            )
        return EmptyResult()

    create_training_job.moto_original = original_create  # type: ignore[attr-defined]
    # Patching moto's class, as the stack's other hooks do; undone with the stack.
    setattr(SageMakerResponse, "create_training_job", create_training_job)  # noqa: B010
    setattr(SageMakerResponse, "stop_training_job", stop_training_job)  # noqa: B010

    def undo() -> None:
        trainer.shutdown()
        setattr(SageMakerResponse, "create_training_job", previous_create)  # noqa: B010
        if had_stop:
            setattr(SageMakerResponse, "stop_training_job", original_stop)  # noqa: B010
        else:
            delattr(SageMakerResponse, "stop_training_job")

    trainer.uninstall = undo
    return trainer


# ---------------------------------------------------------------------- the job directory
def _now() -> datetime:
    """Now as moto keeps times: naive UTC."""
    return datetime.now(UTC).replace(tzinfo=None)


def host_names(job: Any) -> list[str]:
    """The job's hosts, as resourceconfig.json names them: `localhost` for one instance; for InstanceCount N > 1,
    the loopback addresses 127.0.0.1 … 127.0.0.N, names that resolve on any machine (SageMaker's algo-1 … algo-N
    would not here, and the toolkit waits until every host resolves)."""
    count = int((job.resource_config or {}).get("InstanceCount") or 1)
    return [HOST] if count <= 1 else [f"127.0.0.{index + 1}" for index in range(count)]


def _lay_out(run: _Run, hosts: list[str], index: int) -> Path:
    """Create host `index`'s /opt/ml: the three config files, the channel, model, output and code folders. The first
    host's is the job directory; the others' are under its .hosts/ folder."""
    job = run.job
    if index == 0 and run.directory.exists():
        shutil.rmtree(run.directory)
    layout = run.directory if index == 0 else run.directory / ".hosts" / f"algo-{index + 1}"
    config = layout / "input" / "config"
    for folder in (config, layout / "model", layout / "output" / "data", layout / "code"):
        folder.mkdir(parents=True)
    # The platform owns output/intermediate: with it present the toolkit starts no sync process of its own.
    (layout / "output" / "intermediate").mkdir()
    (config / "hyperparameters.json").write_text(json.dumps(job.hyper_parameters or {}))
    channels = {}
    for channel in job.input_data_config or []:
        channels[channel["ChannelName"]] = {
            "TrainingInputMode": channel.get("InputMode")
            or job.algorithm_specification.get("TrainingInputMode", "File"),
            "S3DistributionType": channel.get("DataSource", {})
            .get("S3DataSource", {})
            .get("S3DataDistributionType", "FullyReplicated"),
            "RecordWrapperType": channel.get("RecordWrapperType", "None"),
            **({"ContentType": channel["ContentType"]} if channel.get("ContentType") else {}),
        }
        (layout / "input" / "data" / channel["ChannelName"]).mkdir(parents=True)
    (config / "inputdataconfig.json").write_text(json.dumps(channels))
    instance_type = (job.resource_config or {}).get("InstanceType", "ml.m5.large")
    group = "homogeneousCluster"
    resources = {
        "current_host": hosts[index],
        "current_instance_type": instance_type,
        "current_group_name": group,
        "hosts": hosts,
        "instance_groups": [{"instance_group_name": group, "instance_type": instance_type, "hosts": hosts}],
        "network_interface_name": "eth0",
    }
    (config / "resourceconfig.json").write_text(json.dumps(resources))
    return layout


def _s3_location(uri: str, where: str) -> tuple[str, str]:
    if not uri.startswith("s3://"):
        raise JobError(f"ClientError: {where} {uri!r} is not an s3:// URI")
    bucket, _, key = uri[len("s3://") :].partition("/")
    return bucket, key


def _download_channels(job: Any, layout: Path, s3: Any, sink: _LogSink, *, shard: tuple[int, int] = (0, 1)) -> None:
    """Download each S3Prefix channel into input/data/<channel>, keeping the key below the prefix. For host `shard[0]`
    of `shard[1]`, a ShardedByS3Key channel holds every shard[1]-th object of the sorted keys, starting at shard[0].

    File and FastFile channels read the same here: FastFile's files appear in the channel folder as File's do. A
    Pipe channel has no FIFO here: its files are in the folder too, and the job's log says so once.
    """
    default_mode = job.algorithm_specification.get("TrainingInputMode", "File")
    for channel in job.input_data_config or []:
        name = channel["ChannelName"]
        if (channel.get("InputMode") or default_mode) == "Pipe":
            sink.write(
                f"sagepush local: channel {name}: Pipe input runs as File here: its files are in "
                f"{CONTAINER_ROOT}input/data/{name}, not a FIFO"
            )
        source = channel.get("DataSource", {}).get("S3DataSource")
        if source is None or source.get("S3DataType", "S3Prefix") != "S3Prefix":
            raise JobError(f"ClientError: channel {name}: the local trainer reads only S3Prefix data sources")
        bucket, prefix = _s3_location(source["S3Uri"], f"channel {name}")
        keys = [
            item["Key"]
            for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
            for item in page.get("Contents", [])
            if not item["Key"].endswith("/")
        ]
        if not keys:
            raise JobError(f'ClientError: No S3 objects found under S3 URL "{source["S3Uri"]}" given in channel {name}')
        if source.get("S3DataDistributionType") == "ShardedByS3Key":
            index, count = shard
            keys = sorted(keys)[index::count]
        target = layout / "input" / "data" / name
        for key in keys:
            relative = key[len(prefix) :].lstrip("/") or key.rsplit("/", 1)[-1]
            destination = (target / relative).resolve()
            if not destination.is_relative_to(target.resolve()):
                raise JobError(f"ClientError: channel {name}: key {key!r} leaves the channel directory")
            destination.parent.mkdir(parents=True, exist_ok=True)
            s3.download_file(bucket, key, str(destination))


def _check_runs_a_script(job: Any) -> None:
    """Refuse a job that runs its image's own entrypoint (see `why_not_runnable`)."""
    reason = why_not_runnable(job.hyper_parameters or {}, job.algorithm_specification or {})
    if reason is not None:
        raise JobError(f"ClientError: {reason}")


def why_not_runnable(hyper_parameters: Mapping[str, str], algorithm_specification: Mapping[str, Any]) -> str | None:
    """Say why the local trainer cannot run a job, or None when it can: it runs scripts through the training toolkit
    in a Python environment, and never starts a container, so a job running its image's own entrypoint (no
    `sagemaker_program`) is refused, whether `push --local` or the local stack's CreateTrainingJob sees it."""
    if "sagemaker_program" in hyper_parameters:
        return None
    from sagepush import images

    image = algorithm_specification.get("TrainingImage") or algorithm_specification.get("AlgorithmName") or "its image"
    repository = image.rsplit("/", 1)[-1].split(":")[0]
    if repository in images.algorithms():
        return (
            f"the local stack runs scripts, not images: the built-in algorithm {repository} runs on SageMaker only "
            "(its image is AWS's). Push it to AWS"
        )
    return (
        f"the local stack runs scripts, not images: this job runs the entrypoint of {image}, which needs a container "
        "runtime the local stack does not use. Push it to AWS, or set entry_point to run a script in a framework image"
    )


def _download_code(job: Any, layout: Path, s3: Any) -> None:
    """Unpack the staged sourcedir.tar.gz into code/ (the toolkit then finds it there and skips its own download)."""
    raw = (job.hyper_parameters or {}).get("sagemaker_submit_directory")
    if not raw:
        raise JobError("ClientError: the hyperparameter sagemaker_submit_directory names no code to run")
    uri = json.loads(raw) if raw.startswith('"') else raw
    if uri.startswith(CONTAINER_ROOT):
        # Under network isolation the code arrives as an input channel, already downloaded into the layout.
        archive = (layout / uri.removeprefix(CONTAINER_ROOT)).resolve()
        if not archive.is_relative_to(layout.resolve()) or not archive.is_file():
            raise JobError(f"ClientError: sagemaker_submit_directory {uri} is not a file any input channel delivered")
        with tarfile.open(archive, "r:gz") as tar:
            tar.extractall(layout / "code", filter="data")
        return
    bucket, key = _s3_location(uri, "sagemaker_submit_directory")
    archive = layout / "sourcedir.tar.gz"
    try:
        s3.download_file(bucket, key, str(archive))
    except Exception as exc:
        raise JobError(f"ClientError: cannot download the code at {uri}: {exc}") from exc
    with tarfile.open(archive, "r:gz") as tar:
        tar.extractall(layout / "code", filter="data")
    archive.unlink()


def _upload(job: Any, hosts: list[_Host], s3: Any, *, model: bool) -> None:
    """Upload output.tar.gz (output/data) and, when `model`, model.tar.gz; record ModelArtifacts. With several hosts
    each archive holds every host's files, the first host's where two write the same path."""
    bucket, prefix = _s3_location(job.output_data_config["S3OutputPath"], "S3OutputPath")
    base = f"{prefix.rstrip('/')}/{job.training_job_name}/output".lstrip("/")
    folders = {"output.tar.gz": Path("output") / "data"}
    if model:
        folders["model.tar.gz"] = Path("model")
    for name, folder in folders.items():
        archive = hosts[0].layout / name
        added: set[str] = set()
        with tarfile.open(archive, "w:gz") as tar:
            for host in hosts:
                for path in sorted((host.layout / folder).rglob("*")):
                    arcname = path.relative_to(host.layout / folder).as_posix()
                    if arcname not in added:
                        added.add(arcname)
                        tar.add(path, arcname=arcname, recursive=False)
        s3.upload_file(str(archive), bucket, f"{base}/{name}")
    if model:
        job.model_artifacts = {"S3ModelArtifacts": f"s3://{bucket}/{base}/model.tar.gz"}


@functools.cache
def opt_ml_namespace() -> list[str] | None:
    """The command prefix that runs a host's processes with its job directory mounted at /opt/ml, as in a training
    container, so a script that names /opt/ml/model itself writes into its own job: a user and mount namespace of
    its own (`unshare`), the directory bind-mounted over /opt/ml (which must exist: it is created when this user
    may). The prefix takes the job directory, then the command. None where namespaces are not allowed."""
    unshare = shutil.which("unshare")
    mount_point = Path(CONTAINER_ROOT)
    with contextlib.suppress(OSError):
        mount_point.mkdir(parents=True, exist_ok=True)
    if unshare is None or not mount_point.is_dir():
        return None
    prefix = [
        unshare,
        "--user",
        "--map-root-user",
        "--mount",
        "sh",
        "-c",
        f'mount --bind "$0" {CONTAINER_ROOT} && exec "$@"',
    ]
    with tempfile.TemporaryDirectory() as probe:
        tried = subprocess.run([*prefix, probe, "true"], capture_output=True, timeout=30, check=False)
    return prefix if tried.returncode == 0 else None


def _check_launcher(job: Any, python: Path) -> None:
    """Refuse an MPI job on a machine without mpirun, which the toolkit's MPI runner starts every host with."""
    enabled = (job.hyper_parameters or {}).get("sagemaker_mpi_enabled", "false").strip('"').lower() == "true"
    if enabled and not (python.parent / "mpirun").exists() and shutil.which("mpirun") is None:
        raise JobError(
            "ClientError: an MPI job runs through mpirun, which is not on this machine: install Open MPI "
            "(Debian: apt install openmpi-bin) to run it locally"
        )


def _failure_reason(layout: Path, sink: _LogSink, code: int) -> str:
    """The toolkit's error, the script's exception and the traceback's last lines, within FailureReason's 1024 chars.

    As on SageMaker: "AlgorithmError: ExecuteUserScriptError: ExitCode 1, ErrorMessage ..." for a script that raised.
    """
    failure = layout / "output" / "failure"
    lines = failure.read_text(errors="replace").splitlines() if failure.is_file() else []
    error = lines[0].rstrip(":") if lines else "ExecuteUserScriptError"
    exit_code = next((line for line in lines if line.startswith("ExitCode ")), f"ExitCode {code}")
    tail = sink.traceback_tail() or [line for line in _script_output(list(sink.tail)) if line.strip()][-5:]
    message = tail[-1] if tail else ""
    header = f"AlgorithmError: {error}: {exit_code}, ErrorMessage {message!r}"
    text = header + "\n" + "\n".join(tail)
    if len(text) > FAILURE_REASON_LIMIT:
        room = FAILURE_REASON_LIMIT - len(header) - len("\n...")
        text = header + "\n..." + text[-room:] if room > 0 else text[:FAILURE_REASON_LIMIT]
    return text


def _script_output(lines: list[str]) -> list[str]:
    """The user script's own output in a job's last lines: after the toolkit's invocation message (which ends with the
    command and a blank line), before its failure report, without the toolkit's log lines."""
    start = 0
    for index in range(len(lines) - 1, -1, -1):
        if lines[index] == _INVOKING:
            start = index + 3  # the blank line and the command that close the invocation message
            break
    end = next((i for i in range(len(lines) - 1, start - 1, -1) if lines[i].endswith(_REPORTING)), len(lines))
    return [line for line in lines[start:end] if not _TOOLKIT_LOG.match(line)]


def _container_environment(run: _Run, python: Path, layout: Path, endpoint: str) -> dict[str, str]:
    """The variables the platform gives a training container; the toolkit derives the SM_* ones from the files."""
    inherited = {name: os.environ[name] for name in ("HOME", "LANG", "LC_ALL", "TMPDIR", "TZ") if name in os.environ}
    return {
        **inherited,
        "PATH": f"{python.parent}{os.pathsep}/usr/local/bin:/usr/bin:/bin",
        "PYTHONUNBUFFERED": "1",
        "PYTHONDONTWRITEBYTECODE": "1",
        "SAGEMAKER_BASE_DIR": str(layout),
        "TRAINING_JOB_NAME": run.name,
        "TRAINING_JOB_ARN": run.job.arn,
        "AWS_REGION": run.region,
        "AWS_DEFAULT_REGION": run.region,
        # The job's AWS calls reach the local stack, with moto's dummy credentials.
        "AWS_ENDPOINT_URL": endpoint,
        "S3_ENDPOINT_URL": endpoint,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        # requirements.txt is installed before the run: the toolkit's own pip install finds it satisfied, with pip
        # configured as on SageMaker, not as on this machine.
        "PIP_NO_INDEX": "1",
        "PIP_CONFIG_FILE": os.devnull,
        "PIP_DISABLE_PIP_VERSION_CHECK": "1",
        **run.environment,
    }


def _signal_group(pid: int, signum: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signum)


def _epoch_ms(value: Any) -> Any:
    """Times as the state-change event carries them: epoch milliseconds."""
    if isinstance(value, datetime):
        stamp = value if value.tzinfo else value.replace(tzinfo=UTC)
        return round(stamp.timestamp() * 1000)
    if isinstance(value, dict):
        return {key: _epoch_ms(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_epoch_ms(item) for item in value]
    return value


def state_change_detail(job: Any) -> dict[str, Any]:
    """The event's detail: the DescribeTrainingJob answer, times in epoch milliseconds and the job's tags as a map.

    See https://docs.aws.amazon.com/sagemaker/latest/dg/automating-sagemaker-with-eventbridge.html
    """
    detail = _epoch_ms(job.response_object)
    detail["Tags"] = {tag["Key"]: tag.get("Value", "") for tag in job.tags or []}
    return dict(detail)


def _put_state_change(events: Any, job: Any, region: str) -> None:
    from botocore.exceptions import BotoCoreError, ClientError

    detail = state_change_detail(job)
    try:
        answer = events.put_events(
            Entries=[
                {
                    "Source": EVENT_SOURCE,
                    "DetailType": EVENT_DETAIL_TYPE,
                    "Resources": [job.arn],
                    "Detail": json.dumps(detail),
                }
            ]
        )
    except (BotoCoreError, ClientError) as exc:
        # The stack is going down under a job it stops: DescribeTrainingJob still tells the end.
        logger.warning(
            "state change event not delivered", extra={"job_name": job.training_job_name, "error": repr(exc)}
        )
        return
    if answer.get("FailedEntryCount"):
        logger.warning("state change event refused", extra={"job_name": job.training_job_name, "answer": answer})


# ---------------------------------------------------------------------- logs and metrics
class _LogSink:
    """A job's output: kept in a file, shipped to CloudWatch Logs, scanned for metrics and tracebacks."""

    def __init__(self, path: Path, logs: Any, stream: str, definitions: list[Mapping[str, str]]) -> None:
        self.path = path
        self.stream = stream
        self.tail: deque[str] = deque(maxlen=200)
        self._logs = logs
        self._file = path.open("a", encoding="utf-8")
        self._lock = threading.Lock()
        self._pending: list[dict[str, Any]] = []
        self._metrics: dict[str, tuple[float, datetime]] = {}
        self._patterns: list[tuple[str, re.Pattern[str]]] = []
        for definition in definitions:
            with contextlib.suppress(re.error, KeyError):
                self._patterns.append((definition["Name"], re.compile(definition["Regex"])))
        with contextlib.suppress(logs.exceptions.ResourceAlreadyExistsException):
            logs.create_log_group(logGroupName=LOG_GROUP)
        logs.create_log_stream(logGroupName=LOG_GROUP, logStreamName=stream)

    def write(self, line: str) -> None:
        line = line.rstrip("\r\n")
        now = _now()
        with self._lock:
            self._file.write(line + "\n")
            self._file.flush()
            self.tail.append(line)
            if line.strip():  # CloudWatch Logs refuses empty messages
                self._pending.append({"timestamp": round(now.replace(tzinfo=UTC).timestamp() * 1000), "message": line})
            for name, pattern in self._patterns:
                match = pattern.search(line)
                if match and match.groups():
                    with contextlib.suppress(ValueError):
                        self._metrics[name] = (float(match.group(1)), now)

    def pump(self, stream: Any) -> None:
        """Copy a process's output stream, line by line, until it closes."""
        for raw in iter(stream.readline, b""):
            self.write(raw.decode("utf-8", errors="replace"))
        stream.close()

    def ship(self) -> None:
        """Send the lines written since the last call to CloudWatch Logs."""
        from botocore.exceptions import BotoCoreError, ClientError

        with self._lock:
            pending, self._pending = self._pending, []
        try:
            for start in range(0, len(pending), 1000):
                self._logs.put_log_events(
                    logGroupName=LOG_GROUP, logStreamName=self.stream, logEvents=pending[start : start + 1000]
                )
        except (BotoCoreError, ClientError) as exc:
            # The stack was reset or stopped under the job: the kept log file still has every line.
            logger.warning("log lines not shipped", extra={"stream": self.stream, "error": repr(exc)})

    def final_metrics(self) -> list[dict[str, Any]]:
        """Each metric definition's last value, as FinalMetricDataList."""
        with self._lock:
            return [
                {"MetricName": name, "Value": value, "Timestamp": stamp}
                for name, (value, stamp) in sorted(self._metrics.items())
            ]

    def traceback_tail(self) -> list[str]:
        """The last lines of the last Python traceback in the output, ending at its exception line."""
        lines = list(self.tail)
        starts = [index for index, line in enumerate(lines) if line.startswith("Traceback (most recent call last)")]
        if not starts:
            return []
        block: list[str] = []
        for line in lines[starts[-1] :]:
            if _TOOLKIT_LOG.match(line):
                break
            block.append(line)
        return block[-_TRACEBACK_LINES:]

    def close(self) -> None:
        self.ship()
        self._file.close()
