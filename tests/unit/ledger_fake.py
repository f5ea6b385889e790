"""An in-memory ledger with DynamoDBLedger's conditional semantics, recording every call, for status tests.

`tests/unit/test_ledger_contract.py` runs one behaviour suite against this fake and against DynamoDBLedger on moto,
so a rule that drifts from the real ledger's fails there.
"""

from __future__ import annotations

import dataclasses
import uuid
from typing import TYPE_CHECKING, Any

from sagepush.events import TERMINAL_STATUSES
from sagepush.ledger import (
    CLAIMED,
    NOT_CREATED,
    REFUSED,
    SENT,
    SETTLED,
    SUBMITTING,
    WAITING,
    Claim,
    LedgerEntry,
    Recorded,
    RefusedUpload,
    Submission,
    _iso,
    state_seq,
)

if TYPE_CHECKING:
    from collections.abc import Mapping

    from sagepush.events import TrainingStateChange


class FakeLedger:
    """Keeps entries in a dict and each job's `touched_at` in `touched`; `calls` lists (method, job_name) in order.

    Every write is conditional as DynamoDBLedger's is: a write to a job the ledger does not hold does nothing (False or
    None where the real one answers so). `record_state` with an alert key records and claims as one call.
    """

    def __init__(self) -> None:
        self.entries: dict[str, LedgerEntry] = {}
        self.touched: dict[str, int] = {}
        self.token_attempts: dict[str, int] = {}
        self.calls: list[tuple[str, str]] = []
        self.sent: list[tuple[str, str]] = []

    def _set(self, name: str, **changes: Any) -> LedgerEntry:
        self.entries[name] = dataclasses.replace(self.entries[name], **changes)
        return self.entries[name]

    def record_submission(self, submission: Submission, *, now_ms: int) -> bool:
        self.calls.append(("record_submission", submission.job_name))
        name = submission.job_name
        current = self.entries.get(name)
        if current is None:
            self.entries[name] = LedgerEntry(
                job_name=name,
                project=submission.project,
                created_at=_iso(now_ms),
                code_uri=submission.code_uri,
                code_digest=submission.code_digest,
                source={k: v for k, v in submission.source.items() if v},
                task_token=submission.task_token,
                token_state=WAITING if submission.task_token else None,
                unsettled=True,
                push=submission.push,
            )
            self.touched[name] = now_ms
            if submission.task_token:
                self.token_attempts[name] = submission.attempt
            return True
        # A retried Submit task brings a new token: store it and reopen the job. The same token again, or the token
        # of an older attempt arriving late, changes nothing.
        newer = self.token_attempts.get(name, submission.attempt) <= submission.attempt
        if submission.task_token and current.task_token != submission.task_token and newer:
            self._set(name, task_token=submission.task_token, token_state=WAITING, unsettled=True)
            self.token_attempts[name] = submission.attempt
            self.touched[name] = now_ms
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
        if alert_key is None:
            return self._record(state, project=project, now_ms=now_ms)
        if lease_until_ms is None:
            raise ValueError("claiming an alert needs lease_until_ms")
        claim_id = uuid.uuid4().hex
        current = self.entries.get(state.job_name)
        if current is not None and _held_by(current.alerts.get(alert_key), claim_id):
            # The same write again (its answer was lost and botocore resent it): it was applied, the claim is its own.
            return Recorded(
                entry=current, applied=True, claim=Claim(state.job_name, alert_key, claim_id, lease_until_ms)
            )
        recorded = self._record(state, project=project, now_ms=now_ms)
        claim = self._claim(state.job_name, alert_key, claim_id, now_ms=now_ms, lease_until_ms=lease_until_ms)
        return dataclasses.replace(recorded, claim=claim)

    def _record(self, state: TrainingStateChange, *, project: str | None, now_ms: int) -> Recorded:
        seq = state_seq(state.status, state.secondary_status, state.last_modified_ms)
        current = self.entries.get(state.job_name)
        if current is not None and current.seq >= seq:
            return Recorded(entry=current, applied=False)
        base = current or LedgerEntry(job_name=state.job_name)
        self.entries[state.job_name] = dataclasses.replace(
            base,
            project=base.project or project,
            created_at=base.created_at or _iso(state.creation_ms or state.last_modified_ms),
            status=state.status,
            secondary_status=state.secondary_status,
            seq=seq,
            event_time_ms=state.last_modified_ms,
            job_arn=state.job_arn if state.job_arn is not None else base.job_arn,
            failure_reason=state.failure_reason if state.failure_reason is not None else base.failure_reason,
            unsettled=True,
        )
        self.touched[state.job_name] = now_ms
        return Recorded(entry=self.entries[state.job_name], applied=True)

    def claim_alert(self, job_name: str, key: str, *, now_ms: int, lease_until_ms: int) -> Claim | None:
        self.calls.append(("claim_alert", job_name))
        return self._claim(job_name, key, uuid.uuid4().hex, now_ms=now_ms, lease_until_ms=lease_until_ms)

    def _claim(self, job_name: str, key: str, claim_id: str, *, now_ms: int, lease_until_ms: int) -> Claim | None:
        current = self.entries.get(job_name)
        if current is None:
            return None
        claim = Claim(job_name, key, claim_id, lease_until_ms)
        held = current.alerts.get(key)
        if _held_by(held, claim_id):  # the same claim again: its answer was lost and botocore resent it
            return claim
        if held is not None and not (held.get("state") == CLAIMED and held.get("lease", now_ms) < now_ms):
            return None
        self._set(
            job_name, alerts={**current.alerts, key: {"state": CLAIMED, "lease": lease_until_ms, "claim": claim_id}}
        )
        return claim

    def release_alert(self, claim: Claim) -> None:
        self.calls.append(("release_alert", claim.job_name))
        current = self.entries.get(claim.job_name)
        if current is not None and _held_by(current.alerts.get(claim.key), claim.claim_id):
            self._set(claim.job_name, alerts={k: v for k, v in current.alerts.items() if k != claim.key})

    def mark_alert_sent(self, claim: Claim, *, message_id: str, now_ms: int) -> None:
        self.calls.append(("mark_alert_sent", claim.job_name))
        current = self.entries.get(claim.job_name)
        if current is None:
            return
        sent = {"state": SENT, "at": now_ms, "message_id": message_id}
        self._set(claim.job_name, alerts={**current.alerts, claim.key: sent})
        self.sent.append((claim.job_name, claim.key))

    def mark_token_settled(self, job_name: str, token: str, *, outcome: str, now_ms: int) -> None:
        self.calls.append(("mark_token_settled", job_name))
        current = self.entries.get(job_name)
        if current is not None and current.task_token == token:
            self._set(job_name, token_state=SETTLED)
            self.touched[job_name] = now_ms

    def close(self, job_name: str, *, now_ms: int) -> bool:
        self.calls.append(("close", job_name))
        current = self.entries.get(job_name)
        if current is None or current.status not in TERMINAL_STATUSES:
            return False
        if current.task_token is not None and current.token_state != SETTLED:
            return False
        self._set(job_name, unsettled=False)
        self.touched[job_name] = now_ms
        return True

    def mark_not_created(self, job_name: str, *, now_ms: int) -> bool:
        self.calls.append(("mark_not_created", job_name))
        current = self.entries.get(job_name)
        if current is None or current.status not in (SUBMITTING, NOT_CREATED):
            return False
        self._set(job_name, status=NOT_CREATED, secondary_status=NOT_CREATED, unsettled=False)
        self.touched[job_name] = now_ms
        return True

    def touch(self, job_name: str, *, now_ms: int) -> None:
        self.calls.append(("touch", job_name))
        current = self.entries.get(job_name)
        if current is not None and current.unsettled:
            self.touched[job_name] = now_ms

    def get(self, job_name: str) -> LedgerEntry | None:
        return self.entries.get(job_name)

    def unsettled_jobs(self, *, silent_since_ms: int, limit: int) -> list[LedgerEntry]:
        found = [e for e in self.entries.values() if e.unsettled and self.touched[e.job_name] < silent_since_ms]
        return sorted(found, key=lambda e: self.touched[e.job_name])[:limit]

    def project_jobs(self, project: str, *, limit: int) -> list[LedgerEntry]:
        found = [e for e in self.entries.values() if e.project == project and e.created_at]
        return sorted(found, key=lambda e: e.created_at or "", reverse=True)[:limit]

    def record_refusal(self, refusal: RefusedUpload, *, now_ms: int) -> None:
        self.calls.append(("record_refusal", refusal.name))
        self.entries[refusal.name] = LedgerEntry(
            job_name=refusal.name,
            project=refusal.project,
            created_at=_iso(now_ms),
            status=REFUSED,
            secondary_status=REFUSED,
            failure_reason=refusal.reason,
            source={"upload": refusal.upload_uri},
        )
        self.touched[refusal.name] = now_ms


def _held_by(held: Mapping[str, Any] | None, claim_id: str) -> bool:
    return held is not None and held.get("claim") == claim_id
