"""A moto server on 127.0.0.1 with the real template.yaml deployed into it, and handlers run in this process.

What moto cannot do is added here, in one place:
- Lambda functions never execute without Docker: invocations (Step Functions tasks, the Invoke API) are routed to
  the handlers, imported in this process with the environment CloudFormation resolved for them.
- CloudFormation creates buckets without their versioning, EventBridge notifications, encryption and public
  access block, and state machines where the executing Step Functions engine cannot see them: both are completed
  from the translated template after the stack is created.
- CreateTrainingJob with a name already taken replaces the job instead of answering ResourceInUse.
- EventBridge rules do not deliver to Lambda targets: a rule's own pattern (moto's matcher, fed the pattern written
  in the template) selects the events, and the target handler runs as an asynchronous invocation would, with the
  retries and on-failure destination of the template's EventInvokeConfig (which moto's CloudFormation skips).
- Step Functions' `states:startExecution.sync:2` task (MatrixStateMachine runs each job as an execution of
  TrainingStateMachine) sends the task's parameters as written and reads the answers as boto3 gives them, where
  Step Functions maps them to and from the API's names: `_run_nested_executions` maps them.
- DynamoDB requests on one item do not run one at a time, so two conditional writes can both pass their condition:
  `local/dynamodb.py` serialises them per item, as DynamoDB does.
- moto keeps its resources in memory only: with `persist` (`local up`), the stack saves them when it stops and
  restores them when it starts (`local/state.py`).
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import os
import sys
import threading
import time
import traceback
import zipfile
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from sagepush_cli import template as sam
from sagepush_cli.functions import LoadedFunction, load_function
from sagepush_cli.local import cache, patterns, state
from sagepush_cli.local.dynamodb import serialise_item_requests
from sagepush_cli.local.endpoints import LocalHosting, install_hosting
from sagepush_cli.local.trainer import LocalTrainer, install_trainer

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping
    from pathlib import Path

logger = logging.getLogger(__name__)

ACCOUNT_ID = "123456789012"
CODE_BUCKET = "sagepush-local-code"
_ASYNC_RETRIES = 2
_EXECUTIONS_GRACE_SECONDS = 5.0
"""When a persisting stack stops: how long executions get to end after their jobs stopped, before they are stopped."""
_STOPPED_JOB = "The local stack stopped while the job ran"
_RUNNING: list[LocalStack] = []


@dataclass
class InvokeConfig:
    """A function's asynchronous-invocation settings, read from its template EventInvokeConfig."""

    maximum_retry_attempts: int = _ASYNC_RETRIES
    on_failure: str | None = None


@dataclass
class LocalStack:
    """The whole sagepush stack on one machine. Use as a context manager, or `start()` / `stop()`."""

    region: str = "us-east-1"
    stack_name: str = "sagepush-local"
    port: int = 0
    """The port the moto server listens on, on 127.0.0.1; 0 picks a free one."""
    parameters: Mapping[str, str] = field(default_factory=dict)
    root: Path = sam.ROOT
    keep_staged_code: bool = False
    """Keep the artifact bucket's staged code (code/) on disk from one stack to the next, as a deployed bucket
    keeps it: a later push of the same code reuses it. `local up` and `local demo` keep it; tests start empty."""
    prune_after: float | None = field(default_factory=cache.configured_prune_after)
    """On start, remove the job directories, environments and kept staged code (`local/cache.py`) unused for this
    many seconds, never one in use: $SAGEPUSH_LOCAL_PRUNE_AFTER, 14 days by default; None never prunes."""
    pruned: cache.Pruned | None = None
    """What pruning on start removed."""
    persist: bool = False
    """Save every AWS resource of the stack (objects, ledger items, jobs, executions, logs: moto's backends) when it
    stops and restore them when it starts, when saved under the same moto, Python and deployment (`local/state.py`).
    A job still running when the stack stops is stopped first: it comes back Stopped. `local up` persists; tests and
    `local demo` start empty."""
    fresh: bool = False
    """With `persist`: start empty even when a saved state matches (it is replaced when the stack stops)."""
    restored: state.Saved | None = None
    """The state start restored, if it did."""
    state_note: state.Note | None = None
    """With `persist`: what start did with the saved state, in one line."""
    saved_note: state.Note | None = None
    """With `persist`: what stop did with the stack's state, in one line."""
    endpoint: str = ""
    outputs: dict[str, str] = field(default_factory=dict)
    resources: dict[str, str] = field(default_factory=dict)
    functions: dict[str, LoadedFunction] = field(default_factory=dict)
    invoke_configs: dict[str, InvokeConfig] = field(default_factory=dict)
    _server: Any = None
    _stamp: dict[str, str] = field(default_factory=dict)
    _saved_env: dict[str, str | None] = field(default_factory=dict)
    _patches: list[Callable[[], None]] = field(default_factory=list)
    _trainer: LocalTrainer | None = None
    _hosting: LocalHosting | None = None
    _restored_code: set[str] = field(default_factory=set)
    _async: ThreadPoolExecutor = field(default_factory=lambda: ThreadPoolExecutor(8, thread_name_prefix="lambda-async"))
    _pending: set[Future[None]] = field(default_factory=set)
    _pending_lock: threading.Lock = field(default_factory=threading.Lock)
    _sync_invocations: int = 0  # RequestResponse invocations under way (Step Functions' lambda:invoke tasks)
    _invoking: threading.Condition = field(default_factory=threading.Condition)

    # ------------------------------------------------------------------ lifecycle
    def __enter__(self) -> LocalStack:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> LocalStack:
        """Start the server, point this process's AWS clients at it, deploy the template and route invocations."""
        from moto.server import ThreadedMotoServer

        if self.prune_after is not None:
            self.pruned = cache.prune(older_than=self.prune_after)
            if self.pruned.removed:
                logger.info(
                    "pruned the local cache",
                    extra={"entries": len(self.pruned.removed), "bytes": self.pruned.bytes_freed},
                )
        _quiet_moto()
        if self.port:
            _check_port_free(self.port)  # moto's server would wait forever for a port it cannot bind
        self._server = ThreadedMotoServer(ip_address="127.0.0.1", port=self.port, verbose=False)
        self._server.start()
        host, port = self._server.get_host_and_port()
        self.endpoint = f"http://{host}:{port}"
        self._set_environment(
            {
                "AWS_ENDPOINT_URL": self.endpoint,
                "AWS_ACCESS_KEY_ID": "testing",
                "AWS_SECRET_ACCESS_KEY": "testing",
                "AWS_SESSION_TOKEN": "testing",
                "AWS_DEFAULT_REGION": self.region,
                "AWS_REGION": self.region,
                # moto's Step Functions engine calls the server back on localhost:$MOTO_PORT.
                "MOTO_PORT": str(port),
                "POWERTOOLS_METRICS_DISABLED": "true",
            }
        )
        self._clear_client_caches()
        # Conditional writes to one item must not both succeed (the ledger's alert claim relies on it).
        self._patches.append(serialise_item_requests())
        # moto keeps its backends per process, not per server: start from nothing whatever ran here before.
        self.post("/moto-api/reset", {})
        self._configure_moto()
        self._route_invocations()
        # CreateTrainingJob runs the staged code for real (moto alone reports every job Completed at once).
        self._trainer = install_trainer(endpoint=self.endpoint, region=self.region)
        self._patches.append(self._trainer)
        # Endpoints serve their models for real; model packages and endpoints emit their state-change events.
        self._hosting = install_hosting(endpoint=self.endpoint, region=self.region)
        self._patches.append(self._hosting)
        _RUNNING.append(self)
        if self.persist and not self.fresh:
            self._restore_or_deploy()
        else:
            self.deploy()
            if self.persist:
                self.state_note = state.Note("starting empty (--fresh): the saved state is replaced when it stops")
        if self.keep_staged_code:
            self._restore_staged_code()
        return self

    def stop(self) -> None:
        """Stop running jobs, wait for in-flight asynchronous invocations, stop the server, restore the environment."""
        self._stop_jobs()
        self.drain()
        summary = self._settle() if self.persist and self._server is not None and self._stamp else None
        self._async.shutdown(wait=True)
        if self.keep_staged_code and self._server is not None:
            self._save_staged_code()
        _RUNNING[:] = [stack for stack in _RUNNING if stack is not self]
        for undo in reversed(self._patches):
            undo()
        self._patches.clear()
        self._trainer = None
        self._hosting = None
        if self._server is not None:
            self._server.stop()  # nothing changes the backends while they are saved
            self._server = None
        if summary is not None:
            self._save_state(summary)
        for name, value in self._saved_env.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        self._saved_env.clear()
        self._clear_client_caches()

    def reset(self) -> None:
        """Forget every AWS resource and redeploy the template: a clean stack for the next test.

        Deliveries under way finish first; then every execution still running is stopped and the Lambda invocations
        its tasks have under way are awaited (SubmitFunction would otherwise create a job whose run reports into the
        redeployed stack), then every job still training is stopped and its last events delivered. Nothing from
        before the reset reaches the new stack.
        """
        self.drain()
        self._stop_executions()
        self._stop_jobs()
        self.drain()
        self.post("/moto-api/reset", {})
        self._configure_moto()
        self.deploy()

    @property
    def trainer(self) -> LocalTrainer:
        """The trainer running this stack's training jobs.

        Raises:
            LookupError: the stack is not running.
        """
        if self._trainer is None:
            raise LookupError("the local stack is not running: it has no trainer")
        return self._trainer

    def _stop_jobs(self) -> None:
        if self._trainer is not None:
            self._trainer.shutdown()

    def _stop_executions(
        self, timeout: float = 60, *, error: str = "sagepush.LocalReset", cause: str = "stack reset"
    ) -> None:
        """Stop every running Step Functions execution, then wait until no Lambda invocation of one is under way.

        moto runs an execution in daemon threads that outlive a moto reset: a worker in the middle of a lambda:invoke
        task would finish it after the reset (SubmitFunction would create its job then). A stopped execution starts
        no further state; one waiting for a task token stays parked in moto's wait, which touches nothing.

        Raises:
            TimeoutError: an execution did not start, or an invocation did not end, within `timeout` seconds.
        """
        from datetime import UTC, datetime

        from moto.stepfunctions.parser.models import stepfunctions_parser_backends

        backend = stepfunctions_parser_backends[ACCOUNT_ID][self.region]
        deadline = time.monotonic() + timeout
        while True:
            running = [e for m in backend.state_machines for e in m.executions if e.status == "RUNNING"]
            unstarted = [e for e in running if getattr(getattr(e, "exec_worker", None), "env", None) is None]
            for execution in running:
                if execution not in unstarted:
                    execution.stop(stop_date=datetime.now(UTC), error=error, cause=cause)
            if not unstarted:
                break
            if time.monotonic() > deadline:
                raise TimeoutError(self._threads(f"{len(unstarted)} execution(s) never started"))
            threading.Event().wait(0.01)  # a worker builds its environment on its own thread: nothing to wait on
        with self._invoking:
            if not self._invoking.wait_for(lambda: self._sync_invocations == 0, timeout=timeout):
                raise TimeoutError(self._threads(f"{self._sync_invocations} invocation(s) still running"))

    def _threads(self, what: str) -> str:
        return f"{what}; threads:\n" + _stacks(lambda thread: thread is not threading.current_thread())

    def drain(self, timeout: float = 120) -> None:
        """Wait until every asynchronous invocation started so far (and any it started) has finished.

        A busy stack may take long: only `timeout` seconds in which no invocation finishes raise TimeoutError, with
        what every asynchronous invocation thread is doing, so a stuck one shows where it is stuck.
        """
        while True:
            with self._pending_lock:
                pending = list(self._pending)
            if not pending:
                return
            done, _ = wait(pending, timeout=timeout, return_when=FIRST_COMPLETED)
            if not done:
                raise TimeoutError(self._stuck(len(pending), timeout))
            for future in done:
                future.result()  # an invocation's own error (its retries and destination are handled inside)

    def _stuck(self, pending: int, timeout: float) -> str:
        return (
            f"{pending} asynchronous invocation(s) pending, none finished in {timeout:g} s; "
            f"{self._async._work_queue.qsize()} queued. Invocation threads:\n"
            + _stacks(lambda thread: thread.name.startswith("lambda-async"))
        )

    # ------------------------------------------------------------------ deployment
    def deploy(self) -> None:
        """Translate template.yaml with the SAM translator and create it in moto's CloudFormation."""
        document = sam.load(self.root / "template.yaml")
        self._create(document, self._translate(document))

    def _create(self, document: Mapping[str, Any], translated: Mapping[str, Any]) -> None:
        """Put the functions' and layers' code in S3 and create the translated template in moto's CloudFormation."""
        from sagepush import aws

        s3 = aws.new_client("s3")
        s3.create_bucket(Bucket=CODE_BUCKET)
        for logical_id, local in _code_folders(document).items():
            s3.put_object(Bucket=CODE_BUCKET, Key=f"{logical_id}.zip", Body=_zip_dir(self.root / local))
        self._stamp = self._stamp_of(translated)
        aws.new_client("cloudformation").create_stack(
            StackName=self.stack_name,
            TemplateBody=json.dumps(translated),
            Parameters=[{"ParameterKey": k, "ParameterValue": v} for k, v in self.parameters.items()],
            Capabilities=["CAPABILITY_IAM", "CAPABILITY_NAMED_IAM", "CAPABILITY_AUTO_EXPAND"],
        )
        self._connect(document, translated)

    def _translate(self, document: Mapping[str, Any]) -> dict[str, Any]:
        """The template as CloudFormation gets it, the functions' and layers' code at the keys `_create` puts it."""
        from sagepush import aws

        locations = {logical_id: f"s3://{CODE_BUCKET}/{logical_id}.zip" for logical_id in _code_folders(document)}
        return sam.translate(
            document,
            code_locations=locations,
            parameters={**sam.parameter_defaults(document), **self.parameters},
            region=self.region,
            account_id=ACCOUNT_ID,
            iam=aws.new_client("iam"),
            root=self.root,
        )

    def _connect(self, document: Mapping[str, Any], translated: Mapping[str, Any]) -> None:
        """Read the created stack's outputs and resources, complete what moto's CloudFormation skips, load the
        handlers: all the stack needs to run, whether it deployed the template or restored a saved state."""
        from sagepush import aws

        cloudformation = aws.new_client("cloudformation")
        stack = cloudformation.describe_stacks(StackName=self.stack_name)["Stacks"][0]
        if stack["StackStatus"] != "CREATE_COMPLETE":
            raise RuntimeError(
                f"local stack {self.stack_name} is {stack['StackStatus']}: {stack.get('StackStatusReason')}"
            )
        self.outputs = {o["OutputKey"]: o["OutputValue"] for o in stack.get("Outputs", [])}
        self.resources = {
            r["LogicalResourceId"]: r["PhysicalResourceId"]
            for r in cloudformation.describe_stack_resources(StackName=self.stack_name)["StackResources"]
            if "LogicalResourceId" in r and "PhysicalResourceId" in r
        }
        self._complete_buckets(translated)
        self._load_functions(document, translated)
        self._mirror_state_machines(translated)

    def _stamp_of(self, translated: Mapping[str, Any]) -> dict[str, str]:
        return state.deployment_stamp(
            translated=translated, parameters=self.parameters, stack_name=self.stack_name, region=self.region
        )

    # ------------------------------------------------------------------ saved state
    def _restore_or_deploy(self) -> None:
        """Restore the state saved when the stack last stopped, if saved under this deployment; else deploy afresh."""
        document = sam.load(self.root / "template.yaml")
        translated = self._translate(document)
        self._stamp = self._stamp_of(translated)
        path = state.state_file(self.stack_name)
        loaded = state.load(path, stamp=self._stamp)
        if isinstance(loaded, state.NotRestored):
            self.state_note = state.Note(f"starting empty: {loaded.reason}", warning=loaded.damaged)
            self._create(document, translated)
            return
        state.apply(loaded)
        try:
            self._connect(document, translated)
            stopped = self._stop_unfinished_jobs()
            if self._hosting is not None:
                self._hosting.resume()  # the restored endpoints' models start again
        # Whatever a restored state fails on, the stack must not run half restored: it starts empty instead.
        except Exception as exc:
            logger.warning("saved state not restored", exc_info=True)
            self.state_note = state.Note(
                f"starting empty: the state saved {loaded.saved.when()} in {path} could not be restored "
                f"({type(exc).__name__}: {exc})",
                warning=True,
            )
            self.drain()  # a state-change event of a job it stopped may be under way
            self.post("/moto-api/reset", {})
            self._configure_moto()
            self._create(document, translated)
            return
        self.restored = loaded.saved
        stopped_text = f"; {stopped} job{'s' if stopped > 1 else ''} left running, now Stopped" if stopped else ""
        self.state_note = state.Note(
            f"restored the state saved {loaded.saved.when()}: {loaded.saved.summary.text()}{stopped_text} "
            "(--fresh starts empty)"
        )

    def _settle(self) -> state.Summary | None:
        """Before the state is saved: end what still runs, so that nothing comes back running; count what it holds.

        Jobs the trainer could not stop in time are recorded Stopped, as StopTrainingJob would leave them, with their
        state-change events delivered; executions get a moment to end, then the rest are stopped (ABORTED).
        """
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            self._stop_unfinished_jobs()
            self.drain()
            self._end_executions()
            self.drain()
            return self._count()
        except (TimeoutError, BotoCoreError, ClientError) as exc:
            self._not_saved(f"{type(exc).__name__}: {exc}")
            return None

    def _save_state(self, summary: state.Summary) -> None:
        path = state.state_file(self.stack_name)
        try:
            saved = state.save(path, stamp=self._stamp, summary=summary)
        except state.SAVE_ERRORS as exc:
            self._not_saved(f"{type(exc).__name__}: {exc}")
            return
        self.saved_note = state.Note(f"saved the stack's state ({saved.summary.text()}) to {path}")

    def _not_saved(self, reason: str) -> None:
        """Say the state was not saved; remove the one saved before, or the next start would restore stale state."""
        path = state.state_file(self.stack_name)
        with contextlib.suppress(OSError):
            path.unlink(missing_ok=True)
        self.saved_note = state.Note(
            f"the stack's state was not saved ({reason[:300]}): the next start begins empty", warning=True
        )

    def _stop_unfinished_jobs(self) -> int:
        """Record every job still InProgress or Stopping as Stopped, as SageMaker shows a stopped job, and deliver
        its state-change event; return how many there were. The trainer stops the jobs it runs before this."""
        from datetime import UTC, datetime

        from moto.sagemaker.models import sagemaker_backends

        from sagepush import aws
        from sagepush.events import SecondaryStatus, TrainingJobStatus
        from sagepush_cli.local.trainer import EVENT_DETAIL_TYPE, EVENT_SOURCE, state_change_detail

        unfinished = {TrainingJobStatus.IN_PROGRESS, TrainingJobStatus.STOPPING}
        jobs = sagemaker_backends[ACCOUNT_ID][self.region].training_jobs
        stopped = [job for job in list(jobs.values()) if job.training_job_status in unfinished]
        for job in stopped:
            now = datetime.now(UTC).replace(tzinfo=None)  # as moto keeps times
            transitions = [dict(t) for t in job.secondary_status_transitions or []]
            if transitions and "EndTime" not in transitions[-1]:
                transitions[-1]["EndTime"] = now
            transitions.append(
                {"Status": SecondaryStatus.STOPPED, "StartTime": now, "EndTime": now, "StatusMessage": _STOPPED_JOB}
            )
            job.secondary_status_transitions = transitions
            job.secondary_status = SecondaryStatus.STOPPED
            job.training_job_status = TrainingJobStatus.STOPPED
            if getattr(job, "training_start_time", None) is not None:
                job.training_end_time = now
            job.last_modified_time = now
        events = aws.new_client("events")
        for first in range(0, len(stopped), 10):  # PutEvents takes ten entries at a time
            entries: list[Any] = [
                {
                    "Source": EVENT_SOURCE,
                    "DetailType": EVENT_DETAIL_TYPE,
                    "Resources": [job.arn],
                    "Detail": json.dumps(state_change_detail(job)),
                }
                for job in stopped[first : first + 10]
            ]
            events.put_events(Entries=entries)
        return len(stopped)

    def _end_executions(self) -> None:
        """Give running executions a few seconds to end (their jobs have just stopped), then stop the rest."""
        from datetime import UTC, datetime

        from moto.stepfunctions.parser.api import ExecutionStatus
        from moto.stepfunctions.parser.models import stepfunctions_parser_backends

        backend: Any = stepfunctions_parser_backends[ACCOUNT_ID][self.region]

        def running() -> list[Any]:
            return [e for m in backend.state_machines for e in m.executions if e.status == "RUNNING"]

        deadline = time.monotonic() + _EXECUTIONS_GRACE_SECONDS
        while running() and time.monotonic() < deadline:
            threading.Event().wait(0.05)  # an execution ends on moto's worker thread: nothing to wait on
        error, cause = "sagepush.LocalStackStopped", "the local stack stopped while the execution ran"
        self._stop_executions(error=error, cause=cause)
        for execution in running():
            # A worker parked on a task token would record its end only once woken: record it as StopExecution does.
            execution.exec_status = ExecutionStatus.ABORTED
            execution.stop_date = datetime.now(UTC)
            execution.error, execution.cause = error, cause

    def _count(self) -> state.Summary:
        """What the stack holds: training jobs, objects (the functions' code aside), ledger items, executions."""
        from sagepush import aws

        s3, sfn = aws.new_client("s3"), aws.new_client("stepfunctions")
        objects = sum(
            page.get("KeyCount", 0)
            for bucket in s3.list_buckets()["Buckets"]
            if bucket["Name"] != CODE_BUCKET
            for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket["Name"])
        )
        jobs = sum(
            len(page["TrainingJobSummaries"])
            for page in aws.new_client("sagemaker").get_paginator("list_training_jobs").paginate()
        )
        ledger = sum(
            page["Count"]
            for page in aws.new_client("dynamodb")
            .get_paginator("scan")
            .paginate(TableName=self.resources["LedgerTable"], Select="COUNT")
        )
        executions = sum(
            len(page["executions"])
            for machine in sfn.list_state_machines()["stateMachines"]
            for page in sfn.get_paginator("list_executions").paginate(stateMachineArn=machine["stateMachineArn"])
        )
        return state.Summary(training_jobs=jobs, objects=objects, ledger_items=ledger, executions=executions)

    def _staged_code_store(self) -> Path:
        return cache.home() / "staged-code" / self.stack_name

    def _save_staged_code(self) -> None:
        """Copy the artifact bucket's code/ objects the store does not hold yet (they are content-addressed), and
        record a use of those a job ran. Code restored from the store and not run is left to age (and be pruned)."""
        from sagepush import aws

        s3, bucket, store = aws.new_client("s3"), self.outputs["ArtifactBucketName"], self._staged_code_store()
        prefix = self.function("StageFunction").environment["CODE_PREFIX"]
        run = self._code_run_by_jobs(bucket)
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
            for item in page.get("Contents", []):
                key, target = item["Key"], store / item["Key"]
                if key in self._restored_code and key not in run:
                    continue
                if target.is_file() and target.stat().st_size == item["Size"]:
                    cache.touch(target)
                    continue
                target.parent.mkdir(parents=True, exist_ok=True)
                partial = target.with_name(target.name + ".partial")
                s3.download_file(bucket, key, str(partial))
                partial.replace(target)

    def _restore_staged_code(self) -> None:
        """Put the staged code kept by earlier stacks back into the artifact bucket."""
        from sagepush import aws

        s3, bucket, store = aws.new_client("s3"), self.outputs["ArtifactBucketName"], self._staged_code_store()
        prefix = self.function("StageFunction").environment["CODE_PREFIX"]
        # A restored state brings its staged code back with it: that code ages as if restored from the store.
        self._restored_code = {
            item["Key"]
            for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
            for item in page.get("Contents", [])
        }
        for path in sorted(store.rglob("*")) if store.is_dir() else []:
            if path.is_file() and not path.name.endswith(".partial"):
                key = path.relative_to(store).as_posix()
                if key in self._restored_code:
                    continue
                try:
                    with cache.in_use(path):  # a prune in another process must not take it while it is read
                        if path.is_file():
                            s3.upload_file(str(path), bucket, key)
                            self._restored_code.add(key)
                except FileNotFoundError:
                    continue  # pruned meanwhile

    def _code_run_by_jobs(self, bucket: str) -> set[str]:
        """The keys in `bucket` of the staged code the stack's training jobs ran (`sagemaker_submit_directory`)."""
        from moto.sagemaker.models import sagemaker_backends

        keys = set()
        for job in list(sagemaker_backends[ACCOUNT_ID][self.region].training_jobs.values()):
            uri = str((job.hyper_parameters or {}).get("sagemaker_submit_directory") or "").strip('"')
            if uri.startswith(f"s3://{bucket}/"):
                keys.add(uri[len(f"s3://{bucket}/") :])
        return keys

    def _complete_buckets(self, translated: Mapping[str, Any]) -> None:
        """Apply the bucket properties moto's CloudFormation ignores, as the template declares them."""
        from sagepush import aws

        s3 = aws.new_client("s3")
        for logical_id, resource in translated["Resources"].items():
            if resource["Type"] != "AWS::S3::Bucket" or logical_id not in self.resources:
                continue
            bucket = self.resources[logical_id]
            properties = resource.get("Properties", {})
            if properties.get("VersioningConfiguration", {}).get("Status") == "Enabled":
                s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
            if "EventBridgeConfiguration" in properties.get("NotificationConfiguration", {}):
                s3.put_bucket_notification_configuration(
                    Bucket=bucket, NotificationConfiguration={"EventBridgeConfiguration": {}}
                )
            if "BucketEncryption" in properties:
                # CloudFormation's ServerSideEncryptionByDefault is the API's ApplyServerSideEncryptionByDefault.
                rules: list[Any] = [
                    {"ApplyServerSideEncryptionByDefault": rule["ServerSideEncryptionByDefault"]}
                    for rule in properties["BucketEncryption"]["ServerSideEncryptionConfiguration"]
                ]
                s3.put_bucket_encryption(Bucket=bucket, ServerSideEncryptionConfiguration={"Rules": rules})
            if "PublicAccessBlockConfiguration" in properties:
                s3.put_public_access_block(
                    Bucket=bucket, PublicAccessBlockConfiguration=properties["PublicAccessBlockConfiguration"]
                )

    def _mirror_state_machines(self, translated: Mapping[str, Any]) -> None:
        """Copy the stack's state machines into the backend that executes them (CloudFormation writes the other),
        with their DefinitionSubstitutions applied (moto's CloudFormation leaves the ${placeholders} in)."""
        from moto.stepfunctions.models import stepfunctions_backends
        from moto.stepfunctions.parser.models import stepfunctions_parser_backends

        created = stepfunctions_backends[ACCOUNT_ID][self.region]
        executing = stepfunctions_parser_backends[ACCOUNT_ID][self.region]
        known = {machine.arn for machine in executing.state_machines}
        for logical_id, resource in translated["Resources"].items():
            if resource["Type"] != "AWS::StepFunctions::StateMachine" or logical_id not in self.resources:
                continue
            machine = next(m for m in created.state_machines if m.arn == self.resources[logical_id])
            definition = machine.definition
            for name, value in resource["Properties"].get("DefinitionSubstitutions", {}).items():
                definition = definition.replace("${" + name + "}", self._resolve(value))
            if machine.arn not in known:
                executing.create_state_machine(name=machine.name, definition=definition, roleArn=machine.roleArn)

    def _resolve(self, value: Any) -> str:
        """Resolve the Ref and GetAtt .Arn forms a DefinitionSubstitutions value takes in this template."""
        if isinstance(value, str):
            return value
        if "Ref" in value:
            return self.resources[value["Ref"]]
        target, attribute = value["Fn::GetAtt"]
        if attribute == "Arn" and target in self.functions:
            return self.functions[target].arn
        raise ValueError(f"the local stack cannot resolve {value!r}")

    def _load_functions(self, document: Mapping[str, Any], translated: Mapping[str, Any]) -> None:
        from sagepush import aws

        client = aws.new_client("lambda")
        self.functions.clear()
        for logical_id, source in sam.functions(document, root=self.root).items():
            configuration = client.get_function_configuration(FunctionName=self.resources[logical_id])
            self.functions[logical_id] = load_function(
                source,
                name=configuration["FunctionName"],
                arn=configuration["FunctionArn"],
                # moto's CloudFormation keeps a Number parameter's type; Lambda's environment is all strings.
                variables={k: str(v) for k, v in configuration.get("Environment", {}).get("Variables", {}).items()},
                memory_mb=configuration.get("MemorySize", 512),
                timeout_seconds=configuration.get("Timeout", 60),
            )
            self.invoke_configs[logical_id] = _invoke_config(translated, logical_id, self.outputs, self.resources)

    # ------------------------------------------------------------------ invocation
    def function(self, name_or_arn: str) -> LoadedFunction:
        """Return the loaded function with this logical id, physical name or ARN."""
        if name_or_arn in self.functions:
            return self.functions[name_or_arn]
        for loaded in self.functions.values():
            if name_or_arn in {loaded.name, loaded.arn} or name_or_arn.startswith(f"{loaded.arn}:"):
                return loaded
        raise KeyError(f"no function {name_or_arn!r} in the local stack")

    def invoke(self, name_or_arn: str, event: Any) -> Any:
        """Invoke a function synchronously, as the Invoke API's RequestResponse does."""
        return self.function(name_or_arn).invoke(event)

    def invoke_async(self, name_or_arn: str, event: Any) -> Future[None]:
        """Invoke a function as Lambda's asynchronous invocation does: retried, then sent to its on-failure destination."""
        loaded = self.function(name_or_arn)
        future = self._async.submit(self._run_async, loaded, event)
        with self._pending_lock:
            self._pending.add(future)
        future.add_done_callback(self._forget)
        return future

    def _forget(self, future: Future[None]) -> None:
        with self._pending_lock:
            self._pending.discard(future)

    def _run_async(self, loaded: LoadedFunction, event: Any) -> None:
        config = self.invoke_configs.get(loaded.source.logical_id, InvokeConfig())
        error: BaseException | None = None
        for _attempt in range(1 + config.maximum_retry_attempts):
            try:
                loaded.invoke(event)
                return
            except Exception as exc:
                error = exc
                logger.warning("async invocation failed", extra={"function": loaded.name, "error": repr(exc)})
        if config.on_failure and error is not None:
            self._send_failure(loaded, event, error, config)

    def _send_failure(self, loaded: LoadedFunction, event: Any, error: BaseException, config: InvokeConfig) -> None:
        from sagepush import aws

        record = {
            "version": "1.0",
            "requestContext": {
                "functionArn": loaded.arn,
                "condition": "RetriesExhausted",
                "approximateInvokeCount": 1 + config.maximum_retry_attempts,
            },
            "requestPayload": event,
            "responseContext": {"statusCode": 200, "functionError": "Unhandled"},
            "responsePayload": {
                "errorType": type(error).__name__,
                "errorMessage": str(error),
                "stackTrace": traceback.format_exception(error)[-5:],
            },
        }
        assert config.on_failure is not None
        queue = config.on_failure.rsplit(":", 1)[-1]
        sqs = aws.new_client("sqs")
        sqs.send_message(QueueUrl=sqs.get_queue_url(QueueName=queue)["QueueUrl"], MessageBody=json.dumps(record))

    def _invoke_for_moto(self, function_name: str, body: Any, headers: Any, response_headers: dict[str, str]) -> bytes:
        """Serve moto's LambdaBackend.invoke: the Invoke API, Step Functions' lambda:invoke tasks."""
        event = json.loads(body) if body else {}
        if (headers or {}).get("X-Amz-Invocation-Type") == "Event":
            self.invoke_async(function_name, event)
            return b""
        with self._invoking:
            self._sync_invocations += 1
        try:
            result = self.invoke(function_name, event)
        except Exception as exc:
            response_headers["x-amz-function-error"] = "Unhandled"
            error = {
                "errorType": type(exc).__name__,
                "errorMessage": str(exc),
                "stackTrace": traceback.format_exception(exc)[-5:],
            }
            return json.dumps(error).encode()
        finally:
            with self._invoking:
                self._sync_invocations -= 1
                self._invoking.notify_all()
        return json.dumps(result).encode()

    # ------------------------------------------------------------------ moto hooks
    def _route_invocations(self) -> None:
        from moto.awslambda.models import LambdaBackend
        from moto.events.models import Rule

        stack = self
        original_invoke = LambdaBackend.invoke
        original_send = Rule.send_to_targets

        def invoke(
            backend: Any, function_name: str, qualifier: Any, body: Any, headers: Any, response_headers: Any
        ) -> Any:
            try:
                stack.function(function_name)
            except KeyError:
                return original_invoke(backend, function_name, qualifier, body, headers, response_headers)
            return stack._invoke_for_moto(function_name, body, headers, response_headers)

        def send_to_targets(rule: Any, event: Any, transform_input: bool = True) -> None:
            # patterns.matches: moto's matcher plus scheduled rules and arrays of objects (see local/patterns.py).
            if not patterns.matches(rule, event):
                return
            ours = [t for t in rule.targets if stack._is_ours(t["Arn"])]
            others = [t for t in rule.targets if t not in ours]
            for target in ours:
                stack.invoke_async(target["Arn"], json.loads(json.dumps(event, default=str)))
            if others:
                saved = rule.targets
                rule.targets = others
                try:
                    original_send(rule, event, transform_input)
                finally:
                    rule.targets = saved

        setattr(LambdaBackend, "invoke", invoke)  # noqa: B010 - patching moto's class, not an attribute lookup
        setattr(Rule, "send_to_targets", send_to_targets)  # noqa: B010

        def undo() -> None:
            setattr(LambdaBackend, "invoke", original_invoke)  # noqa: B010
            setattr(Rule, "send_to_targets", original_send)  # noqa: B010

        self._patches.append(undo)
        self._patches.append(_refuse_duplicate_training_jobs())
        self._patches.append(_keep_task_failure_cause())
        self._patches.append(_run_nested_executions())

    def _is_ours(self, arn: str) -> bool:
        try:
            self.function(arn)
        except KeyError:
            return False
        return True

    def _configure_moto(self) -> None:
        self.post("/moto-api/config", {"stepfunctions": {"execute_state_machine": True}})

    def post(self, path: str, document: Any) -> None:
        """POST a JSON document to one of moto's own endpoints (config, reset, ...)."""
        import urllib.request

        request = urllib.request.Request(
            self.endpoint + path,
            data=json.dumps(document).encode(),
            headers={"Content-Type": "application/json"},
            method="POST",
        )
        # The endpoint is the local moto server's http://127.0.0.1 URL, never a user-supplied scheme.
        with urllib.request.urlopen(request, timeout=30) as response:  # nosec B310
            response.read()

    def _set_environment(self, variables: Mapping[str, str]) -> None:
        for name, value in variables.items():
            self._saved_env.setdefault(name, os.environ.get(name))
            os.environ[name] = value

    @staticmethod
    def _clear_client_caches() -> None:
        from sagepush import aws

        aws.clear_clients()


def running_stack() -> LocalStack | None:
    """The local stack most recently started in this process and still running, if any."""
    return _RUNNING[-1] if _RUNNING else None


def _stacks(chosen: Callable[[threading.Thread], bool]) -> str:
    """The last frames of every live thread `chosen` picks, each under its name: where a stuck one is stuck."""
    frames = sys._current_frames()
    return "\n".join(
        f"thread {thread.name}:\n" + "".join(traceback.format_stack(frames[thread.ident])[-12:])
        for thread in threading.enumerate()
        if thread.ident in frames and chosen(thread)
    )


def _refuse_duplicate_training_jobs() -> Callable[[], None]:
    """Make moto answer CreateTrainingJob for an existing name with ResourceInUse, as SageMaker does."""
    from moto.sagemaker.exceptions import ResourceInUseException
    from moto.sagemaker.models import SageMakerModelBackend

    original = SageMakerModelBackend.create_training_job

    def create_training_job(backend: Any, training_job_name: str, *args: Any, **kwargs: Any) -> Any:
        if training_job_name in backend.training_jobs:
            raise ResourceInUseException(message=f"Training job {training_job_name} already exists")
        return original(backend, training_job_name, *args, **kwargs)

    setattr(SageMakerModelBackend, "create_training_job", create_training_job)  # noqa: B010

    def undo() -> None:
        setattr(SageMakerModelBackend, "create_training_job", original)  # noqa: B010

    return undo


def _keep_task_failure_cause() -> Callable[[], None]:
    """Make moto's SendTaskFailure pass its `cause` on (its response handler drops it, so executions lose it)."""
    from moto.core.responses import EmptyResult
    from moto.stepfunctions.responses import StepFunctionResponse

    original = StepFunctionResponse.send_task_failure

    def send_task_failure(response: Any) -> Any:
        # The local stack configures moto to execute state machines: that backend takes the cause.
        token, error, cause = (response._get_param(name) for name in ("taskToken", "error", "cause"))
        response.stepfunction_backend.send_task_failure(token, error=error, cause=cause)
        return EmptyResult()

    setattr(StepFunctionResponse, "send_task_failure", send_task_failure)  # noqa: B010

    def undo() -> None:
        setattr(StepFunctionResponse, "send_task_failure", original)  # noqa: B010

    return undo


def _run_nested_executions() -> Callable[[], None]:
    """Make moto's `states:startExecution.sync:2` task work as Step Functions' does.

    The task's parameters are the API's names in Pascal case (`StateMachineArn`, `Name`, `Input`); moto hands them to
    boto3 as they are, which knows them in camel case. The answers come back in camel case with datetimes, where the
    task's result (and moto's own reading of StartExecution's answer) has them in Pascal case, dates as epoch
    milliseconds, as Step Functions gives them.
    """
    from datetime import datetime

    from moto.stepfunctions.parser.asl.component.state.exec.state_task.service.state_task_service_sfn import (
        StateTaskServiceSfn,
    )

    original_parameters = StateTaskServiceSfn._normalise_parameters
    original_response = StateTaskServiceSfn._normalise_response

    def normalise_parameters(
        task: Any, parameters: dict[str, Any], boto_service_name: Any = None, service_action_name: Any = None
    ) -> None:
        original_parameters(task, parameters, boto_service_name, service_action_name)
        for name in list(parameters):
            parameters[name[:1].lower() + name[1:]] = parameters.pop(name)

    def normalise_response(
        task: Any, response: Any, boto_service_name: Any = None, service_action_name: Any = None
    ) -> None:
        original_response(task, response, boto_service_name, service_action_name)
        if isinstance(response, dict):
            for name in list(response):
                value = response.pop(name)
                if isinstance(value, datetime):
                    value = int(value.timestamp() * 1000)
                response[name[:1].upper() + name[1:]] = value

    setattr(StateTaskServiceSfn, "_normalise_parameters", normalise_parameters)  # noqa: B010
    setattr(StateTaskServiceSfn, "_normalise_response", normalise_response)  # noqa: B010

    def undo() -> None:
        setattr(StateTaskServiceSfn, "_normalise_parameters", original_parameters)  # noqa: B010
        setattr(StateTaskServiceSfn, "_normalise_response", original_response)  # noqa: B010

    return undo


class PortInUseError(RuntimeError):
    """The local stack's port is taken (another local stack, or another server)."""


def _check_port_free(port: int) -> None:
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as werkzeug binds it
        try:
            probe.bind(("127.0.0.1", port))
        except OSError as exc:
            raise PortInUseError(f"port {port} on 127.0.0.1 is in use ({exc.strerror})") from exc


def _quiet_moto() -> None:
    """Keep moto's request log and its notes on resources it does not model out of the user's terminal."""
    import warnings

    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    logging.getLogger("moto").setLevel(logging.ERROR)
    warnings.filterwarnings("ignore", message="Tried to parse .* but it's not supported by moto")


def _code_folders(document: Mapping[str, Any]) -> dict[str, str]:
    """Each function's and layer's code folder (CodeUri, ContentUri), by logical id."""
    folders = {}
    for logical_id, resource in document["Resources"].items():
        local = resource.get("Properties", {}).get("CodeUri") or resource.get("Properties", {}).get("ContentUri")
        if resource["Type"] in {"AWS::Serverless::Function", "AWS::Serverless::LayerVersion"} and local:
            folders[logical_id] = local
    return folders


def _zip_dir(path: Path) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for file in sorted(p for p in path.rglob("*") if p.is_file() and "__pycache__" not in p.parts):
            archive.write(file, file.relative_to(path).as_posix())
    return buffer.getvalue()


def _invoke_config(
    translated: Mapping[str, Any], logical_id: str, outputs: Mapping[str, str], resources: Mapping[str, str]
) -> InvokeConfig:
    """Read the AWS::Lambda::EventInvokeConfig the SAM translator made for `logical_id` (moto skips creating it)."""
    for resource in translated["Resources"].values():
        if resource["Type"] != "AWS::Lambda::EventInvokeConfig":
            continue
        properties = resource["Properties"]
        if properties.get("FunctionName", {}).get("Ref") != logical_id:
            continue
        destination = properties.get("DestinationConfig", {}).get("OnFailure", {}).get("Destination")
        arn = None
        if isinstance(destination, dict) and "Fn::GetAtt" in destination:
            target = destination["Fn::GetAtt"][0]
            queue_url = resources.get(target, "")
            arn = f"arn:aws:sqs:::{queue_url.rsplit('/', 1)[-1]}" if queue_url else None
        elif isinstance(destination, str):
            arn = destination
        return InvokeConfig(
            maximum_retry_attempts=int(properties.get("MaximumRetryAttempts", _ASYNC_RETRIES)), on_failure=arn
        )
    return InvokeConfig()
