"""The job ledger: one DynamoDB item per training job, written only by conditional writes.

Item attributes: `job_name` (key), `project`, `created_at` (ISO 8601, the ProjectIndex sort key), `code_uri`,
`code_digest`, `source` (commit, branch, repo, author), `status`, `secondary_status`, `seq` (the ordering key of the
latest recorded state, see `state_seq`), `event_time` (its LastModifiedTime, epoch ms), `job_arn`, `failure_reason`,
`task_token` + `token_state`, `alerts` (transition key -> claim or sent record), `unsettled` + `touched_at` (the
sparse UnsettledIndex the reconciler reads), `expires_at` (TTL, epoch seconds). An upload StageFunction refused is
an item too (`refused-…`, status Refused, the reason as `failure_reason`), so `sagepush status` lists it.
"""

from __future__ import annotations

import hashlib
import logging
import re
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Protocol

from sagepush.events import SECONDARY_STATUSES, TERMINAL_STATUSES, SecondaryStatus, TrainingJobStatus

if TYPE_CHECKING:
    from collections.abc import Mapping

    from mypy_boto3_dynamodb import DynamoDBClient

    from sagepush.events import TrainingStateChange

logger = logging.getLogger(__name__)

PROJECT_INDEX = "ProjectIndex"
UNSETTLED_INDEX = "UnsettledIndex"
SUBMITTING = "Submitting"
NOT_CREATED = "NotCreated"
REFUSED = "Refused"
"""The status of an upload StageFunction refused: an item of its own, never a job, never unsettled."""
WAITING = "waiting"
SETTLED = "settled"
CLAIMED = "claimed"
SENT = "sent"
RETENTION_SECONDS = 400 * 86400
"""How long an item outlives its last write before DynamoDB's TTL removes it."""
_UNSETTLED = "1"
# Expression placeholders: `#name` stands for the attribute `name` unless mapped explicitly (`#key` is a transition).
_NAME = re.compile(r"#([a-z_]+)")
_VALUE = re.compile(r":[a-z_]+")
_PRIMARY_RANK: dict[str, int] = {
    SUBMITTING: 0,
    TrainingJobStatus.IN_PROGRESS: 1,
    TrainingJobStatus.STOPPING: 2,
    **dict.fromkeys(TERMINAL_STATUSES, 3),
}
_SECONDARY_RANK: dict[str, int] = {name: rank for rank, name in enumerate(SECONDARY_STATUSES, start=1)}
# Transitions that can happen more than once in one job's life: each occurrence is its own alert.
_REPEATABLE = frozenset({SecondaryStatus.INTERRUPTED, SecondaryStatus.RESTARTING})
# A state is written only over an older one; an alert is claimed only when no one has sent it or holds a live claim.
_NEWER = "attribute_not_exists(#seq) OR #seq < :seq"
_CLAIMABLE = "attribute_not_exists(#alerts.#key) OR (#alerts.#key.#state = :claimed AND #alerts.#key.#lease < :now)"


def state_seq(status: str, secondary_status: str, last_modified_ms: int) -> int:
    """Return the number that orders a job's states: primary status rank, then LastModifiedTime, then secondary rank.

    A terminal status outranks every running one whatever the clocks say; within one primary status the later event
    wins, and two events stamped in the same millisecond are ordered by the usual secondary status sequence.
    """
    primary = _PRIMARY_RANK.get(status, 1)
    return primary * 10**16 + min(last_modified_ms, 10**14 - 1) * 100 + _SECONDARY_RANK.get(secondary_status, 0)


def transition_key(state: TrainingStateChange) -> str:
    """Return the key that identifies one transition of a job, under which its alert is claimed and marked sent."""
    name = state.secondary_status
    return f"{name}@{state.last_modified_ms}" if name in _REPEATABLE else name


@dataclass(frozen=True, slots=True)
class Submission:
    """What SubmitFunction knows about a job before it asks SageMaker to create it."""

    job_name: str
    project: str
    code_uri: str
    code_digest: str
    source: Mapping[str, str] = field(default_factory=dict)
    task_token: str | None = None
    attempt: int = 0
    push: str | None = None  # the `[strategy]` push the job belongs to


@dataclass(frozen=True, slots=True)
class RefusedUpload:
    """An upload StageFunction refused: which one, for which project, and why."""

    project: str
    upload_uri: str  # s3://bucket/key, with ?versionId=… when the bucket versions it
    reason: str

    @property
    def name(self) -> str:
        """The item's key: `refused-<project>-<12 hex of the upload>`, the same for every delivery of the upload."""
        digest = hashlib.sha256(self.upload_uri.encode()).hexdigest()[:12]
        return f"refused-{self.project}-{digest}"


@dataclass(frozen=True, slots=True)
class LedgerEntry:
    """One job as the ledger last recorded it."""

    job_name: str
    project: str | None = None
    created_at: str | None = None
    status: str = SUBMITTING
    secondary_status: str = SUBMITTING
    seq: int = 0
    event_time_ms: int | None = None
    code_uri: str | None = None
    code_digest: str | None = None
    source: Mapping[str, str] = field(default_factory=dict)
    job_arn: str | None = None
    failure_reason: str | None = None
    task_token: str | None = None
    token_state: str | None = None
    alerts: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    unsettled: bool = False
    push: str | None = None

    @property
    def terminal(self) -> bool:
        """True when the latest recorded status is an end state."""
        return self.status in TERMINAL_STATUSES

    @property
    def waiting_token(self) -> str | None:
        """The task token still to be settled, if any."""
        return self.task_token if self.task_token and self.token_state != SETTLED else None


@dataclass(frozen=True, slots=True)
class Claim:
    """A held right to publish one transition's alert, until `lease_until_ms`."""

    job_name: str
    key: str
    claim_id: str
    lease_until_ms: int


@dataclass(frozen=True, slots=True)
class Recorded:
    """The outcome of recording a state: the entry as it now stands, whether this state became the latest, and the
    claim on the transition's alert when one was asked for and taken (None: not asked for, or sent or held elsewhere).
    """

    entry: LedgerEntry
    applied: bool
    claim: Claim | None = None


class Ledger(Protocol):
    """The ledger port the status logic and SubmitFunction use; DynamoDBLedger implements it."""

    def record_submission(self, submission: Submission, *, now_ms: int) -> bool: ...
    def record_state(
        self,
        state: TrainingStateChange,
        *,
        project: str | None,
        now_ms: int,
        alert_key: str | None = None,
        lease_until_ms: int | None = None,
    ) -> Recorded: ...
    def claim_alert(self, job_name: str, key: str, *, now_ms: int, lease_until_ms: int) -> Claim | None: ...
    def release_alert(self, claim: Claim) -> None: ...
    def mark_alert_sent(self, claim: Claim, *, message_id: str, now_ms: int) -> None: ...
    def mark_token_settled(self, job_name: str, token: str, *, outcome: str, now_ms: int) -> None: ...
    def close(self, job_name: str, *, now_ms: int) -> bool: ...
    def mark_not_created(self, job_name: str, *, now_ms: int) -> bool: ...
    def touch(self, job_name: str, *, now_ms: int) -> None: ...
    def get(self, job_name: str) -> LedgerEntry | None: ...
    def unsettled_jobs(self, *, silent_since_ms: int, limit: int) -> list[LedgerEntry]: ...
    def record_refusal(self, refusal: RefusedUpload, *, now_ms: int) -> None: ...
    def project_jobs(self, project: str, *, limit: int) -> list[LedgerEntry]: ...


def _iso(now_ms: int) -> str:
    return datetime.fromtimestamp(now_ms / 1000, UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


class DynamoDBLedger:
    """The ledger in one DynamoDB table. Every write carries a condition; a failed condition means "already done"."""

    def __init__(self, table_name: str, *, dynamodb: DynamoDBClient) -> None:
        from boto3.dynamodb.types import TypeDeserializer, TypeSerializer

        self.table_name = table_name
        self._dynamodb = dynamodb
        self._serializer = TypeSerializer()
        self._deserializer = TypeDeserializer()

    # ------------------------------------------------------------------ writes
    def record_submission(self, submission: Submission, *, now_ms: int) -> bool:
        """Record a job before CreateTrainingJob, with its task token; return False when it was already recorded.

        A repeated submission (a retried Submit task gets a new token) stores the new token and reopens the job so
        the reconciler settles it even if the job ended in between.
        """
        item: dict[str, Any] = {
            "job_name": submission.job_name,
            "project": submission.project,
            "created_at": _iso(now_ms),
            "code_uri": submission.code_uri,
            "code_digest": submission.code_digest,
            "source": {k: v for k, v in submission.source.items() if v},
            **({"push": submission.push} if submission.push else {}),
            "status": SUBMITTING,
            "secondary_status": SUBMITTING,
            "seq": 0,
            "alerts": {},
            "unsettled": _UNSETTLED,
            "touched_at": now_ms,
            "expires_at": now_ms // 1000 + RETENTION_SECONDS,
        }
        if submission.task_token:
            item |= {"task_token": submission.task_token, "token_state": WAITING, "token_attempt": submission.attempt}
        if self._put(item, condition="attribute_not_exists(#job_name)", names={"#job_name": "job_name"}):
            return True
        if submission.task_token:
            # A new attempt's token replaces an older attempt's, never the reverse: Lambda may report a Submit
            # invocation failed (and the state machine retry it) while that invocation still runs and writes late.
            self._update(
                submission.job_name,
                "SET #task_token = :token, #token_state = :waiting, #token_attempt = :attempt,"
                " #unsettled = :unsettled, #touched_at = :now",
                condition="attribute_exists(#job_name) AND (attribute_not_exists(#task_token) OR #task_token <> :token)"
                " AND (attribute_not_exists(#token_attempt) OR #token_attempt <= :attempt)",
                values={
                    ":token": submission.task_token,
                    ":waiting": WAITING,
                    ":attempt": submission.attempt,
                    ":unsettled": _UNSETTLED,
                    ":now": now_ms,
                },
            )
        return False

    def record_state(
        self,
        state: TrainingStateChange,
        *,
        project: str | None,
        now_ms: int,
        alert_key: str | None = None,
        lease_until_ms: int | None = None,
    ) -> Recorded:
        """Record `state` if it is newer than what the ledger holds (see `state_seq`); create the item if absent.

        Returns the entry as it now stands and whether `state` became the latest. Duplicates and stale states leave the
        item unchanged.

        With `alert_key`, the transition's alert is claimed as `claim_alert` does, until `lease_until_ms`, and the claim
        returned in `Recorded.claim`. For a job the ledger holds, a newer state is recorded and its alert claimed in one
        conditional write. When that condition fails, the item as it stood (returned with the failure) decides the one
        follow-up, itself a conditional write: a duplicate or stale state is not recorded, but its alert is claimed if
        no one has sent or holds it (a late transition still gets its one alert); a newer state whose alert is sent or
        held is recorded without a claim; a job the ledger does not hold yet is created, then its alert claimed.
        """
        seq = state_seq(state.status, state.secondary_status, state.last_modified_ms)
        if alert_key is None:
            return self._record(state, seq, project=project, now_ms=now_ms)
        if lease_until_ms is None:
            raise ValueError("claiming an alert needs lease_until_ms")
        claim = Claim(job_name=state.job_name, key=alert_key, claim_id=uuid.uuid4().hex, lease_until_ms=lease_until_ms)
        # The item exists (it has `alerts`), so it has `created_at` too: both are written by whoever creates an item.
        sets, values = _state_sets(state, seq, project=project, now_ms=now_ms, creating=False)
        sets.append("#alerts.#key = :claim")
        values |= {":claim": _claim_value(claim), ":claimed": CLAIMED}
        updated, old = self._update_or_old(
            state.job_name,
            "SET " + ", ".join(sets),
            condition=f"attribute_exists(#alerts) AND ({_NEWER}) AND ({_CLAIMABLE})",
            values=values,
            names={"#key": alert_key, "#state": "state", "#lease": "lease"},
        )
        if updated is not None:
            return Recorded(entry=updated, applied=True, claim=claim)
        if old is not None and "alerts" in old:
            entry = self._entry(old)
            if _holds(entry, claim):  # this write was applied, its answer lost, and botocore's retry sent it again
                return Recorded(entry=entry, applied=True, claim=claim)
            claimable = _claimable(entry.alerts.get(alert_key), now_ms=now_ms)
            if entry.seq >= seq:  # a duplicate or a stale state: not recorded, alerted if its alert is still free
                taken = (
                    self.claim_alert(state.job_name, alert_key, now_ms=now_ms, lease_until_ms=lease_until_ms)
                    if claimable
                    else None
                )
                return Recorded(entry=entry, applied=False, claim=taken)
            if not claimable:  # a newer state of a transition already alerted (or being alerted)
                return self._record(state, seq, project=project, now_ms=now_ms)
        # No item (or one without an alerts map): record it, creating it, then claim; each step is conditional.
        recorded = self._record(state, seq, project=project, now_ms=now_ms)
        taken = self.claim_alert(state.job_name, alert_key, now_ms=now_ms, lease_until_ms=lease_until_ms)
        return Recorded(entry=recorded.entry, applied=recorded.applied, claim=taken)

    def claim_alert(self, job_name: str, key: str, *, now_ms: int, lease_until_ms: int) -> Claim | None:
        """Claim the right to publish the alert for transition `key`; None when it is sent or claimed by a live holder.

        Exactly one alert per transition: a claim is taken with a lease (one conditional write: this one, or the write
        that records the state when `record_state` is given the transition's key), the alert published, then the claim
        marked sent. A concurrent or duplicate delivery finds the claim and stops. If the holder dies before
        publishing, the lease runs out (it is set past the holder's Lambda deadline) and a retry claims again; if SNS
        refuses the publish, the holder releases the claim before raising, so the retry does not wait. A claiming write
        whose answer was lost, sent again by botocore's retry, finds its own claim and keeps it. The only window for a
        second alert is a publish that succeeded followed by a lost "sent" write and an expired lease.
        """
        claim = Claim(job_name=job_name, key=key, claim_id=uuid.uuid4().hex, lease_until_ms=lease_until_ms)
        done, old = self._update_or_old(
            job_name,
            "SET #alerts.#key = :claim",
            condition=f"attribute_exists(#job_name) AND ({_CLAIMABLE})",
            values={":claim": _claim_value(claim), ":claimed": CLAIMED, ":now": now_ms},
            names={"#key": key, "#state": "state", "#lease": "lease"},
            return_new=False,
        )
        if done is not None or (old is not None and _holds(self._entry(old), claim)):
            return claim
        return None

    def release_alert(self, claim: Claim) -> None:
        """Give a claim back (the publish failed), so the next delivery can claim it at once."""
        self._update(
            claim.job_name,
            "REMOVE #alerts.#key",
            condition="#alerts.#key.#claim = :claim",
            values={":claim": claim.claim_id},
            names={"#key": claim.key, "#claim": "claim"},
        )

    def mark_alert_sent(self, claim: Claim, *, message_id: str, now_ms: int) -> None:
        """Mark a claimed transition's alert as published."""
        self._update(
            claim.job_name,
            "SET #alerts.#key = :sent",
            condition="attribute_exists(#job_name)",
            values={":sent": {"state": SENT, "at": now_ms, "message_id": message_id}},
            names={"#key": claim.key},
        )

    def mark_token_settled(self, job_name: str, token: str, *, outcome: str, now_ms: int) -> None:
        """Record that `token` was settled (or found already settled or expired); a newer token is left alone."""
        self._update(
            job_name,
            "SET #token_state = :settled, #settled_as = :outcome, #touched_at = :now",
            condition="#task_token = :token",
            values={":settled": SETTLED, ":outcome": outcome, ":now": now_ms, ":token": token},
            names={"#settled_as": "settled_as"},
        )

    def close(self, job_name: str, *, now_ms: int) -> bool:
        """Take an ended job with no waiting token out of the UnsettledIndex; False when it is not yet done."""
        return self._update(
            job_name,
            "REMOVE #unsettled SET #touched_at = :now",
            condition=(
                "#status IN (:completed, :failed, :stopped)"
                " AND (attribute_not_exists(#task_token) OR #token_state = :settled)"
            ),
            values={
                ":completed": TrainingJobStatus.COMPLETED,
                ":failed": TrainingJobStatus.FAILED,
                ":stopped": TrainingJobStatus.STOPPED,
                ":settled": SETTLED,
                ":now": now_ms,
            },
        )

    def mark_not_created(self, job_name: str, *, now_ms: int) -> bool:
        """Close a job recorded by Submit that SageMaker never created (its submission failed and was alerted).

        A job already marked not created but reopened by a retried Submit (a new token) is closed again.
        """
        return self._update(
            job_name,
            "SET #status = :not_created, #secondary_status = :not_created, #touched_at = :now REMOVE #unsettled",
            condition="#status IN (:submitting, :not_created)",
            values={":not_created": NOT_CREATED, ":submitting": SUBMITTING, ":now": now_ms},
        )

    def record_refusal(self, refusal: RefusedUpload, *, now_ms: int) -> None:
        """Record a refused upload under `refusal.name`: a redelivery of the same upload writes the same item again.

        It is never unsettled, so the reconciler never sees it, and never a job name SageMaker could hold.
        """
        item = {
            "job_name": refusal.name,
            "project": refusal.project,
            "created_at": _iso(now_ms),
            "status": REFUSED,
            "secondary_status": REFUSED,
            "seq": 0,
            "failure_reason": refusal.reason,
            "source": {"upload": refusal.upload_uri},
            "alerts": {},
            "touched_at": now_ms,
            "expires_at": now_ms // 1000 + RETENTION_SECONDS,
        }
        self._dynamodb.put_item(
            TableName=self.table_name, Item={k: self._serializer.serialize(v) for k, v in item.items()}
        )

    def touch(self, job_name: str, *, now_ms: int) -> None:
        """Move an unsettled job to the back of the reconciler's queue."""
        self._update(
            job_name, "SET #touched_at = :now", condition="attribute_exists(#unsettled)", values={":now": now_ms}
        )

    # ------------------------------------------------------------------ reads
    def get(self, job_name: str) -> LedgerEntry | None:
        """Return the job's entry (strongly consistent), or None."""
        response = self._dynamodb.get_item(
            TableName=self.table_name, Key={"job_name": {"S": job_name}}, ConsistentRead=True
        )
        return self._entry(response["Item"]) if "Item" in response else None

    def unsettled_jobs(self, *, silent_since_ms: int, limit: int) -> list[LedgerEntry]:
        """Return up to `limit` unsettled jobs not written since `silent_since_ms`, the longest silent first."""
        response = self._dynamodb.query(
            TableName=self.table_name,
            IndexName=UNSETTLED_INDEX,
            KeyConditionExpression="#unsettled = :unsettled AND #touched_at < :since",
            ExpressionAttributeNames={"#unsettled": "unsettled", "#touched_at": "touched_at"},
            ExpressionAttributeValues={":unsettled": {"S": _UNSETTLED}, ":since": {"N": str(silent_since_ms)}},
            ScanIndexForward=True,
            Limit=limit,
        )
        return [self._entry(item) for item in response.get("Items", [])]

    def project_jobs(self, project: str, *, limit: int) -> list[LedgerEntry]:
        """Return a project's newest `limit` jobs, newest first."""
        response = self._dynamodb.query(
            TableName=self.table_name,
            IndexName=PROJECT_INDEX,
            KeyConditionExpression="#project = :project",
            ExpressionAttributeNames={"#project": "project"},
            ExpressionAttributeValues={":project": {"S": project}},
            ScanIndexForward=False,
            Limit=limit,
        )
        return [self._entry(item) for item in response.get("Items", [])]

    def recent_jobs(self, *, limit: int, scan_cap: int = 2000) -> list[LedgerEntry]:
        """Return the newest `limit` jobs of every project, newest first, from a scan of at most `scan_cap` items.

        The ledger has no index across projects by time (`project_jobs` is the indexed read); this serves a person
        looking at a table, where a bounded scan is cheap and a missing old job is no loss.
        """
        entries: list[LedgerEntry] = []
        for page in self._dynamodb.get_paginator("scan").paginate(
            TableName=self.table_name, PaginationConfig={"MaxItems": scan_cap, "PageSize": 500}
        ):
            entries.extend(self._entry(item) for item in page.get("Items", []))
        entries.sort(key=lambda entry: entry.created_at or "", reverse=True)
        return entries[:limit]

    # ------------------------------------------------------------------ plumbing
    def _record(self, state: TrainingStateChange, seq: int, *, project: str | None, now_ms: int) -> Recorded:
        """Write `state` under the ordering condition, creating the item if absent; no alert claim."""
        sets, values = _state_sets(state, seq, project=project, now_ms=now_ms, creating=True)
        updated, old = self._update_or_old(state.job_name, "SET " + ", ".join(sets), condition=_NEWER, values=values)
        if updated is not None:
            return Recorded(entry=updated, applied=True)
        if old is None:
            raise RuntimeError(f"ledger item {state.job_name} failed the ordering condition but was not returned")
        return Recorded(entry=self._entry(old), applied=False)

    def _put(self, item: Mapping[str, Any], *, condition: str, names: Mapping[str, str]) -> bool:
        try:
            self._dynamodb.put_item(
                TableName=self.table_name,
                Item={k: self._serializer.serialize(v) for k, v in item.items()},
                ConditionExpression=condition,
                ExpressionAttributeNames=dict(names),
            )
        except self._dynamodb.exceptions.ConditionalCheckFailedException:
            return False
        return True

    def _update(
        self,
        job_name: str,
        expression: str,
        *,
        condition: str,
        values: Mapping[str, Any],
        names: Mapping[str, str] | None = None,
    ) -> bool:
        """Run one conditional UpdateItem; False when the condition failed (the write was already done or is moot)."""
        try:
            self._dynamodb.update_item(
                **self._update_params(job_name, expression, condition, values, names), ReturnValues="NONE"
            )
        except self._dynamodb.exceptions.ConditionalCheckFailedException:
            logger.debug("ledger write skipped", extra={"job_name": job_name, "condition": condition})
            return False
        return True

    def _update_or_old(
        self,
        job_name: str,
        expression: str,
        *,
        condition: str,
        values: Mapping[str, Any],
        names: Mapping[str, str] | None = None,
        return_new: bool = True,
    ) -> tuple[LedgerEntry | None, dict[str, Any] | None]:
        """Run one conditional UpdateItem: (the item as written, or only its key without `return_new`; None), or on a
        failed condition (None; the item as it stood, in DynamoDB's typed form, or None when there was no item)."""
        try:
            response = self._dynamodb.update_item(
                **self._update_params(job_name, expression, condition, values, names),
                ReturnValues="ALL_NEW" if return_new else "NONE",
                ReturnValuesOnConditionCheckFailure="ALL_OLD",
            )
        except self._dynamodb.exceptions.ConditionalCheckFailedException as failed:
            logger.debug("ledger write skipped", extra={"job_name": job_name, "condition": condition})
            old: dict[str, Any] | None = failed.response.get("Item")  # type: ignore[assignment]
            return None, old
        return self._entry(response.get("Attributes", {"job_name": {"S": job_name}})), None

    def _update_params(
        self,
        job_name: str,
        expression: str,
        condition: str,
        values: Mapping[str, Any],
        names: Mapping[str, str] | None,
    ) -> dict[str, Any]:
        text = f"{expression} {condition}"
        all_names = {f"#{word}": word for word in _NAME.findall(text)} | dict(names or {})
        used = set(_VALUE.findall(text))
        serialize = self._serializer.serialize
        return {
            "TableName": self.table_name,
            "Key": {"job_name": {"S": job_name}},
            "UpdateExpression": expression,
            "ConditionExpression": condition,
            "ExpressionAttributeNames": all_names,
            "ExpressionAttributeValues": {k: serialize(v) for k, v in values.items() if k in used},
        }

    def _entry(self, item: Mapping[str, Any]) -> LedgerEntry:
        data = {k: self._deserializer.deserialize(v) for k, v in item.items()}
        return LedgerEntry(
            job_name=str(data["job_name"]),
            project=_str(data.get("project")),
            created_at=_str(data.get("created_at")),
            status=str(data.get("status", SUBMITTING)),
            secondary_status=str(data.get("secondary_status", SUBMITTING)),
            seq=int(data.get("seq", 0)),
            event_time_ms=int(data["event_time"]) if "event_time" in data else None,
            code_uri=_str(data.get("code_uri")),
            code_digest=_str(data.get("code_digest")),
            source={str(k): str(v) for k, v in dict(data.get("source") or {}).items()},
            job_arn=_str(data.get("job_arn")),
            failure_reason=_str(data.get("failure_reason")),
            task_token=_str(data.get("task_token")),
            token_state=_str(data.get("token_state")),
            alerts=dict(data.get("alerts") or {}),
            unsettled="unsettled" in data,
            push=_str(data.get("push")),
        )


def _str(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def _state_sets(
    state: TrainingStateChange, seq: int, *, project: str | None, now_ms: int, creating: bool
) -> tuple[list[str], dict[str, Any]]:
    """Return the SET clauses and values that record `state`.

    `creating` adds what only an item being created lacks (`alerts`, `created_at`); an item that has `alerts` has both.
    """
    values: dict[str, Any] = {
        ":status": state.status,
        ":secondary": state.secondary_status,
        ":seq": seq,
        ":event_time": state.last_modified_ms,
        ":unsettled": _UNSETTLED,
        ":now": now_ms,
        ":expires": now_ms // 1000 + RETENTION_SECONDS,
    }
    sets = [
        "#status = :status",
        "#secondary_status = :secondary",
        "#seq = :seq",
        "#event_time = :event_time",
        "#unsettled = :unsettled",
        "#touched_at = :now",
        "#expires_at = :expires",
    ]
    if creating:
        sets += ["#alerts = if_not_exists(#alerts, :empty)", "#created_at = if_not_exists(#created_at, :created)"]
        values |= {":empty": {}, ":created": _iso(state.creation_ms or state.last_modified_ms)}
    optional = {
        "project": project,
        "job_arn": state.job_arn,
        "failure_reason": state.failure_reason,
        "model_artifacts": state.model_artifacts,
        "billable_seconds": state.billable_seconds,
    }
    for name, value in optional.items():
        if value is not None:
            keep = name == "project"
            sets.append(f"#{name} = if_not_exists(#{name}, :{name})" if keep else f"#{name} = :{name}")
            values[f":{name}"] = value
    return sets, values


def _claim_value(claim: Claim) -> dict[str, Any]:
    return {"state": CLAIMED, "lease": claim.lease_until_ms, "claim": claim.claim_id}


def _holds(entry: LedgerEntry, claim: Claim) -> bool:
    """True when `entry` records `claim` itself as its transition's claim."""
    held = entry.alerts.get(claim.key)
    return held is not None and held.get("claim") == claim.claim_id


def _claimable(held: Mapping[str, Any] | None, *, now_ms: int) -> bool:
    """The `_CLAIMABLE` condition on an alert record as read: absent, or claimed with a lease that has run out."""
    if held is None:
        return True
    lease = held.get("lease")
    return held.get("state") == CLAIMED and lease is not None and lease < now_ms
