"""Job status: an observed state is recorded in the ledger, alerted once per transition, and ends the job's execution.

StatusFunction feeds it SageMaker's state-change events; ReconcileFunction feeds it DescribeTrainingJob answers for
jobs the ledger has not heard about for a while. Both paths are the same function, so a lost event and a late one
end the same way.
"""

from __future__ import annotations

import contextlib
import json
import logging
import time
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any, Literal

from sagepush import alerts
from sagepush.events import FAILED_SECONDARY_STATUSES, PROJECT_TAG, TrainingJobStatus, described_training_job
from sagepush.ledger import NOT_CREATED, SUBMITTING, transition_key

if TYPE_CHECKING:
    from collections.abc import Callable

    from mypy_boto3_logs import CloudWatchLogsClient
    from mypy_boto3_sagemaker import SageMakerClient
    from mypy_boto3_sns import SNSClient
    from mypy_boto3_stepfunctions import SFNClient

    from sagepush.config import JobStatusSettings, ReconcileSettings
    from sagepush.events import TrainingStateChange
    from sagepush.ledger import Ledger, LedgerEntry, Recorded

logger = logging.getLogger(__name__)

TRAINING_FAILED = "sagepush.TrainingFailed"
TRAINING_STOPPED = "sagepush.TrainingStopped"
_MAX_CAUSE = 32768
# Time kept back from the Lambda deadline: a lease outlives its holder by this much, a reconcile run stops this early.
_MARGIN_MS = 10_000

AlertOutcome = Literal["published", "duplicate", "not-selected", "not-ours"]
TokenOutcome = Literal["succeeded", "failed", "already-settled", "expired", "none"]


@dataclass(frozen=True, slots=True)
class StatusOutcome:
    """What handling one state did."""

    job_name: str
    project: str | None
    status: str
    secondary_status: str
    latest: bool
    alert: AlertOutcome
    token: TokenOutcome
    closed: bool

    def as_dict(self) -> dict[str, Any]:
        """Return a JSON-ready dict."""
        return asdict(self)


@dataclass(frozen=True, slots=True)
class ReconcileReport:
    """What one reconcile run did."""

    checked: int
    outcomes: tuple[StatusOutcome, ...]
    not_created: tuple[str, ...]
    stopped_early: bool
    failed: tuple[str, ...] = ()

    def as_dict(self) -> dict[str, Any]:
        """Return a JSON-ready dict."""
        return {
            "checked": self.checked,
            "outcomes": [o.as_dict() for o in self.outcomes],
            "not_created": list(self.not_created),
            "failed": list(self.failed),
            "stopped_early": self.stopped_early,
        }


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


def handle_state_change(
    state: TrainingStateChange,
    *,
    settings: JobStatusSettings,
    ledger: Ledger,
    sns: SNSClient,
    sfn: SFNClient,
    logs: CloudWatchLogsClient,
    deadline_ms: int,
    clock: Callable[[], int] = _now_ms,
) -> StatusOutcome:
    """Record `state`, alert its transition if `ALERT_ON` selects it, and settle the task token on an end state.

    Idempotent: a duplicate finds its transition recorded and its alert sent; a stale state is recorded nowhere but
    still gets its own (late) alert once. `deadline_ms` (epoch ms) is when this invocation's time runs out: an alert
    claim's lease ends just after it. An end state's task token is settled even when alerting fails (which then
    raises, so the retry alerts).
    """
    if state.project is None and ledger.get(state.job_name) is None:
        logger.info("job neither tagged by sagepush nor in the ledger, ignored", extra={"job_name": state.job_name})
        return _outcome(state, None, False, "not-ours", "none", closed=False)
    selected = state.secondary_status in settings.alert_on
    # A selected transition's alert is claimed by the write that records the state (see DynamoDBLedger.record_state).
    recorded = ledger.record_state(
        state,
        project=state.project,
        now_ms=clock(),
        alert_key=transition_key(state) if selected else None,
        lease_until_ms=deadline_ms + _MARGIN_MS,
    )
    entry = recorded.entry
    project = entry.project or state.project
    alert: AlertOutcome = "not-selected"
    if selected:
        try:
            alert = _alert_once(state, recorded, settings=settings, ledger=ledger, sns=sns, logs=logs, clock=clock)
        except Exception:
            # The execution never waits on the alert: settle and record the token, then fail so Lambda retries. The
            # retry finds the token settled in the ledger (not settled twice) and the claim released, so it alerts.
            if state.terminal:
                _settle(state, entry, ledger=ledger, sfn=sfn, clock=clock)
            raise
    token: TokenOutcome = "none"
    closed = False
    if state.terminal:
        token = _settle(state, entry, ledger=ledger, sfn=sfn, clock=clock)
        closed = ledger.close(state.job_name, now_ms=clock())
    logger.info(
        "job state handled",
        extra={"status": state.secondary_status, "latest": recorded.applied, "alert": alert, "token": token},
    )
    return _outcome(state, project, recorded.applied, alert, token, closed=closed)


def reconcile(
    *,
    settings: ReconcileSettings,
    ledger: Ledger,
    sagemaker: SageMakerClient,
    sns: SNSClient,
    sfn: SFNClient,
    logs: CloudWatchLogsClient,
    deadline_ms: int,
    clock: Callable[[], int] = _now_ms,
) -> ReconcileReport:
    """Describe the jobs the ledger has not heard from for the grace period and handle what SageMaker says.

    Reads at most `reconcile_max_jobs` entries, the longest silent first, from the sparse UnsettledIndex (never the
    whole table, never ListTrainingJobs), and stops early when the invocation's time runs short. Each job checked is
    touched, so the next run moves on to the others.
    """

    def reconcile_one(entry: LedgerEntry) -> StatusOutcome | None:
        """Describe one silent job and handle its state; None when SageMaker never created it (closed in the ledger)."""
        try:
            description = sagemaker.describe_training_job(TrainingJobName=entry.job_name)
        except sagemaker.exceptions.ClientError as exc:
            # A job that does not exist is answered ValidationException ("Could not find training job"), on AWS as
            # on moto; ResourceNotFound is kept for safety. The name is sagepush's own and valid, so either means:
            # not there.
            if exc.response.get("Error", {}).get("Code") not in {"ValidationException", "ResourceNotFound"}:
                raise
            if entry.status not in (SUBMITTING, NOT_CREATED):
                raise
            ledger.mark_not_created(entry.job_name, now_ms=clock())
            logger.info("job was never created", extra={"job_name": entry.job_name})
            return None
        tags = {PROJECT_TAG: entry.project} if entry.project else {}
        state = described_training_job(dict(description), region=settings.aws_region, tags=tags)
        outcome = handle_state_change(
            state, settings=settings, ledger=ledger, sns=sns, sfn=sfn, logs=logs, deadline_ms=deadline_ms, clock=clock
        )
        if not outcome.closed:
            ledger.touch(entry.job_name, now_ms=clock())
        return outcome

    now = clock()
    entries = ledger.unsettled_jobs(
        silent_since_ms=now - settings.reconcile_grace_seconds * 1000, limit=settings.reconcile_max_jobs
    )
    outcomes: list[StatusOutcome] = []
    not_created: list[str] = []
    failed: list[str] = []
    for index, entry in enumerate(entries):
        if clock() > deadline_ms - _MARGIN_MS:
            logger.info("reconcile run out of time", extra={"checked": index, "found": len(entries)})
            return ReconcileReport(index, tuple(outcomes), tuple(not_created), True, tuple(failed))
        # Each job in its own try: one job that cannot be handled now (an AWS outage, a bad answer) must not keep
        # the run from the others. It is touched, so the next run starts with the rest, and counted as failed.
        try:
            outcome = reconcile_one(entry)
        except Exception:  # every failure is logged with its job and counted in the report (ReconcileFailures)
            logger.exception("reconcile could not handle a job", extra={"job_name": entry.job_name})
            failed.append(entry.job_name)
            with contextlib.suppress(Exception):  # best effort: a ledger that is down is logged above already
                ledger.touch(entry.job_name, now_ms=clock())
            continue
        if outcome is None:
            not_created.append(entry.job_name)
        else:
            outcomes.append(outcome)
    return ReconcileReport(len(entries), tuple(outcomes), tuple(not_created), False, tuple(failed))


def summary(state: TrainingStateChange) -> dict[str, Any]:
    """Return the output SendTaskSuccess gives the execution: the job, its status, artifacts, billing and metrics."""
    return {
        "job_name": state.job_name,
        "job_arn": state.job_arn,
        "status": state.status,
        "secondary_status": state.secondary_status,
        "model_artifacts": state.model_artifacts,
        "billable_seconds": state.billable_seconds,
        "final_metrics": dict(state.final_metrics),
    }


def failure_of(state: TrainingStateChange) -> tuple[str, str]:
    """Return the SendTaskFailure error and cause for an ended job that did not complete."""
    # A job stopped by its own limits did not finish its work: its execution fails as a failed job does.
    failed = state.status == TrainingJobStatus.FAILED or state.secondary_status in FAILED_SECONDARY_STATUSES
    error = TRAINING_FAILED if failed else TRAINING_STOPPED
    cause = state.failure_reason or f"training job {state.job_name} ended {state.status} ({state.secondary_status})"
    return error, cause[:_MAX_CAUSE]


def _alert_once(
    state: TrainingStateChange,
    recorded: Recorded,
    *,
    settings: JobStatusSettings,
    ledger: Ledger,
    sns: SNSClient,
    logs: CloudWatchLogsClient,
    clock: Callable[[], int],
) -> AlertOutcome:
    # See DynamoDBLedger.claim_alert for why claim, publish, mark-sent gives one alert per transition.
    claim = recorded.claim
    if claim is None:
        return "duplicate"
    try:
        tail = alerts.last_log_lines(state.job_name, logs=logs) if state.secondary_status in alerts.WITH_LOGS else ()
        alert = alerts.build_alert(state, recorded.entry, latest=recorded.applied, log_tail=tail)
        message_id = alerts.publish_alert(alert, topic_arn=settings.alerts_topic_arn, sns=sns)
    except BaseException:
        ledger.release_alert(claim)
        raise
    ledger.mark_alert_sent(claim, message_id=message_id, now_ms=clock())
    return "published"


def _settle(
    state: TrainingStateChange, entry: LedgerEntry, *, ledger: Ledger, sfn: SFNClient, clock: Callable[[], int]
) -> TokenOutcome:
    token = entry.waiting_token
    if token is None:
        return "already-settled" if entry.task_token else "none"
    outcome: TokenOutcome
    try:
        if state.status == TrainingJobStatus.COMPLETED:
            sfn.send_task_success(taskToken=token, output=json.dumps(summary(state)))
            outcome = "succeeded"
        else:
            error, cause = failure_of(state)
            sfn.send_task_failure(taskToken=token, error=error, cause=cause)
            outcome = "failed"
    except (sfn.exceptions.TaskTimedOut, sfn.exceptions.InvalidToken, sfn.exceptions.TaskDoesNotExist):
        # Settled by an earlier delivery, or the execution ended (timed out, stopped): nothing is waiting any more.
        outcome = "expired"
    ledger.mark_token_settled(state.job_name, token, outcome=outcome, now_ms=clock())
    return outcome


def _outcome(
    state: TrainingStateChange,
    project: str | None,
    latest: bool,
    alert: AlertOutcome,
    token: TokenOutcome,
    *,
    closed: bool,
) -> StatusOutcome:
    return StatusOutcome(
        job_name=state.job_name,
        project=project,
        status=state.status,
        secondary_status=state.secondary_status,
        latest=latest,
        alert=alert,
        token=token,
        closed=closed,
    )
