from __future__ import annotations

import inspect
import json
import re
from pathlib import Path
from typing import Any

import sagepush
from sagepush import submitting

ROOT = Path(__file__).resolve().parents[2]
ASL = json.loads((ROOT / "statemachine" / "training.asl.json").read_text())
# Error names Step Functions defines (https://states-language.net/spec.html#appendix-a), and the codes StatusFunction
# settles a token with (sagepush.status.TRAINING_FAILED, TRAINING_STOPPED).
FOREIGN_PREFIXES = ("States.", "sagepush.")
# Errors of a Lambda task that a retry can fix, as Step Functions names them: Lambda's service errors
# (https://docs.aws.amazon.com/step-functions/latest/dg/bp-lambda-serviceexception.html) ...
LAMBDA_SERVICE_ERRORS = {
    "Lambda.ServiceException",
    "Lambda.AWSLambdaException",
    "Lambda.SdkClientException",
    "Lambda.ClientExecutionTimeoutException",
    "Lambda.TooManyRequestsException",
}
# ... and the function dying mid-invocation: its timeout (Sandbox.Timedout, or Lambda.Unknown when Lambda reports no
# error type), running out of memory, a crash of the runtime (Runtime.ExitError). Submit may have died after
# CreateTrainingJob; the retry finds the job (ResourceInUse) and attaches to it.
LAMBDA_DIED_ERRORS = {"Lambda.Unknown", "Sandbox.Timedout", "Runtime.ExitError"}
# Errors a retry of Submit must not see: the wait for the job timed out (a retry would wait again for the same job),
# and the catch-alls, which would retry a bad spec.
NEVER_RETRIED = {"States.Timeout", "States.ALL", "States.TaskFailed", "States.HeartbeatTimeout"}


def _error_names(document: Any) -> set[str]:
    names: set[str] = set()
    if isinstance(document, dict):
        for key, value in document.items():
            if key == "ErrorEquals":
                names.update(value)
            else:
                names |= _error_names(value)
    elif isinstance(document, list):
        for item in document:
            names |= _error_names(item)
    return names


def test_every_retried_or_caught_lambda_error_is_an_exception_class_in_the_core() -> None:
    classes = {
        name
        for module in (submitting,)
        for name, value in inspect.getmembers(module, inspect.isclass)
        if issubclass(value, sagepush.errors.SagepushError)
    }
    ours = {
        name
        for name in _error_names(ASL)
        if not name.startswith(FOREIGN_PREFIXES) and name not in LAMBDA_SERVICE_ERRORS | LAMBDA_DIED_ERRORS
    }
    assert ours, "the state machine retries no error of its own"
    assert ours <= classes


def test_an_uploads_execution_goes_straight_to_submit_and_one_started_by_hand_is_prepared_first() -> None:
    start = ASL["States"][ASL["StartAt"]]
    assert start["Type"] == "Choice"
    assert start["Choices"] == [{"Variable": "$.job_name", "IsPresent": True, "Next": "MatrixJob?"}]
    prepare = ASL["States"][start["Default"]]
    assert prepare["Parameters"]["Payload"] == {"direct_start.$": "$", "execution.$": "$$.Execution.Name"}
    assert (prepare["OutputPath"], prepare["Next"]) == ("$.Payload", "MatrixJob?")
    # Either way, Submit is given the job's matrix: a matrix job's own, else an empty one.
    matrix = ASL["States"]["MatrixJob?"]
    assert matrix["Choices"] == [{"Variable": "$.matrix", "IsPresent": True, "Next": "Submit"}]
    assert ASL["States"][matrix["Default"]] == {
        "Type": "Pass",
        "Result": {},
        "ResultPath": "$.matrix",
        "Next": "Submit",
    }
    assert ASL["States"]["Submit"]["Parameters"]["Payload"]["matrix.$"] == "$.matrix"
    # A start the manifest checks refuse is alerted like any submission that cannot be made.
    assert prepare["Catch"] == [{"ErrorEquals": ["States.ALL"], "ResultPath": "$.error", "Next": "CheckSubmitCause"}]


def test_submit_waits_for_its_task_token_and_passes_it_to_the_function() -> None:
    submit = ASL["States"]["Submit"]
    assert submit["Resource"] == "arn:aws:states:::lambda:invoke.waitForTaskToken"
    assert submit["Parameters"]["Payload"]["task_token.$"] == "$$.Task.Token"


def test_throttling_and_capacity_retries_back_off_with_jitter() -> None:
    throttled, capacity = ASL["States"]["Submit"]["Retry"][:2]
    assert throttled["ErrorEquals"] == ["ThrottledError"] and capacity["ErrorEquals"] == ["CapacityError"]
    for retry in (throttled, capacity):
        assert retry["BackoffRate"] > 1 and retry["JitterStrategy"] == "FULL"


def test_a_job_waits_for_capacity_longer_than_the_longest_wait_the_template_allows() -> None:
    import yaml

    capacity = ASL["States"]["Submit"]["Retry"][1]
    # With full jitter each wait is uniform below its ceiling: half the ceiling on average, once the ceiling is reached.
    average_seconds = sum(
        min(capacity["IntervalSeconds"] * capacity["BackoffRate"] ** n, capacity["MaxDelaySeconds"]) / 2
        for n in range(capacity["MaxAttempts"])
    )
    loader: Any = type("Loader", (yaml.SafeLoader,), {})
    loader.add_multi_constructor("!", lambda loader, suffix, node: None)
    template = yaml.load((ROOT / "template.yaml").read_text(), Loader=loader)
    default_wait = template["Parameters"]["CapacityWaitSeconds"]["Default"]
    assert average_seconds > 4 * default_wait
    assert "CapacityExhaustedError" not in {name for r in ASL["States"]["Submit"]["Retry"] for name in r["ErrorEquals"]}


def _submit_retriers() -> list[dict[str, Any]]:
    retriers: list[dict[str, Any]] = ASL["States"]["Submit"]["Retry"]
    return retriers


def test_submit_retries_every_lambda_failure_a_retry_can_fix_with_backoff_and_jitter() -> None:
    retried = {name for retrier in _submit_retriers() for name in retrier["ErrorEquals"]}
    assert retried >= LAMBDA_SERVICE_ERRORS | LAMBDA_DIED_ERRORS
    for retrier in _submit_retriers():
        assert retrier["BackoffRate"] > 1 and retrier["JitterStrategy"] == "FULL"
        # Retries are bounded, so the could-not-submit alert follows; waiting for capacity is bounded by the function.
        limit = 500 if retrier["ErrorEquals"] == ["CapacityError"] else 8
        assert 1 <= retrier["MaxAttempts"] <= limit, "retries are bounded: the could-not-submit alert follows"


def test_a_submit_that_died_is_retried_only_a_few_times() -> None:
    # A function that died may die the same way again (a deterministic crash): a few tries, then the alert.
    [died] = [r for r in _submit_retriers() if LAMBDA_DIED_ERRORS & set(r["ErrorEquals"])]
    assert set(died["ErrorEquals"]) == LAMBDA_DIED_ERRORS
    assert died["MaxAttempts"] <= 3 and died["IntervalSeconds"] >= 1


def test_submit_never_retries_the_wait_for_its_job_or_a_catch_all() -> None:
    retried = {name for retrier in _submit_retriers() for name in retrier["ErrorEquals"]}
    assert not retried & NEVER_RETRIED


# ------------------------------------------------------------------------------------------------ could not submit


def _reachable_from(name: str) -> list[str]:
    """The states reachable from `name` by Next, Default, Choices and Catch."""
    seen: list[str] = []
    pending = [name]
    while pending:
        current = pending.pop(0)
        if current in seen:
            continue
        seen.append(current)
        state = ASL["States"][current]
        pending += [state[key] for key in ("Next", "Default") if key in state]
        pending += [choice["Next"] for choice in state.get("Choices", [])]
        pending += [catcher["Next"] for catcher in state.get("Catch", [])]
    return seen


def test_a_failed_submission_is_alerted_by_notify_function_and_ends_in_submit_failed() -> None:
    [catch_all] = [c for c in ASL["States"]["Submit"]["Catch"] if c["ErrorEquals"] == ["States.ALL"]]
    path = {name: ASL["States"][name]["Type"] for name in _reachable_from(catch_all["Next"])}
    # The state machine writes no alert of its own: no Pass state formats one, no task publishes to SNS.
    assert path == {
        "CheckSubmitCause": "Choice", "DefaultSubmitCause": "Pass", "NotifySubmitFailed": "Task", "SubmitFailed": "Fail"
    }  # fmt: skip
    assert ASL["States"]["DefaultSubmitCause"]["ResultPath"] == "$.error.Cause"
    assert not [s for s in ASL["States"].values() if "sns:" in s.get("Resource", "")]
    failed = ASL["States"]["SubmitFailed"]
    assert (failed["ErrorPath"], failed["CausePath"]) == ("$.error.Error", "$.error.Cause")


def test_notify_gets_the_execution_input_the_error_and_the_execution_and_keeps_the_error_for_the_fail_state() -> None:
    notify = ASL["States"]["NotifySubmitFailed"]
    assert notify["Resource"] == "arn:aws:states:::lambda:invoke"
    assert notify["Parameters"]["FunctionName"] == "${NotifyFunctionArn}"
    assert notify["Parameters"]["Payload"] == {
        "input.$": "$$.Execution.Input",
        "error.$": "$.error",
        "execution_arn.$": "$$.Execution.Id",
        "time.$": "$$.State.EnteredTime",
    }
    assert notify["ResultPath"] is None and notify["Next"] == "SubmitFailed"


def test_notify_retries_lambda_service_errors_with_backoff_and_never_leaves_the_execution_hanging() -> None:
    notify = ASL["States"]["NotifySubmitFailed"]
    retried = {name for retrier in notify["Retry"] for name in retrier["ErrorEquals"]}
    assert retried >= LAMBDA_SERVICE_ERRORS
    for retrier in notify["Retry"]:
        assert retrier["BackoffRate"] > 1 and retrier["JitterStrategy"] == "FULL"
        assert 1 <= retrier["MaxAttempts"] <= 6
    assert 0 < notify["TimeoutSeconds"] <= 300
    # Its own failure, whatever it is, still ends the execution with the Submit task's error: $.error is kept.
    [catcher] = notify["Catch"]
    assert catcher["ErrorEquals"] == ["States.ALL"] and catcher["Next"] == "SubmitFailed"
    assert not catcher["ResultPath"].startswith("$.error")


def test_every_placeholder_is_substituted_and_every_function_named_may_be_invoked() -> None:
    from samtranslator.yaml_helper import yaml_parse

    machine = yaml_parse((ROOT / "template.yaml").read_text())["Resources"]["TrainingStateMachine"]["Properties"]
    placeholders = set(re.findall(r"\$\{(\w+)\}", json.dumps(ASL)))
    substitutions = machine["DefinitionSubstitutions"]
    assert placeholders == set(substitutions)
    named = {value["Fn::GetAtt"][0] for value in substitutions.values() if "Fn::GetAtt" in value}
    invokable = {policy["LambdaInvokePolicy"]["FunctionName"]["Ref"] for policy in machine["Policies"]}
    assert named == invokable == {"SubmitFunction", "NotifyFunction", "ModelFunction"}


def test_a_completed_job_with_a_model_table_is_registered_unless_its_push_registers_it() -> None:
    states = ASL["States"]
    assert states["Submit"]["Next"] == "Register?" and states["Submit"]["ResultPath"] == "$.trained"
    [choice] = states["Register?"]["Choices"]
    assert choice["Next"] == "Register" and states["Register?"]["Default"] == "Trained"
    assert {"Variable": "$.spec.model", "IsPresent": True} in choice["And"]
    assert {"Not": {"Variable": "$.matrix.push", "IsPresent": True}} in choice["And"]
    register = states["Register"]
    assert register["Parameters"]["FunctionName"] == "${ModelFunctionArn}"
    assert set(register["Parameters"]["Payload"]["register"]) == {
        "job_name.$",
        "project.$",
        "spec.$",
        "source.$",
        "code_uri.$",
    }
    # The execution's output stays StatusFunction's summary, registered or not.
    assert states["Trained"]["OutputPath"] == "$.trained" and register["ResultPath"] == "$.registered"
    retried = {name for retrier in register["Retry"] for name in retrier["ErrorEquals"]}
    assert retried >= LAMBDA_SERVICE_ERRORS
    from samtranslator.yaml_helper import yaml_parse

    function = yaml_parse((ROOT / "template.yaml").read_text())["Resources"]["ModelFunction"]["Properties"]
    # The task outlasts ModelFunction's own timeout (a repack may take it all), not by much.
    assert function["Timeout"] < register["TimeoutSeconds"] <= function["Timeout"] + 60
    [catcher] = register["Catch"]
    assert catcher["Next"] == "RegisterFailed" and states["RegisterFailed"]["Error"] == "sagepush.RegisterFailed"
