"""OpenAI faults over full ``feedback_retraining`` runs (``trainer=openai``, ``dag.test()``).

The fake OpenAI server (:mod:`tests.fakes.openai_server`) answers with scripted faults: 429s
with ``retry-after``, 500s, dropped connections, responses lost after the request took effect
(``drop_after``) and responses held back past the client's timeout (``slow``). What a user
would check afterwards: the run's state, which tasks needed a retry, how many fine-tuning
jobs exist at the provider (one, whatever was retried), the rows in ``ml``, and the Slack
message.
"""

from __future__ import annotations

import json

import pytest
from tests.reliability.conftest import (
    duplicate_rows,
    feedback_rows_in_interval,
    max_tries,
    ml_counts,
    query,
    run_dag,
    states,
    tries,
    use_openai_trainer,
)
from tests.reliability.fault_figures import record

pytestmark = pytest.mark.slow


def _wire_ok(fake) -> None:
    assert fake.violations == [], [str(v) for v in fake.violations]
    assert fake.response_violations == [], [str(v) for v in fake.response_violations]


def test_rate_limits_errors_timeouts_and_lost_responses_end_in_one_job_and_a_deployment(
    retrying_dag, env, openai_fake, slack
):
    fake = openai_fake
    scripted = {
        # Upload: absorbed by the project's own retries inside one attempt; the first upload
        # reaches the provider but its answer is lost (an orphan file, not a job).
        "createFile": ("drop_after", "429"),
        # 1st attempt: a rate-limit storm longer than the in-task retries fails the lookup of
        # the run's job, before anything was submitted.
        "listPaginatedFineTuningJobs": ("429",) * 5,
        # 2nd attempt: the job is created but the answer comes after the client's timeout
        # (ambiguous): the lookup by metadata must find it, not submit a second one ...
        "createFineTuningJob": ("slow",),
        # ... then polling fails 5 times in a row (timeout, 500, drop, 429, 500): the trigger
        # gives up. 3rd attempt: re-attaches to the same job, which has finished meanwhile.
        "retrieveFineTuningJob": ("slow", "500", "drop", "429"),
        "listFineTuningEvents": ("500",),
        # Evaluation of the fine-tuned model on the golden set: absorbed by the classifier.
        "createChatCompletion": ("429", "500", "drop", "429", "500", "drop"),
    }
    for operation, kinds in scripted.items():
        fake.inject(operation, *kinds)
    injected = sum(len(k) for k in scripted.values())

    dr = run_dag(retrying_dag, use_openai_trainer(retrying_dag))

    st, attempts = states(dr), tries(dr)
    assert dr.state == "success", st
    assert st["deploy_challenger"] == "success" and st["watcher"] == "skipped"
    assert sum(fake.faults_injected.values()) == injected  # every scripted fault was hit
    # Two Airflow retries of train_challenger, each for the reason injected; nothing else retried.
    assert {t: n for t, n in attempts.items() if n > 1} == {"train_challenger": 3}
    assert [(t, n, s) for t, n, s, _ in retrying_dag.attempt_log] == [
        ("train_challenger", 1, "up_for_retry"),
        ("train_challenger", 2, "up_for_retry"),
    ]
    first, second = retrying_dag.attempt_log.reasons("train_challenger")
    assert first.startswith("RateLimitError: Error code: 429"), first
    assert second.startswith("AirflowException: polling fine-tuning job ftjob-"), second

    # One job at the provider, created once, and one row recording it.
    assert fake.jobs_created == 1 and fake.count("createFineTuningJob") == 1
    (job_id,) = fake.jobs
    assert len(fake.files) == 3  # train (+1 orphan whose answer was lost) and validation
    assert fake.jobs[job_id].body["training_file"] in fake.files
    rows = query(env["dsn"], "SELECT remote_job_id, status, fine_tuned_model FROM ml.training_jobs")
    assert rows == [(job_id, "succeeded", rows[0][2])] and rows[0][2].startswith("ft:")

    # The deployed model is the fine-tuned one; nothing was recorded twice.
    assert ml_counts(env["dsn"]) == {
        "ml.training_jobs": 1,
        "ml.model_versions": 1,
        "ml.golden_runs": 1,
        "ml.deployments": 1,
        "ml.deployment_history": 1,
    }
    assert set(duplicate_rows(env["dsn"]).values()) == {0}
    (spec_model,) = query(env["dsn"], "SELECT spec->>'remote_model_id' FROM ml.model_versions")[0]
    assert spec_model == rows[0][2]
    assert query(
        env["dsn"], "SELECT alias, verdict FROM ml.deployments JOIN ml.golden_runs USING (version_id)"
    ) == [("challenger", "pass")]
    # Slack: one summary, of a deployed canary.
    assert [m["text"][:31] for m in slack.messages] == ["✅ Challenger deployed as canary"]
    _wire_ok(fake)
    record(
        "openai: 429/500/drop/timeouts/lost responses during train, polling and evaluate",
        test="test_faults_openai.py::test_rate_limits_errors_timeouts_and_lost_responses_end_in_one_job_and_a_deployment",
        faults_injected=injected,
        run_state=dr.state,
        expected_state="success",
        retried_tasks={t: n - 1 for t, n in attempts.items() if n > 1},
        duplicates=sum(duplicate_rows(env["dsn"]).values()) + fake.jobs_created - 1,
        notifications=len(slack.messages),
        remote_jobs=fake.jobs_created,
        detail={
            "feedback_rows": feedback_rows_in_interval(env["dsn"]),
            "faults": dict(fake.faults_injected),
            "orphan_files": len(fake.files) - 2,
            "attempt_errors": [first[:120], second[:160]],
        },
    )


def test_a_rate_limit_storm_outlasting_every_retry_fails_cleanly_with_the_reason_and_one_message(
    retrying_dag, env, openai_fake, slack
):
    from tests.fakes.openai_server import Faults

    fake = openai_fake
    # Every fine-tuning call is rate-limited (429 + retry-after) for the whole run.
    fake.set_faults(
        Faults(
            rate_429=1.0,
            retry_after_ms=5,
            operations=frozenset(
                {"createFile", "createFineTuningJob", "listPaginatedFineTuningJobs", "retrieveFineTuningJob"}
            ),
        )
    )

    dr = run_dag(retrying_dag, use_openai_trainer(retrying_dag))

    st, attempts = states(dr), tries(dr)
    assert dr.state == "failed"
    n = max_tries(retrying_dag, "train_challenger")
    assert st["train_challenger"] == "failed" and attempts["train_challenger"] == n  # every retry used
    assert {st[t] for t in ("evaluate_golden_set", "gate", "deploy_challenger")} == {"upstream_failed"}
    assert st["notify"] == "success" and st["watcher"] == "failed"
    # Each attempt failed with the API's own error (what the task log shows).
    reasons = retrying_dag.attempt_log.reasons("train_challenger")
    assert len(reasons) == n, reasons
    assert all(r.startswith("RateLimitError: Error code: 429") for r in reasons), reasons
    assert [(t, i, s) for t, i, s, _ in retrying_dag.attempt_log] == [
        *(("train_challenger", i, "up_for_retry") for i in range(1, n)),
        ("train_challenger", n, "failed"),
        ("watcher", 1, "failed"),
    ]
    # One Slack message for the failed run (notify's; the DAG callback stays silent), naming
    # the stage that did not finish.
    assert len(slack.messages) == 1, [m["text"] for m in slack.messages]
    (message,) = slack.messages
    assert message["text"].startswith("❌ Retraining run failed")
    assert "stage 'train' did not finish" in json.dumps(message, ensure_ascii=False)
    # Nothing submitted, nothing recorded as a model; one pending job row, not one per try.
    assert fake.jobs_created == 0 and fake.count("createFile") == 0
    assert query(env["dsn"], "SELECT status, remote_job_id FROM ml.training_jobs") == [("pending", None)]
    counts = ml_counts(env["dsn"])
    assert counts == {
        "ml.training_jobs": 1,
        "ml.model_versions": 0,
        "ml.golden_runs": 0,
        "ml.deployments": 0,
        "ml.deployment_history": 0,
    }
    record(
        "openai: 429 storm outlasting all retries",
        test="test_faults_openai.py::test_a_rate_limit_storm_outlasting_every_retry_fails_cleanly_with_the_reason_and_one_message",
        faults_injected=sum(fake.faults_injected.values()),
        run_state=dr.state,
        expected_state="failed",
        retried_tasks={"train_challenger": attempts["train_challenger"] - 1},
        duplicates=sum(duplicate_rows(env["dsn"]).values()),
        notifications=len(slack.messages),
        remote_jobs=fake.jobs_created,
    )
