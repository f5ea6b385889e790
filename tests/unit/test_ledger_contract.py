"""One behaviour suite for the ledger port, run against the unit tests' FakeLedger and DynamoDBLedger on moto.

The status and submit unit tests trust FakeLedger to behave as DynamoDBLedger does; every rule they lean on is stated
here once and checked against both, the real one on a table made from template.yaml's LedgerTable (its indexes too).
"""

from __future__ import annotations

import dataclasses
import functools
import json
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Any

import boto3
import pytest

from sagepush.events import training_state_change
from sagepush.ledger import (
    NOT_CREATED,
    REFUSED,
    SETTLED,
    SUBMITTING,
    WAITING,
    DynamoDBLedger,
    RefusedUpload,
    Submission,
)
from tests.unit.ledger_fake import FakeLedger

if TYPE_CHECKING:
    from collections.abc import Iterator

    from sagepush.events import TrainingStateChange
    from sagepush.ledger import Ledger

EVENTS = Path(__file__).resolve().parents[2] / "events"
JOB = "iris-3f5c0f2a-6b1e9d"
NOW = 1735727600000  # 2025-01-01T10:33:20Z, after every event in events/
LEASE = NOW + 60_000
CODE_URI = "s3://artifacts/code/iris/3f5c/sourcedir.tar.gz"


@functools.cache
def ledger_table() -> dict[str, Any]:
    """CreateTable's arguments for the template's LedgerTable: its key, attributes, billing and indexes."""
    from sagepush_cli import template

    properties = template.load()["Resources"]["LedgerTable"]["Properties"]
    wanted = ("BillingMode", "AttributeDefinitions", "KeySchema", "GlobalSecondaryIndexes")
    return {name: properties[name] for name in wanted}


@pytest.fixture(params=["fake", "dynamodb"])
def ledger(request: pytest.FixtureRequest) -> Iterator[Ledger]:
    if request.param == "fake":
        yield FakeLedger()
        return
    from moto import mock_aws

    with mock_aws():
        client = boto3.client(
            "dynamodb", region_name="us-east-1", aws_access_key_id="testing", aws_secret_access_key="testing"
        )
        client.create_table(TableName="ledger", **ledger_table())
        yield DynamoDBLedger("ledger", dynamodb=client)


def submission(job_name: str = JOB, token: str | None = "token-1", project: str = "iris") -> Submission:
    return Submission(job_name, project, CODE_URI, "3f5c", {"commit": "9fce", "branch": ""}, token)


def state(name: str, **changes: Any) -> TrainingStateChange:
    """The state in events/<name>.json, with `changes` (job_name, last_modified_ms, ...) applied."""
    observed = training_state_change(json.loads((EVENTS / f"{name}.json").read_text()))
    return dataclasses.replace(observed, **changes)


def submitted(ledger: Ledger, job_name: str = JOB, *, now_ms: int = NOW - 3_600_000, **kwargs: Any) -> None:
    assert ledger.record_submission(submission(job_name, **kwargs), now_ms=now_ms)


def entry(ledger: Ledger, job_name: str = JOB) -> Any:
    found = ledger.get(job_name)
    assert found is not None, f"{job_name} is not in the ledger"
    return found


def silent(ledger: Ledger, since_ms: int = NOW, limit: int = 25) -> list[str]:
    return [found.job_name for found in ledger.unsettled_jobs(silent_since_ms=since_ms, limit=limit)]


def ended(ledger: Ledger, job_name: str = JOB, *, token: str | None = "token-1") -> None:
    """Record the job's Completed state and settle its token, as the status logic does before closing it."""
    ledger.record_state(state("status-completed", job_name=job_name), project="iris", now_ms=NOW)
    if token:
        ledger.mark_token_settled(job_name, token, outcome="succeeded", now_ms=NOW)


# ---------------------------------------------------------------- record_submission


def test_a_new_submission_is_recorded_submitting_unsettled_and_waiting_on_its_token(ledger: Ledger) -> None:
    assert ledger.record_submission(submission(), now_ms=NOW) is True

    found = entry(ledger)
    assert (found.project, found.code_uri, found.code_digest) == ("iris", CODE_URI, "3f5c")
    assert (found.status, found.secondary_status, found.seq, found.event_time_ms) == (SUBMITTING, SUBMITTING, 0, None)
    assert found.source == {"commit": "9fce"}  # empty values are dropped
    assert (found.task_token, found.token_state, found.waiting_token) == ("token-1", WAITING, "token-1")
    assert found.unsettled and found.alerts == {}
    assert found.created_at == "2025-01-01T10:33:20.000Z"
    assert ledger.get("some-other-job") is None
    assert found.push is None


def test_a_job_of_a_push_keeps_its_push(ledger: Ledger) -> None:
    ledger.record_submission(dataclasses.replace(submission(f"{JOB}-2"), push=JOB), now_ms=NOW)

    assert entry(ledger, f"{JOB}-2").push == JOB


def test_a_repeated_submission_with_a_new_token_stores_it_and_reopens_the_ended_job(ledger: Ledger) -> None:
    submitted(ledger)
    ended(ledger)
    assert ledger.close(JOB, now_ms=NOW)

    assert ledger.record_submission(submission(token="token-2"), now_ms=NOW + 1_000) is False

    found = entry(ledger)
    assert (found.task_token, found.token_state, found.waiting_token, found.unsettled) == (
        "token-2",
        WAITING,
        "token-2",
        True,
    )
    assert found.status == "Completed"  # the recorded state is kept
    assert silent(ledger, since_ms=NOW + 1_000) == [] and silent(ledger, since_ms=NOW + 1_001) == [JOB]


@pytest.mark.parametrize("token", ["token-1", None], ids=["same-token", "no-token"])
def test_a_repeated_submission_with_the_same_or_no_token_changes_nothing(ledger: Ledger, token: str | None) -> None:
    submitted(ledger, now_ms=NOW - 10_000)
    ended(ledger)
    assert ledger.close(JOB, now_ms=NOW)
    before = entry(ledger)

    assert ledger.record_submission(submission(token=token), now_ms=NOW + 1_000) is False

    assert entry(ledger) == before
    assert not before.unsettled and silent(ledger, since_ms=NOW + 2_000) == []


def test_a_repeated_submission_of_an_open_job_keeps_its_place_in_the_reconcile_queue(ledger: Ledger) -> None:
    submitted(ledger, "iris-first", now_ms=NOW - 30_000)
    submitted(ledger, "iris-second", now_ms=NOW - 20_000)

    ledger.record_submission(submission("iris-first"), now_ms=NOW - 10_000)

    assert silent(ledger) == ["iris-first", "iris-second"]


# ---------------------------------------------------------------- record_state: ordering


def test_a_newer_state_is_recorded_over_an_older_one(ledger: Ledger) -> None:
    submitted(ledger)

    first = ledger.record_state(state("status-training"), project="iris", now_ms=NOW)
    second = ledger.record_state(state("status-uploading"), project="iris", now_ms=NOW)

    assert first.applied and second.applied and first.claim is None and second.claim is None
    found = entry(ledger)
    assert (found.status, found.secondary_status) == ("InProgress", "Uploading")
    assert found.event_time_ms == state("status-uploading").last_modified_ms
    assert found.job_arn == state("status-uploading").job_arn
    assert (found.task_token, found.code_uri, found.source) == ("token-1", CODE_URI, {"commit": "9fce"})
    assert second.entry == found


@pytest.mark.parametrize("late", ["status-out-of-order-2-training", "status-out-of-order-1-uploading"])
def test_a_stale_or_duplicate_state_is_not_recorded(ledger: Ledger, late: str) -> None:
    submitted(ledger)
    ledger.record_state(state("status-out-of-order-1-uploading"), project="iris", now_ms=NOW)
    before = entry(ledger)

    recorded = ledger.record_state(state(late), project="iris", now_ms=NOW + 5_000)

    assert not recorded.applied and recorded.entry == before and entry(ledger) == before
    # Not recorded means not written: the job's place in the reconcile queue is where the recorded state put it.
    assert silent(ledger, since_ms=NOW + 1) == [JOB]


def test_an_end_state_outranks_every_running_state_whatever_the_clocks_say(ledger: Ledger) -> None:
    submitted(ledger)
    completed = state("status-completed")
    ledger.record_state(completed, project="iris", now_ms=NOW)

    later_clock = state("status-training", last_modified_ms=completed.last_modified_ms + 600_000)
    recorded = ledger.record_state(later_clock, project="iris", now_ms=NOW)

    assert not recorded.applied
    assert (entry(ledger).status, entry(ledger).secondary_status) == ("Completed", "Completed")
    assert entry(ledger).terminal


def test_a_state_of_a_job_the_ledger_does_not_hold_creates_it_under_its_project(ledger: Ledger) -> None:
    foreign = state("status-foreign-job")

    recorded = ledger.record_state(foreign, project="vision", now_ms=NOW)

    assert recorded.applied
    found = entry(ledger, foreign.job_name)
    assert (found.project, found.status, found.unsettled, found.task_token) == ("vision", "Completed", True, None)
    assert found.created_at == "2025-01-01T10:00:00.000Z"  # the job's CreationTime
    assert found.alerts == {}
    # A later state does not move the job to another project.
    ledger.record_state(dataclasses.replace(foreign, last_modified_ms=NOW), project="other", now_ms=NOW)
    assert entry(ledger, foreign.job_name).project == "vision"


def test_recording_with_an_alert_key_needs_a_lease_and_records_nothing_without_one(ledger: Ledger) -> None:
    submitted(ledger)
    before = entry(ledger)

    with pytest.raises(ValueError, match="lease_until_ms"):
        ledger.record_state(state("status-training"), project="iris", now_ms=NOW, alert_key="Training")

    assert entry(ledger) == before


# ---------------------------------------------------------------- alert claims


def test_a_transition_is_claimed_once_while_the_claim_is_live_and_never_once_sent(ledger: Ledger) -> None:
    submitted(ledger)

    claim = ledger.claim_alert(JOB, "Training", now_ms=NOW, lease_until_ms=LEASE)

    assert claim is not None and (claim.job_name, claim.key, claim.lease_until_ms) == (JOB, "Training", LEASE)
    assert entry(ledger).alerts == {"Training": {"state": "claimed", "lease": LEASE, "claim": claim.claim_id}}
    assert ledger.claim_alert(JOB, "Training", now_ms=LEASE - 1, lease_until_ms=LEASE + 60_000) is None
    assert ledger.claim_alert(JOB, "Completed", now_ms=NOW, lease_until_ms=LEASE) is not None  # another transition

    ledger.mark_alert_sent(claim, message_id="m-1", now_ms=NOW + 10)

    assert entry(ledger).alerts["Training"] == {"state": "sent", "at": NOW + 10, "message_id": "m-1"}
    assert ledger.claim_alert(JOB, "Training", now_ms=LEASE + 3_600_000, lease_until_ms=LEASE * 2) is None


def test_a_claim_whose_lease_ran_out_is_taken_by_the_next_claimant(ledger: Ledger) -> None:
    submitted(ledger)
    first = ledger.claim_alert(JOB, "Training", now_ms=NOW, lease_until_ms=LEASE)

    assert ledger.claim_alert(JOB, "Training", now_ms=LEASE, lease_until_ms=LEASE + 60_000) is None  # not yet
    second = ledger.claim_alert(JOB, "Training", now_ms=LEASE + 1, lease_until_ms=LEASE + 60_000)

    assert first is not None and second is not None and second.claim_id != first.claim_id
    assert entry(ledger).alerts["Training"]["claim"] == second.claim_id


def test_a_released_claim_can_be_claimed_again_at_once(ledger: Ledger) -> None:
    submitted(ledger)
    claim = ledger.claim_alert(JOB, "Training", now_ms=NOW, lease_until_ms=LEASE)
    assert claim is not None

    ledger.release_alert(claim)

    assert "Training" not in entry(ledger).alerts
    assert ledger.claim_alert(JOB, "Training", now_ms=NOW + 1, lease_until_ms=LEASE) is not None


def test_a_holder_releasing_late_leaves_the_next_holders_claim_in_place(ledger: Ledger) -> None:
    # Given a first holder whose publish outlasted its lease, and a second delivery that took the claim since
    submitted(ledger)
    first = ledger.claim_alert(JOB, "Training", now_ms=NOW, lease_until_ms=LEASE)
    second = ledger.claim_alert(JOB, "Training", now_ms=LEASE + 1, lease_until_ms=LEASE + 60_000)
    assert first is not None and second is not None

    # When the first holder's publish fails and it gives its claim back
    ledger.release_alert(first)

    # Then the second holder's claim stands: a third delivery cannot claim (and publish) the alert a second time
    assert entry(ledger).alerts["Training"]["claim"] == second.claim_id
    assert ledger.claim_alert(JOB, "Training", now_ms=LEASE + 2, lease_until_ms=LEASE + 60_000) is None
    # And a sent alert is not undone by a stale holder's release either
    ledger.mark_alert_sent(second, message_id="m-2", now_ms=LEASE + 3)
    ledger.release_alert(first)
    assert entry(ledger).alerts["Training"]["state"] == "sent"


def test_a_claim_on_a_job_the_ledger_does_not_hold_is_refused(ledger: Ledger) -> None:
    assert ledger.claim_alert("not-in-ledger", "Training", now_ms=NOW, lease_until_ms=LEASE) is None
    assert ledger.get("not-in-ledger") is None


def fixed_claim_ids(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make every claim id the same: the ledger's next request is botocore sending the one before again."""
    fixed = uuid.uuid4()
    monkeypatch.setattr(uuid, "uuid4", lambda: fixed)


def test_a_claim_sent_again_after_its_answer_was_lost_keeps_its_own_claim(
    ledger: Ledger, monkeypatch: pytest.MonkeyPatch
) -> None:
    submitted(ledger)
    fixed_claim_ids(monkeypatch)
    first = ledger.claim_alert(JOB, "Training", now_ms=NOW, lease_until_ms=LEASE)

    again = ledger.claim_alert(JOB, "Training", now_ms=NOW, lease_until_ms=LEASE)

    assert first is not None and again == first
    monkeypatch.undo()
    assert ledger.claim_alert(JOB, "Training", now_ms=NOW, lease_until_ms=LEASE) is None


def test_a_recording_write_sent_again_after_its_answer_was_lost_keeps_its_claim(
    ledger: Ledger, monkeypatch: pytest.MonkeyPatch
) -> None:
    submitted(ledger)
    training = state("status-training")
    fixed_claim_ids(monkeypatch)
    first = ledger.record_state(training, project="iris", now_ms=NOW, alert_key="Training", lease_until_ms=LEASE)

    again = ledger.record_state(training, project="iris", now_ms=NOW, alert_key="Training", lease_until_ms=LEASE)

    assert first.applied and first.claim is not None
    assert again.applied and again.claim == first.claim


def test_recording_with_an_alert_key_claims_the_transition_once(ledger: Ledger) -> None:
    submitted(ledger)
    training = state("status-training")

    first = ledger.record_state(training, project="iris", now_ms=NOW, alert_key="Training", lease_until_ms=LEASE)
    duplicate = ledger.record_state(
        state("status-training-duplicate"), project="iris", now_ms=NOW + 5, alert_key="Training", lease_until_ms=LEASE
    )

    assert first.applied and first.claim is not None
    assert not duplicate.applied and duplicate.claim is None
    assert entry(ledger).alerts == {"Training": {"state": "claimed", "lease": LEASE, "claim": first.claim.claim_id}}


def test_a_stale_state_is_not_recorded_but_its_unclaimed_alert_is_claimed(ledger: Ledger) -> None:
    submitted(ledger)
    ledger.record_state(state("status-out-of-order-1-uploading"), project="iris", now_ms=NOW)

    late = ledger.record_state(
        state("status-out-of-order-2-training"), project="iris", now_ms=NOW, alert_key="Training", lease_until_ms=LEASE
    )

    assert not late.applied and late.claim is not None
    assert entry(ledger).secondary_status == "Uploading"
    assert entry(ledger).alerts["Training"]["claim"] == late.claim.claim_id


def test_a_newer_state_of_an_alerted_transition_is_recorded_without_a_claim(ledger: Ledger) -> None:
    submitted(ledger)
    training = state("status-training")
    first = ledger.record_state(training, project="iris", now_ms=NOW, alert_key="Training", lease_until_ms=LEASE)
    assert first.claim is not None
    ledger.mark_alert_sent(first.claim, message_id="m-1", now_ms=NOW)
    later = dataclasses.replace(training, last_modified_ms=training.last_modified_ms + 60_000)

    recorded = ledger.record_state(later, project="iris", now_ms=NOW, alert_key="Training", lease_until_ms=LEASE)

    assert recorded.applied and recorded.claim is None
    assert entry(ledger).event_time_ms == later.last_modified_ms
    assert entry(ledger).alerts == {"Training": {"state": "sent", "at": NOW, "message_id": "m-1"}}


def test_a_state_of_a_job_the_ledger_does_not_hold_is_recorded_and_claimed(ledger: Ledger) -> None:
    foreign = state("status-foreign-job")

    recorded = ledger.record_state(foreign, project="vision", now_ms=NOW, alert_key="Completed", lease_until_ms=LEASE)

    assert recorded.applied and recorded.claim is not None
    assert entry(ledger, foreign.job_name).alerts["Completed"]["claim"] == recorded.claim.claim_id


# ---------------------------------------------------------------- tokens, closing, the reconcile queue


def test_settling_a_token_leaves_a_newer_token_waiting(ledger: Ledger) -> None:
    submitted(ledger)
    ledger.record_submission(submission(token="token-2"), now_ms=NOW - 1_000)

    ledger.mark_token_settled(JOB, "token-1", outcome="succeeded", now_ms=NOW)

    assert (entry(ledger).task_token, entry(ledger).waiting_token) == ("token-2", "token-2")
    ledger.mark_token_settled(JOB, "token-2", outcome="succeeded", now_ms=NOW)
    assert (entry(ledger).token_state, entry(ledger).waiting_token) == (SETTLED, None)


def test_settling_a_token_counts_as_hearing_from_the_job(ledger: Ledger) -> None:
    submitted(ledger, "iris-first", now_ms=NOW - 30_000)
    submitted(ledger, "iris-second", now_ms=NOW - 20_000)

    ledger.mark_token_settled("iris-first", "token-1", outcome="expired", now_ms=NOW - 10_000)

    assert silent(ledger) == ["iris-second", "iris-first"]


def test_only_an_ended_job_with_no_waiting_token_is_closed(ledger: Ledger) -> None:
    submitted(ledger)
    assert ledger.close(JOB, now_ms=NOW) is False  # still submitting

    ledger.record_state(state("status-completed"), project="iris", now_ms=NOW)
    assert ledger.close(JOB, now_ms=NOW) is False  # its execution still waits on the token
    assert entry(ledger).unsettled

    ledger.mark_token_settled(JOB, "token-1", outcome="succeeded", now_ms=NOW)
    assert ledger.close(JOB, now_ms=NOW + 1) is True
    assert not entry(ledger).unsettled and silent(ledger, since_ms=NOW + 10) == []


def test_an_ended_job_that_never_had_a_token_is_closed(ledger: Ledger) -> None:
    submitted(ledger, token=None)
    ended(ledger, token=None)

    assert ledger.close(JOB, now_ms=NOW) is True
    assert ledger.close("not-in-ledger", now_ms=NOW) is False


def test_a_running_job_is_not_closed(ledger: Ledger) -> None:
    submitted(ledger)
    ledger.record_state(state("status-training"), project="iris", now_ms=NOW)
    ledger.mark_token_settled(JOB, "token-1", outcome="expired", now_ms=NOW)

    assert ledger.close(JOB, now_ms=NOW) is False and entry(ledger).unsettled


def test_only_a_job_still_submitting_is_marked_not_created(ledger: Ledger) -> None:
    submitted(ledger)
    submitted(ledger, "iris-started")
    ledger.record_state(state("status-starting", job_name="iris-started"), project="iris", now_ms=NOW)

    assert ledger.mark_not_created(JOB, now_ms=NOW) is True
    assert ledger.mark_not_created("iris-started", now_ms=NOW) is False
    assert ledger.mark_not_created("not-in-ledger", now_ms=NOW) is False

    found = entry(ledger)
    assert (found.status, found.secondary_status, found.unsettled) == (NOT_CREATED, NOT_CREATED, False)
    assert silent(ledger, since_ms=NOW + 10) == ["iris-started"]


def test_a_job_not_created_and_reopened_by_a_retried_submit_is_closed_again(ledger: Ledger) -> None:
    submitted(ledger)
    assert ledger.mark_not_created(JOB, now_ms=NOW) is True
    ledger.record_submission(
        Submission(job_name=JOB, project="iris", code_uri="s3://a/b", code_digest="d", task_token="retry-token"),
        now_ms=NOW + 1,
    )
    assert entry(ledger).unsettled

    assert ledger.mark_not_created(JOB, now_ms=NOW + 2) is True
    assert (entry(ledger).status, entry(ledger).unsettled) == (NOT_CREATED, False)


def test_touching_a_job_moves_it_to_the_back_of_the_reconcile_queue(ledger: Ledger) -> None:
    for offset, name in enumerate(["iris-a", "iris-b", "iris-c"]):
        submitted(ledger, name, now_ms=NOW - 30_000 + offset * 1_000)
    assert silent(ledger) == ["iris-a", "iris-b", "iris-c"]

    ledger.touch("iris-a", now_ms=NOW - 10_000)

    assert silent(ledger) == ["iris-b", "iris-c", "iris-a"]
    assert silent(ledger, since_ms=NOW - 10_000) == ["iris-b", "iris-c"]


def test_touching_a_closed_or_unknown_job_does_not_reopen_or_create_it(ledger: Ledger) -> None:
    submitted(ledger)
    ended(ledger)
    assert ledger.close(JOB, now_ms=NOW)

    ledger.touch(JOB, now_ms=NOW + 1)
    ledger.touch("not-in-ledger", now_ms=NOW + 1)

    assert not entry(ledger).unsettled and ledger.get("not-in-ledger") is None
    assert silent(ledger, since_ms=NOW + 10) == []


def test_unsettled_jobs_are_the_longest_silent_first_strictly_before_the_cutoff_up_to_the_limit(ledger: Ledger) -> None:
    times = {"iris-c": NOW - 10_000, "iris-a": NOW - 30_000, "iris-d": NOW, "iris-b": NOW - 20_000}
    for name, at in times.items():
        submitted(ledger, name, now_ms=at)

    assert silent(ledger, since_ms=NOW) == ["iris-a", "iris-b", "iris-c"]
    assert silent(ledger, since_ms=NOW, limit=2) == ["iris-a", "iris-b"]
    assert silent(ledger, since_ms=NOW - 30_000) == []
    found = ledger.unsettled_jobs(silent_since_ms=NOW, limit=1)
    assert found == [entry(ledger, "iris-a")]


def test_a_recorded_state_counts_as_hearing_from_the_job(ledger: Ledger) -> None:
    submitted(ledger, "iris-first", now_ms=NOW - 30_000)
    submitted(ledger, "iris-second", now_ms=NOW - 20_000)

    ledger.record_state(state("status-training", job_name="iris-first"), project="iris", now_ms=NOW - 10_000)

    assert silent(ledger) == ["iris-second", "iris-first"]


def test_project_jobs_are_the_projects_newest_first_up_to_the_limit(ledger: Ledger) -> None:
    for offset, name in enumerate(["iris-old", "iris-mid", "iris-new"]):
        submitted(ledger, name, now_ms=NOW + offset * 60_000)
    submitted(ledger, "vision-job", now_ms=NOW + 30_000, project="vision")

    assert [e.job_name for e in ledger.project_jobs("iris", limit=10)] == ["iris-new", "iris-mid", "iris-old"]
    assert [e.job_name for e in ledger.project_jobs("iris", limit=2)] == ["iris-new", "iris-mid"]
    assert [e.job_name for e in ledger.project_jobs("vision", limit=10)] == ["vision-job"]
    assert ledger.project_jobs("nobody", limit=10) == []
    assert ledger.project_jobs("iris", limit=1) == [entry(ledger, "iris-new")]


def test_a_late_token_of_an_older_attempt_never_replaces_a_newer_attempts(ledger: Ledger) -> None:
    # Lambda reported the first Submit invocation failed while it still ran; the state machine's retry (attempt 1)
    # stored its token first, then the first invocation's write (attempt 0) arrives.
    def submit(token: str, attempt: int) -> None:
        submission = Submission(
            job_name=JOB, project="iris", code_uri="s3://a/b", code_digest="d", task_token=token, attempt=attempt
        )
        ledger.record_submission(submission, now_ms=NOW)

    submit("retry-token", 1)
    submit("first-token", 0)
    assert entry(ledger).task_token == "retry-token"
    submit("third-token", 2)
    assert entry(ledger).task_token == "third-token"
    submit("direct-invoke-token", 2)  # the same attempt again (a caller without retry counts): the later write wins
    assert entry(ledger).task_token == "direct-invoke-token"


def test_a_refused_upload_is_listed_with_its_reason_and_never_reconciled(ledger: Ledger) -> None:
    submitted(ledger, "iris-job", now_ms=NOW)
    refusal = RefusedUpload(
        project="iris",
        upload_uri="s3://ingest/incoming/iris/9fce.tar.gz?versionId=v1",
        reason='sagepush.toml: max_run: "forever" is not a duration',
    )

    ledger.record_refusal(refusal, now_ms=NOW + 60_000)
    ledger.record_refusal(refusal, now_ms=NOW + 120_000)  # the same upload delivered again: the same item

    found = entry(ledger, refusal.name)
    assert refusal.name.startswith("refused-iris-") and len(refusal.name) == len("refused-iris-") + 12
    assert (found.status, found.secondary_status, found.project) == (REFUSED, REFUSED, "iris")
    assert found.failure_reason == refusal.reason and found.source == {"upload": refusal.upload_uri}
    assert not found.unsettled and found.waiting_token is None
    assert [e.job_name for e in ledger.project_jobs("iris", limit=10)] == [refusal.name, "iris-job"]
    assert silent(ledger, since_ms=NOW + 10**9) == ["iris-job"]
    other = RefusedUpload(project="iris", upload_uri="s3://ingest/incoming/iris/9fce.tar.gz?versionId=v2", reason="x")
    assert other.name != refusal.name
