"""An in-memory ledger with DynamoDBLedger's conditional semantics, recording every call, for status tests."""

from __future__ import annotations

import dataclasses
import uuid
from typing import TYPE_CHECKING, Any

from sagepush.ledger import (
    CLAIMED,
    NOT_CREATED,
    SENT,
    SETTLED,
    SUBMITTING,
    WAITING,
    Claim,
    LedgerEntry,
    Recorded,
    Submission,
    state_seq,
)

if TYPE_CHECKING:
    from sagepush.events import TrainingStateChange


class FakeLedger:
    """Keeps entries in a dict; `calls` lists (method, job_name) in order.

    `record_state` with an alert key records and claims as one call, as DynamoDBLedger does in one write when it can.
    """

    def __init__(self) -> None:
        self.entries: dict[str, LedgerEntry] = {}
        self.touched: dict[str, int] = {}
        self.calls: list[tuple[str, str]] = []
        self.sent: list[tuple[str, str]] = []

    def _set(self, name: str, **changes: Any) -> LedgerEntry:
        self.entries[name] = dataclasses.replace(self.entries[name], **changes)
        return self.entries[name]

    def record_submission(self, submission: Submission, *, now_ms: int) -> bool:
        self.calls.append(("record_submission", submission.job_name))
        self.touched[submission.job_name] = now_ms
        if submission.job_name not in self.entries:
            self.entries[submission.job_name] = LedgerEntry(
                job_name=submission.job_name,
                project=submission.project,
                code_uri=submission.code_uri,
                code_digest=submission.code_digest,
                source=dict(submission.source),
                task_token=submission.task_token,
                token_state=WAITING if submission.task_token else None,
                unsettled=True,
            )
            return True
        if submission.task_token:
            self._set(submission.job_name, task_token=submission.task_token, token_state=WAITING, unsettled=True)
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
        self.calls.append(("record_state", state.job_name))
        recorded = self._record(state, project=project, now_ms=now_ms)
        if alert_key is None:
            return recorded
        if lease_until_ms is None:
            raise ValueError("claiming an alert needs lease_until_ms")
        claim = self._claim(state.job_name, alert_key, now_ms=now_ms, lease_until_ms=lease_until_ms)
        return dataclasses.replace(recorded, claim=claim)

    def _record(self, state: TrainingStateChange, *, project: str | None, now_ms: int) -> Recorded:
        seq = state_seq(state.status, state.secondary_status, state.last_modified_ms)
        current = self.entries.get(state.job_name)
        if current is not None and current.event_time_ms is not None and current.seq >= seq:
            return Recorded(entry=current, applied=False)
        base = current or LedgerEntry(job_name=state.job_name)
        self.entries[state.job_name] = dataclasses.replace(
            base,
            project=base.project or project,
            status=state.status,
            secondary_status=state.secondary_status,
            seq=seq,
            event_time_ms=state.last_modified_ms,
            job_arn=state.job_arn or base.job_arn,
            failure_reason=state.failure_reason or base.failure_reason,
            unsettled=True,
        )
        self.touched[state.job_name] = now_ms
        return Recorded(entry=self.entries[state.job_name], applied=True)

    def claim_alert(self, job_name: str, key: str, *, now_ms: int, lease_until_ms: int) -> Claim | None:
        self.calls.append(("claim_alert", job_name))
        return self._claim(job_name, key, now_ms=now_ms, lease_until_ms=lease_until_ms)

    def _claim(self, job_name: str, key: str, *, now_ms: int, lease_until_ms: int) -> Claim | None:
        alerts = dict(self.entries[job_name].alerts)
        held = alerts.get(key)
        if held and not (held["state"] == CLAIMED and held["lease"] < now_ms):
            return None
        claim = Claim(job_name, key, uuid.uuid4().hex, lease_until_ms)
        alerts[key] = {"state": CLAIMED, "lease": lease_until_ms, "claim": claim.claim_id}
        self._set(job_name, alerts=alerts)
        return claim

    def release_alert(self, claim: Claim) -> None:
        self.calls.append(("release_alert", claim.job_name))
        alerts = dict(self.entries[claim.job_name].alerts)
        if alerts.get(claim.key, {}).get("claim") == claim.claim_id:
            del alerts[claim.key]
            self._set(claim.job_name, alerts=alerts)

    def mark_alert_sent(self, claim: Claim, *, message_id: str, now_ms: int) -> None:
        self.calls.append(("mark_alert_sent", claim.job_name))
        alerts = dict(self.entries[claim.job_name].alerts)
        alerts[claim.key] = {"state": SENT, "at": now_ms, "message_id": message_id}
        self._set(claim.job_name, alerts=alerts)
        self.sent.append((claim.job_name, claim.key))

    def mark_token_settled(self, job_name: str, token: str, *, outcome: str, now_ms: int) -> None:
        self.calls.append(("mark_token_settled", job_name))
        if self.entries[job_name].task_token == token:
            self._set(job_name, token_state=SETTLED)

    def close(self, job_name: str, *, now_ms: int) -> bool:
        self.calls.append(("close", job_name))
        entry = self.entries[job_name]
        if entry.terminal and entry.waiting_token is None:
            self._set(job_name, unsettled=False)
            return True
        return False

    def mark_not_created(self, job_name: str, *, now_ms: int) -> bool:
        self.calls.append(("mark_not_created", job_name))
        if self.entries[job_name].status != SUBMITTING:
            return False
        self._set(job_name, status=NOT_CREATED, secondary_status=NOT_CREATED, unsettled=False)
        return True

    def touch(self, job_name: str, *, now_ms: int) -> None:
        self.calls.append(("touch", job_name))
        self.touched[job_name] = now_ms

    def get(self, job_name: str) -> LedgerEntry | None:
        return self.entries.get(job_name)

    def unsettled_jobs(self, *, silent_since_ms: int, limit: int) -> list[LedgerEntry]:
        found = [e for e in self.entries.values() if e.unsettled and self.touched.get(e.job_name, 0) < silent_since_ms]
        return sorted(found, key=lambda e: self.touched.get(e.job_name, 0))[:limit]

    def project_jobs(self, project: str, *, limit: int) -> list[LedgerEntry]:
        return [e for e in self.entries.values() if e.project == project][:limit]
