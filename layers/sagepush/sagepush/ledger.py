"""The job ledger: one DynamoDB item per training job, written only by conditional writes.

Item attributes: `job_name` (key), `project`, `created_at` (ISO 8601, the ProjectIndex sort key), `code_uri`,
`code_digest`, `source` (commit, branch, repo, author), `status`, `secondary_status`, `seq` (the ordering key of the
latest recorded state, see `state_seq`), `event_time` (its LastModifiedTime, epoch ms), `job_arn`, `failure_reason`,
`task_token` + `token_state`, `alerts` (transition key -> claim or sent record), `unsettled` + `touched_at` (the
sparse UnsettledIndex the reconciler reads), `expires_at` (TTL, epoch seconds).
"""

from __future__ import annotations

import logging
import re
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Protocol

from sagepush.events import SECONDARY_STATUSES, TERMINAL_STATUSES

if TYPE_CHECKING:
    from collections.abc import Mapping

    from mypy_boto3_dynamodb import DynamoDBClient

    from sagepush.events import TrainingStateChange

logger = logging.getLogger(__name__)

PROJECT_INDEX = "ProjectIndex"
UNSETTLED_INDEX = "UnsettledIndex"
SUBMITTING = "Submitting"
NOT_CREATED = "NotCreated"
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
_PRIMARY_RANK = {SUBMITTING: 0, "InProgress": 1, "Stopping": 2, "Completed": 3, "Failed": 3, "Stopped": 3}
_SECONDARY_RANK = {name: rank for rank, name in enumerate(SECONDARY_STATUSES, start=1)}
# Transitions that can happen more than once in one job's life: each occurrence is its own alert.
_REPEATABLE = frozenset({"Interrupted", "Restarting"})


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

    @property
    def terminal(self) -> bool:
        """True when the latest recorded status is an end state."""
        return self.status in TERMINAL_STATUSES

    @property
    def waiting_token(self) -> str | None:
        """The task token still to be settled, if any."""
        return self.task_token if self.task_token and self.token_state != SETTLED else None


@dataclass(frozen=True, slots=True)
class Recorded:
    """The outcome of recording a state: the entry as it now stands, and whether this state became the latest."""

    entry: LedgerEntry
    applied: bool


@dataclass(frozen=True, slots=True)
class Claim:
    """A held right to publish one transition's alert, until `lease_until_ms`."""

    job_name: str
    key: str
    claim_id: str
    lease_until_ms: int


class Ledger(Protocol):
    """The ledger port the status logic and SubmitFunction use; DynamoDBLedger implements it."""

    def record_submission(self, submission: Submission, *, now_ms: int) -> bool: ...
    def record_state(self, state: TrainingStateChange, *, project: str | None, now_ms: int) -> Recorded: ...
    def claim_alert(self, job_name: str, key: str, *, now_ms: int, lease_until_ms: int) -> Claim | None: ...
    def release_alert(self, claim: Claim) -> None: ...
    def mark_alert_sent(self, claim: Claim, *, message_id: str, now_ms: int) -> None: ...
    def mark_token_settled(self, job_name: str, token: str, *, outcome: str, now_ms: int) -> None: ...
    def close(self, job_name: str, *, now_ms: int) -> bool: ...
    def mark_not_created(self, job_name: str, *, now_ms: int) -> bool: ...
    def touch(self, job_name: str, *, now_ms: int) -> None: ...
    def get(self, job_name: str) -> LedgerEntry | None: ...
    def unsettled_jobs(self, *, silent_since_ms: int, limit: int) -> list[LedgerEntry]: ...
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
            "status": SUBMITTING,
            "secondary_status": SUBMITTING,
            "seq": 0,
            "alerts": {},
            "unsettled": _UNSETTLED,
            "touched_at": now_ms,
            "expires_at": now_ms // 1000 + RETENTION_SECONDS,
        }
        if submission.task_token:
            item |= {"task_token": submission.task_token, "token_state": WAITING}
        if self._put(item, condition="attribute_not_exists(#job_name)", names={"#job_name": "job_name"}):
            return True
        if submission.task_token:
            self._update(
                submission.job_name,
                "SET #task_token = :token, #token_state = :waiting, #unsettled = :unsettled, #touched_at = :now",
                condition="attribute_exists(#job_name) AND (attribute_not_exists(#task_token) OR #task_token <> :token)",
                values={
                    ":token": submission.task_token,
                    ":waiting": WAITING,
                    ":unsettled": _UNSETTLED,
                    ":now": now_ms,
                },
            )
        return False

    def record_state(self, state: TrainingStateChange, *, project: str | None, now_ms: int) -> Recorded:
        """Record `state` if it is newer than what the ledger holds (see `state_seq`); create the item if absent.

        Returns the entry as it now stands and whether `state` became the latest. Duplicates and stale states leave the
        item unchanged.
        """
        seq = state_seq(state.status, state.secondary_status, state.last_modified_ms)
        values: dict[str, Any] = {
            ":status": state.status,
            ":secondary": state.secondary_status,
            ":seq": seq,
            ":event_time": state.last_modified_ms,
            ":empty": {},
            ":created": _iso(state.creation_ms or state.last_modified_ms),
            ":unsettled": _UNSETTLED,
            ":now": now_ms,
            ":expires": now_ms // 1000 + RETENTION_SECONDS,
        }
        sets = [
            "#status = :status",
            "#secondary_status = :secondary",
            "#seq = :seq",
            "#event_time = :event_time",
            "#alerts = if_not_exists(#alerts, :empty)",
            "#created_at = if_not_exists(#created_at, :created)",
            "#unsettled = :unsettled",
            "#touched_at = :now",
            "#expires_at = :expires",
        ]
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
        updated = self._update(
            state.job_name,
            "SET " + ", ".join(sets),
            condition="attribute_not_exists(#seq) OR #seq < :seq",
            values=values,
            return_new=True,
        )
        if updated is not None:
            return Recorded(entry=updated, applied=True)
        current = self.get(state.job_name)
        if current is None:
            raise RuntimeError(f"ledger item {state.job_name} vanished between a failed condition and its read")
        return Recorded(entry=current, applied=False)

    def claim_alert(self, job_name: str, key: str, *, now_ms: int, lease_until_ms: int) -> Claim | None:
        """Claim the right to publish the alert for transition `key`; None when it is sent or claimed by a live holder.

        Exactly one alert per transition: a claim is taken with a lease (one conditional write), the alert published,
        then the claim marked sent. A concurrent or duplicate delivery finds the claim and stops. If the holder dies
        before publishing, the lease runs out (it is set past the holder's Lambda deadline) and a retry claims again;
        if SNS refuses the publish, the holder releases the claim before raising, so the retry does not wait. The only
        window for a second alert is a publish that succeeded followed by a lost "sent" write and an expired lease.
        """
        claim = Claim(job_name=job_name, key=key, claim_id=uuid.uuid4().hex, lease_until_ms=lease_until_ms)
        done = self._update(
            job_name,
            "SET #alerts.#key = :claim",
            condition=(
                "attribute_exists(#job_name) AND (attribute_not_exists(#alerts.#key)"
                " OR (#alerts.#key.#state = :claimed AND #alerts.#key.#lease < :now))"
            ),
            values={
                ":claim": {"state": CLAIMED, "lease": lease_until_ms, "claim": claim.claim_id},
                ":claimed": CLAIMED,
                ":now": now_ms,
            },
            names={"#key": key, "#state": "state", "#lease": "lease"},
        )
        return claim if done is not None else None

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
        closed = self._update(
            job_name,
            "REMOVE #unsettled SET #touched_at = :now",
            condition=(
                "#status IN (:completed, :failed, :stopped)"
                " AND (attribute_not_exists(#task_token) OR #token_state = :settled)"
            ),
            values={
                ":completed": "Completed",
                ":failed": "Failed",
                ":stopped": "Stopped",
                ":settled": SETTLED,
                ":now": now_ms,
            },
        )
        return closed is not None

    def mark_not_created(self, job_name: str, *, now_ms: int) -> bool:
        """Close a job recorded by Submit that SageMaker never created (its submission failed and was alerted)."""
        closed = self._update(
            job_name,
            "SET #status = :not_created, #secondary_status = :not_created, #touched_at = :now REMOVE #unsettled",
            condition="#status = :submitting",
            values={":not_created": NOT_CREATED, ":submitting": SUBMITTING, ":now": now_ms},
        )
        return closed is not None

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
        return_new: bool = False,
    ) -> LedgerEntry | None:
        """Run one conditional UpdateItem; None when the condition failed (the write was already done or is moot)."""
        text = f"{expression} {condition}"
        all_names = {f"#{word}": word for word in _NAME.findall(text)} | dict(names or {})
        used = set(_VALUE.findall(text))
        used_values = {k: v for k, v in values.items() if k in used}
        try:
            response = self._dynamodb.update_item(
                TableName=self.table_name,
                Key={"job_name": {"S": job_name}},
                UpdateExpression=expression,
                ConditionExpression=condition,
                ExpressionAttributeNames=all_names,
                ExpressionAttributeValues={k: self._serializer.serialize(v) for k, v in used_values.items()},
                ReturnValues="ALL_NEW" if return_new else "NONE",
            )
        except self._dynamodb.exceptions.ConditionalCheckFailedException:
            logger.debug("ledger write skipped", extra={"job_name": job_name, "condition": condition})
            return None
        return self._entry(response.get("Attributes", {"job_name": {"S": job_name}}))

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
        )


def _str(value: Any) -> str | None:
    return value if isinstance(value, str) else None
