"""OpenAI-compatible backends against the loopback fake OpenAI server (real SDK, real wire format).

Covers the chat classifier (faults, retries, malformed answers, logprob confidence), the
fine-tuning trainer (idempotent submission with ``ml.training_jobs`` on a real PostgreSQL,
failures, cost guard, wind-down), the deferrable trigger and the few-shot optimiser. Every
test that talks to the fake asserts that the SDK's requests matched the published schema.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import random
import time
from collections.abc import Iterator
from typing import Any

import openai
import pandas as pd
import psycopg
import pytest
from tests.fakes.openai_server import (
    FAKE_API_KEY,
    FakeOpenAI,
    Faults,
    JobPlan,
    WindDown,
    answer,
    keyword_responder,
    lookup_responder,
)

from feedbackloop.datasets import assistant_content, system_prompt
from feedbackloop.golden import default_taxonomy, load_golden_set
from feedbackloop.models.base import EmailInput, ModelSpec
from feedbackloop.models.fewshot import (
    FewShotConfig,
    FewShotError,
    load_prompt,
    optimise_prompt,
    prompt_key,
    select_exemplars,
)
from feedbackloop.models.openai_chat import (
    FALLBACK_CONFIDENCE,
    ChatSettings,
    ClassificationError,
    OpenAIChatClassifier,
    TokenBucket,
    category_confidence,
    classifier_for_spec,
    retry_after_seconds,
)
from feedbackloop.models.openai_finetune import (
    CostLimitExceeded,
    FineTuneError,
    FineTuneJobFailed,
    FineTuneRequest,
    FineTuningUnavailable,
    check_job,
    estimate_training_tokens,
    finalize_job,
    get_job_row,
    start_or_attach,
    wait_for_job,
)
from feedbackloop.staging import LocalStaging

TAXONOMY = default_taxonomy()
FAST = ChatSettings(backoff_base_s=0.01, backoff_max_s=0.05, deadline_s=20.0, attempt_timeout_s=5.0)
SPEC_BASE = {
    "version_id": "feedback_retraining-run_1",
    "created_at": "2026-11-22T02:00:00+00:00",
    "provenance": {"dag_id": "feedback_retraining", "run_id": "scheduled__2026-11-22T02:00:00+00:00"},
}


# ---------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def golden() -> list[Any]:
    return load_golden_set()


@pytest.fixture(scope="module")
def golden_answers(golden: list[Any]) -> dict[str, Any]:
    """What the fake model answers per golden email: mostly right, every 9th email confused
    with another category, confidences spread over [0.55, 0.99]."""
    ids = TAXONOMY.category_ids
    table = {}
    for i, email in enumerate(golden):
        category = email.category if i % 9 else ids[(ids.index(email.category) + 1) % len(ids)]
        actions = email.actions if category == email.category else TAXONOMY.category(category).actions[:1]
        table[email.text] = answer(
            category, actions, confidence=0.55 + (i % 45) / 100, alternatives=[email.category]
        )
    return table


@pytest.fixture
def fake() -> Iterator[FakeOpenAI]:
    with FakeOpenAI() as server:
        yield server


def inputs_of(golden: list[Any]) -> list[EmailInput]:
    return [EmailInput.from_golden(g) for g in golden]


def assert_wire_ok(fake: FakeOpenAI) -> None:
    assert fake.violations == [], [str(v) for v in fake.violations]
    assert fake.response_violations == [], [str(v) for v in fake.response_violations]


# -------------------------------------------------------------------------- classifier


def test_golden_set_with_injected_faults_gives_the_same_predictions(fake, golden, golden_answers):
    fake.responder = lookup_responder(golden_answers)
    classifier = OpenAIChatClassifier(fake.client(), "gpt-4o-mini-2024-07-18", TAXONOMY, settings=FAST)
    clean = classifier.classify_detailed(inputs_of(golden))
    fake.set_faults(Faults(rate_429=0.10, rate_500=0.05, retry_after_ms=20, seed=11))
    faulty = classifier.classify_detailed(inputs_of(golden))

    assert fake.faults_injected["429"] >= 5 and fake.faults_injected["500"] >= 2
    assert (
        sum(r.attempts for r in faulty)
        == len(golden) + fake.faults_injected["429"] + fake.faults_injected["500"]
    )
    key = [(p.email_id, p.category, p.actions, p.confidence, p.valid) for p in (r.prediction for r in clean)]
    assert [
        (p.email_id, p.category, p.actions, p.confidence, p.valid) for p in (r.prediction for r in faulty)
    ] == key
    assert [p.email_id for p in (r.prediction for r in faulty)] == [g.id for g in golden]  # input order
    # Confidence is the logprob of the category value, exactly what the model put there.
    for g, r in zip(golden, clean, strict=True):
        assert r.confidence_source == "logprobs"
        assert r.prediction.confidence == pytest.approx(golden_answers[g.text].confidence, abs=1e-9)
    accuracy = sum(r.prediction.category == g.category for g, r in zip(golden, clean, strict=True)) / len(
        golden
    )
    assert accuracy == pytest.approx(1 - len(range(0, len(golden), 9)) / len(golden))
    body = next(r.body for r in fake.requests if r.operation == "createChatCompletion")
    assert (
        body["temperature"] == 0
        and body["seed"] == 0
        and body["logprobs"] is True
        and body["top_logprobs"] == 5
    )
    schema = body["response_format"]["json_schema"]
    assert schema["strict"] is True
    assert schema["schema"]["properties"]["category"]["enum"] == list(TAXONOMY.category_ids)
    assert schema["schema"]["properties"]["actions"]["items"]["enum"] == list(TAXONOMY.actions)
    assert_wire_ok(fake)


@pytest.mark.parametrize(
    "faults",
    [
        pytest.param(("429", "429"), id="two-429s"),
        pytest.param(("500",), id="500"),
        pytest.param(("drop",), id="dropped-connection"),
        pytest.param(("drop", "500", "429"), id="mixed"),
    ],
)
def test_transient_failures_are_retried(fake, golden, faults):
    fake.responder = lambda _r: answer("receipt", ["save_receipt"], 0.8)
    fake.inject("createChatCompletion", *faults)
    result = OpenAIChatClassifier(fake.client(), "m", TAXONOMY, settings=FAST).classify_detailed(
        inputs_of(golden[:1])
    )
    assert result[0].attempts == len(faults) + 1
    assert result[0].prediction.category == "receipt" and result[0].prediction.valid
    assert_wire_ok(fake)


def test_retry_after_is_honoured(fake, golden):
    fake.set_faults(Faults(retry_after_ms=300))
    fake.inject("createChatCompletion", "429", "429")
    classifier = OpenAIChatClassifier(fake.client(), "m", TAXONOMY, settings=FAST)
    started = time.monotonic()
    result = classifier.classify_detailed(inputs_of(golden[:1]))
    elapsed = time.monotonic() - started
    assert result[0].attempts == 3
    assert 0.6 <= elapsed < 2.0  # 2 x 300 ms asked for, backoff alone would be ~0.03 s


def test_deadline_bounds_the_retries(fake, golden):
    fake.set_faults(Faults(rate_500=1.0))
    settings = ChatSettings(backoff_base_s=0.05, backoff_max_s=0.1, deadline_s=0.6, max_attempts=100)
    started = time.monotonic()
    with pytest.raises(ClassificationError, match="HTTP 500|deadline") as info:
        OpenAIChatClassifier(fake.client(), "m", TAXONOMY, settings=settings).classify(inputs_of(golden[:3]))
    assert time.monotonic() - started < 2.0
    assert [f[0] for f in info.value.failures] == [g.id for g in golden[:3]]


def test_non_retryable_error_fails_fast_or_becomes_invalid(fake, golden):
    bad_key = openai.OpenAI(api_key="sk-wrong", base_url=fake.base_url)
    with pytest.raises(ClassificationError, match="HTTP 401"):
        OpenAIChatClassifier(bad_key, "m", TAXONOMY, settings=FAST).classify(inputs_of(golden[:4]))
    assert fake.count("createChatCompletion") == 0
    lenient = ChatSettings(on_error="invalid", backoff_base_s=0.01)
    predictions = OpenAIChatClassifier(bad_key, "m", TAXONOMY, settings=lenient).classify(
        inputs_of(golden[:2])
    )
    assert [p.valid for p in predictions] == [False, False]
    assert all("HTTP 401" in (p.raw or "") for p in predictions)


@pytest.mark.parametrize(
    ("raw", "problem"),
    [
        pytest.param("The category is phishing.", "not JSON", id="not-json"),
        pytest.param('["phishing"]', "not an object", id="not-an-object"),
        pytest.param('{"category": "spaceship", "actions": []}', "unknown category", id="unknown-category"),
        pytest.param(
            '{"category": "bill_due", "actions": ["fly_to_moon"]}', "outside the vocabulary", id="bad-action"
        ),
        pytest.param(
            '{"category": "bill_due", "actions": "pay_invoice"}', "not a list", id="actions-not-list"
        ),
        pytest.param("", "empty", id="empty"),
    ],
)
def test_malformed_answer_is_an_invalid_prediction(fake, golden, raw, problem):
    emails = inputs_of(golden[:3])
    table = {e.text: answer("newsletter", ["read_later"], 0.7) for e in emails}
    table[emails[1].text] = raw
    fake.responder = lookup_responder(table)
    results = OpenAIChatClassifier(fake.client(), "m", TAXONOMY, settings=FAST).classify_detailed(emails)
    assert [r.prediction.valid for r in results] == [True, False, True]
    bad = results[1]
    assert bad.prediction.raw == raw and bad.prediction.confidence == 0.0 and bad.prediction.actions == ()
    assert problem in (bad.problem or "")
    assert_wire_ok(fake)


def test_actions_not_allowed_for_the_category_are_dropped(fake, golden):
    fake.responder = lambda _r: answer("bill_due", ["pay_invoice", "track_package", "pay_invoice"], 0.9)
    [result] = OpenAIChatClassifier(fake.client(), "m", TAXONOMY, settings=FAST).classify_detailed(
        inputs_of(golden[:1])
    )
    assert result.prediction.valid and result.prediction.actions == ("pay_invoice",)
    assert result.dropped_actions == ("track_package",)


def test_endpoint_without_logprobs_uses_the_documented_fallback(golden):
    with FakeOpenAI(
        responder=lambda _r: answer("travel", ["check_in"], 0.97), logprobs_supported=False
    ) as fake:
        results = OpenAIChatClassifier(fake.client(), "m", TAXONOMY, settings=FAST).classify_detailed(
            inputs_of(golden[:2])
        )
        assert_wire_ok(fake)
    assert [r.prediction.confidence for r in results] == [FALLBACK_CONFIDENCE] * 2
    assert [r.confidence_source for r in results] == ["fallback"] * 2
    assert FALLBACK_CONFIDENCE < 0.70  # below the human-review threshold


@pytest.mark.parametrize(
    ("tokens", "expected"),
    [
        pytest.param(
            [('{"category":"', 0.0, None), ("bill", -0.5, None), ("_due", -0.1, None), ('"}', 0.0, None)],
            0.5488116,
            id="two-tokens-joint",
        ),
        pytest.param([('{"category":"bill_due"}', -0.2, None)], 0.8187308, id="one-token-with-quotes"),
        pytest.param([('{"category":"receipt"}', -0.2, None)], None, id="tokens-spell-another-category"),
        pytest.param([], None, id="no-tokens"),
    ],
)
def test_category_confidence_from_token_logprobs(tokens, expected):
    got = category_confidence("bill_due", tokens)
    assert got == (pytest.approx(expected, rel=1e-6) if expected is not None else None)


def test_client_side_rate_limit(fake, golden):
    fake.responder = lambda _r: answer("work", ["reply"], 0.9)
    settings = ChatSettings(requests_per_second=40.0, burst=1, concurrency=16)
    started = time.monotonic()
    OpenAIChatClassifier(fake.client(), "m", TAXONOMY, settings=settings).classify(inputs_of(golden[:21]))
    assert time.monotonic() - started >= 20 / 40 * 0.95
    with pytest.raises(ValueError):
        TokenBucket(0)


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        pytest.param({"retry-after-ms": "250", "retry-after": "1"}, 0.25, id="ms-wins"),
        pytest.param({"Retry-After": "2"}, 2.0, id="seconds"),
        pytest.param({"retry-after": "Wed, 21 Oct 2015 07:28:00 GMT"}, 0.0, id="date-in-the-past"),
        pytest.param({"retry-after": "soon"}, None, id="garbage"),
        pytest.param({}, None, id="absent"),
    ],
)
def test_retry_after_parsing(headers, expected):
    assert retry_after_seconds(headers) == expected


def test_fake_rejects_requests_that_break_the_published_schema(fake):
    client = fake.client()
    with pytest.raises(openai.BadRequestError):
        client.chat.completions.create(
            model="m", messages=[{"role": "user", "content": "hi"}], top_logprobs=30
        )
    assert any("top_logprobs" in v.message for v in fake.violations)


# ------------------------------------------------------------------------- fine-tuning


def _training_files(staging: LocalStaging, n: int = 12) -> dict[str, str]:
    from feedbackloop.synth import render

    rng = random.Random(3)
    prompt = system_prompt(TAXONOMY)
    sft, dpo = [], []
    for i in range(n):
        category = TAXONOMY.category_ids[i % len(TAXONOMY.category_ids)]
        email = render(category, rng)
        good = assistant_content(category, email.actions)
        sft.append(
            {
                "messages": [
                    {"role": "system", "content": prompt},
                    {"role": "user", "content": email.text},
                    {"role": "assistant", "content": good},
                ]
            }
        )
        dpo.append(
            {
                "input": {
                    "messages": [
                        {"role": "system", "content": prompt},
                        {"role": "user", "content": email.text},
                    ]
                },
                "preferred_output": [{"role": "assistant", "content": good}],
                "non_preferred_output": [
                    {"role": "assistant", "content": assistant_content("promotion", [])}
                ],
            }
        )

    def jsonl(rows: list[dict[str, Any]]) -> bytes:
        return ("\n".join(json.dumps(r, sort_keys=True) for r in rows) + "\n").encode()

    keys = {
        "supervised": "run_1/train.jsonl",
        "dpo": "run_1/preference.jsonl",
        "validation": "run_1/validation.jsonl",
    }
    staging.put_bytes(keys["supervised"], jsonl(sft))
    staging.put_bytes(keys["dpo"], jsonl(dpo))
    staging.put_bytes(keys["validation"], jsonl(sft[:3]))
    return keys


@pytest.fixture
def ft(tmp_path, pg_dsn) -> Iterator[dict[str, Any]]:
    staging = LocalStaging(tmp_path / "staging")
    keys = _training_files(staging)
    with psycopg.connect(pg_dsn) as conn:
        yield {"staging": staging, "keys": keys, "conn": conn}


def _request(keys: dict[str, str], method: str = "supervised", **kw: Any) -> FineTuneRequest:
    return FineTuneRequest(
        dag_id="feedback_retraining",
        run_id="scheduled__2026-11-22T02:00:00+00:00",
        method=method,
        training_key=keys[method],
        validation_key=keys["validation"] if method == "supervised" else None,
        seed=7,
        **kw,
    )


@pytest.mark.parametrize(
    "method", [pytest.param("supervised", id="supervised"), pytest.param("dpo", id="dpo")]
)
def test_killed_and_retried_train_creates_exactly_one_job(fake, ft, method):
    conn, staging = ft["conn"], ft["staging"]
    request = _request(ft["keys"], method)
    first = start_or_attach(conn, fake.client(), staging, request)
    assert not first.attached and first.status == "validating_files"

    again = start_or_attach(conn, fake.client(), staging, request)  # a retry: the table has the id
    assert again.attached and again.job_id == first.job_id

    # Killed between "create" and "record": the row exists but has no job id yet.
    conn.execute("UPDATE ml.training_jobs SET remote_job_id = NULL, status = 'pending'")
    conn.commit()
    by_metadata = start_or_attach(conn, fake.client(), staging, request)
    assert by_metadata.attached and by_metadata.job_id == first.job_id

    conn.execute("DELETE FROM ml.training_jobs")  # even with the row gone entirely
    conn.commit()
    assert start_or_attach(conn, fake.client(), staging, request).job_id == first.job_id

    assert fake.jobs_created == 1 and fake.count("createFineTuningJob") == 1
    create = next(r.body for r in fake.requests if r.operation == "createFineTuningJob")
    assert create["method"]["type"] == method
    assert create["method"][method]["hyperparameters"]["n_epochs"] == 3
    assert create["seed"] == 7 and create["suffix"] == request.effective_suffix
    assert create["metadata"]["feedbackloop_run_id"] == request.run_id
    assert create["metadata"]["feedbackloop_job_key"] == request.job_key
    upload = next(r.body for r in fake.requests if r.operation == "createFile")
    assert upload["purpose"] == "fine-tune"
    row = get_job_row(conn, request.dag_id, request.run_id, method)
    assert row["remote_job_id"] == first.job_id and row["submitted_at"] is not None
    assert_wire_ok(fake)


def test_first_run_records_files_cost_and_job_before_waiting(fake, ft):
    conn = ft["conn"]
    request = _request(ft["keys"])
    job = start_or_attach(conn, fake.client(), ft["staging"], request)
    row = get_job_row(conn, request.dag_id, request.run_id, "supervised")
    assert row["status"] == "validating_files" and row["remote_job_id"] == job.job_id
    assert row["training_file_id"] in fake.files and row["validation_file_id"] in fake.files
    tokens = estimate_training_tokens(ft["staging"].get_bytes(request.training_key), "supervised")
    assert row["estimated_tokens"] == tokens and row["n_epochs"] == 3
    assert row["cost_estimate_usd"] == pytest.approx(job.cost_estimate_usd) and row["cost_estimate_usd"] > 0


def test_lost_create_response_does_not_submit_twice(fake, ft):
    fake.inject("createFineTuningJob", "drop_after")  # created at the provider, response lost
    job = start_or_attach(
        ft["conn"], fake.client(), ft["staging"], _request(ft["keys"]), sleep=lambda _s: None
    )
    assert fake.jobs_created == 1 and job.job_id in fake.jobs
    assert_wire_ok(fake)


def test_succeeded_job_yields_an_openai_model_spec(fake, ft):
    conn = ft["conn"]
    job = start_or_attach(conn, fake.client(), ft["staging"], _request(ft["keys"]))
    status = wait_for_job(fake.client(), job.job_id, poll_interval_s=0.0, timeout_s=10)
    assert status["status"] == "succeeded" and status["fine_tuned_model"].startswith("ft:gpt-4o-mini")
    assert any("successfully completed" in e["message"] for e in status["events"])
    spec = finalize_job(conn, status, SPEC_BASE)
    assert spec.backend == "openai" and spec.remote_model_id == status["fine_tuned_model"]
    assert spec.base_model == "gpt-4o-mini-2024-07-18"
    assert spec.provenance["training"]["job_id"] == job.job_id
    assert ModelSpec.from_dict(spec.to_dict()) == spec
    row = get_job_row(conn, job.dag_id, job.run_id, "supervised")
    assert row["status"] == "succeeded" and row["fine_tuned_model"] == spec.remote_model_id
    assert row["finished_at"] is not None
    # Evaluation serves it through the chat classifier.
    classifier = classifier_for_spec(fake.client(), spec, TAXONOMY, settings=FAST)
    assert classifier.model == spec.remote_model_id
    assert_wire_ok(fake)


def test_failed_job_surfaces_the_api_error(fake, ft):
    fake.job_plan = JobPlan(
        error_code="invalid_training_file",
        error_message="Training file has 3 examples; at least 10 are required.",
    )
    conn = ft["conn"]
    job = start_or_attach(conn, fake.client(), ft["staging"], _request(ft["keys"]))
    with pytest.raises(
        FineTuneJobFailed, match="invalid_training_file: Training file has 3 examples"
    ) as info:
        wait_for_job(fake.client(), job.job_id, poll_interval_s=0.0, timeout_s=10)
    assert info.value.code == "invalid_training_file"
    status = check_job(fake.client(), job.job_id)
    with pytest.raises(FineTuneJobFailed, match="at least 10 are required"):
        finalize_job(conn, status, SPEC_BASE)
    row = get_job_row(conn, job.dag_id, job.run_id, "supervised")
    assert (row["status"], row["error_code"]) == ("failed", "invalid_training_file")
    assert "at least 10" in row["error_message"]


def test_cost_guard_blocks_an_over_budget_job(fake, ft):
    conn = ft["conn"]
    request = _request(ft["keys"], max_cost_usd=0.01, usd_per_1m_tokens=3.0)
    with pytest.raises(
        CostLimitExceeded, match=r"estimated fine-tuning cost \$0\.\d\d .* exceeds the limit \$0\.01"
    ):
        start_or_attach(conn, fake.client(), ft["staging"], request)
    assert fake.jobs_created == 0 and fake.count("createFile") == 0
    row = get_job_row(conn, request.dag_id, request.run_id, "supervised")
    assert (row["status"], row["error_code"]) == ("blocked", "cost_limit_exceeded")
    assert row["cost_estimate_usd"] > 0.01


def test_wind_down_names_the_alternatives(fake, ft):
    fake.wind_down = WindDown()
    conn = ft["conn"]
    request = _request(ft["keys"])
    with pytest.raises(FineTuningUnavailable) as info:
        start_or_attach(conn, fake.client(), ft["staging"], request)
    assert "trainer=fewshot" in str(info.value) and "trainer=local" in str(info.value)
    assert "fine_tuning_unavailable" in str(info.value)
    assert fake.jobs_created == 0
    assert get_job_row(conn, request.dag_id, request.run_id, "supervised")["status"] == "refused"


def test_trainer_protocol_implementations(fake, ft):
    from feedbackloop.models.base import Trainer
    from feedbackloop.models.fewshot import FewShotTrainer
    from feedbackloop.models.openai_finetune import OpenAIFineTuneTrainer

    frame = _feedback_frame()
    request = FineTuneRequest(
        dag_id="cli", run_id="manual-1", method="supervised", training_key="cli/train.jsonl"
    )
    trainer = OpenAIFineTuneTrainer(
        ft["conn"],
        fake.client(),
        ft["staging"],
        TAXONOMY,
        request,
        poll_interval_s=0.0,
        sleep=lambda _s: None,
    )
    fewshot = FewShotTrainer(ft["staging"], TAXONOMY, config=FewShotConfig(token_budget=4000))
    assert isinstance(trainer, Trainer) and isinstance(fewshot, Trainer)
    trained = trainer.train(frame, None, dict(SPEC_BASE))
    assert trained.artifact is None and trained.spec.remote_model_id.startswith("ft:")
    staged = ft["staging"].get_bytes("cli/train.jsonl").decode().splitlines()
    assert len(staged) == len(frame) and staged == sorted(staged)  # built from the frame, deterministic
    fake.responder = keyword_responder([("invoice", "bill_due", ["pay_invoice"])], ("personal", ["reply"]))
    emails = [EmailInput("a", "x@y.z", "Invoice 12", "Please pay."), EmailInput("b", "x@y.z", "Hi", "Lunch?")]
    predictions = classifier_for_spec(fake.client(), trained.spec, TAXONOMY, settings=FAST).classify(emails)
    assert [(p.category, p.actions) for p in predictions] == [
        ("bill_due", ("pay_invoice",)),
        ("personal", ("reply",)),
    ]
    few = fewshot.train(frame, frame.head(5), dict(SPEC_BASE))
    assert few.spec.backend == "fewshot" and few.spec.provenance["validation_rows"] == 5
    assert_wire_ok(fake)


@pytest.mark.parametrize(
    ("data", "method", "match"),
    [
        pytest.param(b"not json\n", "supervised", "line 1", id="not-json"),
        pytest.param(b'{"messages": []}\n{"input": {}}\n', "supervised", "line 2", id="wrong-shape"),
        pytest.param(b'{"messages": []}\n', "dpo", "line 1", id="sft-line-in-dpo-file"),
        pytest.param(b"\n\n", "supervised", "no examples", id="empty"),
    ],
)
def test_bad_training_file_is_refused_before_upload(data, method, match):
    with pytest.raises(FineTuneError, match=match):
        estimate_training_tokens(data, method)


@pytest.mark.parametrize(
    "kwargs",
    [
        pytest.param({"method": "rl"}, id="unknown-method"),
        pytest.param({"suffix": "has spaces"}, id="bad-suffix"),
        pytest.param({"n_epochs": 0}, id="zero-epochs"),
        pytest.param({"hyperparameters": {"beta": 0.1}}, id="beta-for-supervised"),
    ],
)
def test_invalid_fine_tune_request(kwargs):
    base = {"dag_id": "d", "run_id": "r", "method": "supervised", "training_key": "k"}
    with pytest.raises(ValueError):
        FineTuneRequest(**{**base, **kwargs})


# ----------------------------------------------------------------------------- trigger


def _run_trigger(trigger: Any) -> dict[str, Any]:
    async def first_event() -> dict[str, Any]:
        async for event in trigger.run():
            return event.payload
        raise AssertionError("the trigger yielded nothing")

    return asyncio.run(first_event())


@pytest.fixture
def airflow_openai(fake, monkeypatch) -> FakeOpenAI:
    monkeypatch.setenv("AIRFLOW_CONN_OPENAI_DEFAULT", fake.airflow_connection_json())
    return fake


def test_trigger_serializes_no_secret_and_round_trips(airflow_openai):
    from feedbackloop_airflow.openai_training import FineTuneJobTrigger

    trigger = FineTuneJobTrigger(conn_id="openai_default", job_id="ftjob-abc", poll_interval=5, timeout=60)
    path, kwargs = trigger.serialize()
    assert path == "feedbackloop_airflow.openai_training.FineTuneJobTrigger"
    assert kwargs == {
        "conn_id": "openai_default",
        "job_id": "ftjob-abc",
        "poll_interval": 5.0,
        "timeout": 60.0,
    }
    assert FAKE_API_KEY not in json.dumps(kwargs) and FAKE_API_KEY not in repr(trigger.__dict__)
    assert FineTuneJobTrigger(**kwargs).serialize() == (path, kwargs)


def test_train_task_defers_then_completes_with_a_spec(airflow_openai, ft):
    from airflow.sdk import BaseOperator
    from airflow.sdk.exceptions import TaskDeferred

    from feedbackloop_airflow.openai_training import FineTuneJobTrigger, complete_from_event, start_or_defer

    fake, conn = airflow_openai, ft["conn"]
    operator = BaseOperator(task_id="train")
    request = _request(ft["keys"])
    for _ in range(2):  # the task is retried while its job runs: still one job
        with pytest.raises(TaskDeferred) as deferred:
            start_or_defer(
                operator, conn=conn, staging=ft["staging"], request=request, poll_interval=0.01, timeout=10
            )
        trigger = deferred.value.trigger
        assert isinstance(trigger, FineTuneJobTrigger) and deferred.value.method_name == "execute_complete"
    assert fake.jobs_created == 1
    assert FAKE_API_KEY not in json.dumps(trigger.serialize()[1])
    event = _run_trigger(trigger)
    assert (event["status"], event["termination_reason"], event["job_status"]) == (
        "success",
        "completed",
        "succeeded",
    )
    assert event["events"] and FAKE_API_KEY not in json.dumps(event)
    spec = complete_from_event(event, conn=conn, spec_base=SPEC_BASE)
    assert spec.backend == "openai" and spec.remote_model_id == event["fine_tuned_model"]
    # A re-run after success re-attaches to the finished job and completes without waiting.
    status = start_or_defer(operator, conn=conn, staging=ft["staging"], request=request)
    assert status["status"] == "succeeded" and fake.jobs_created == 1
    assert_wire_ok(fake)


def test_trigger_reports_a_failed_job_and_the_task_fails_loudly(airflow_openai, ft):
    from airflow.sdk.exceptions import AirflowFailException

    from feedbackloop_airflow.openai_training import FineTuneJobTrigger, complete_from_event

    fake, conn = airflow_openai, ft["conn"]
    fake.job_plan = JobPlan(error_code="quota_exceeded", error_message="Monthly fine-tuning quota exhausted.")
    job = start_or_attach(conn, fake.client(), ft["staging"], _request(ft["keys"]))
    event = _run_trigger(FineTuneJobTrigger("openai_default", job.job_id, poll_interval=0.01, timeout=10))
    assert (event["status"], event["termination_reason"]) == ("error", "failed")
    assert (event["error_code"], event["error_message"]) == (
        "quota_exceeded",
        "Monthly fine-tuning quota exhausted.",
    )
    with pytest.raises(AirflowFailException, match="quota_exceeded: Monthly fine-tuning quota exhausted"):
        complete_from_event(event, conn=conn, spec_base=SPEC_BASE)
    assert get_job_row(conn, job.dag_id, job.run_id, "supervised")["status"] == "failed"


def test_trigger_times_out_on_the_monotonic_clock(airflow_openai, ft):
    from airflow.sdk.exceptions import AirflowException, AirflowFailException

    from feedbackloop_airflow.openai_training import FineTuneJobTrigger, complete_from_event

    fake, conn = airflow_openai, ft["conn"]
    fake.job_plan = JobPlan(polls_per_status=10_000)
    job = start_or_attach(conn, fake.client(), ft["staging"], _request(ft["keys"]))
    started = time.monotonic()
    event = _run_trigger(FineTuneJobTrigger("openai_default", job.job_id, poll_interval=0.05, timeout=0.3))
    assert 0.3 <= time.monotonic() - started < 3
    assert (event["status"], event["termination_reason"]) == ("error", "timeout")
    with pytest.raises(AirflowException, match="still validating_files") as info:
        complete_from_event(event, conn=conn, spec_base=SPEC_BASE)
    assert not isinstance(info.value, AirflowFailException)  # retryable: the retry re-attaches


def test_trigger_rejects_an_unknown_status(airflow_openai, ft):
    from feedbackloop_airflow.openai_training import FineTuneJobTrigger

    fake = airflow_openai
    fake.job_plan = JobPlan(statuses=("validating_files", "paused_for_review"), polls_per_status=1)
    job = start_or_attach(ft["conn"], fake.client(), ft["staging"], _request(ft["keys"]))
    event = _run_trigger(FineTuneJobTrigger("openai_default", job.job_id, poll_interval=0.01, timeout=10))
    assert (event["status"], event["termination_reason"]) == ("error", "unexpected_status")
    assert "paused_for_review" in event["message"]
    # The fake knows it sent something off-spec; the trigger did not guess.
    assert any("paused_for_review" in v.message for v in fake.response_violations)


@pytest.mark.parametrize(
    "event",
    [
        pytest.param(None, id="none"),
        pytest.param(
            {"status": "weird", "termination_reason": "completed", "job_id": "j"}, id="unknown-status"
        ),
        pytest.param(
            {"status": "success", "termination_reason": "magic", "job_id": "j"}, id="unknown-reason"
        ),
        pytest.param({"status": "success", "termination_reason": "completed"}, id="no-job-id"),
    ],
)
def test_malformed_trigger_events_are_refused(event):
    from airflow.sdk.exceptions import AirflowException

    from feedbackloop_airflow.openai_training import validate_event

    with pytest.raises(AirflowException):
        validate_event(event)


# ---------------------------------------------------------------------------- few-shot


def _feedback_frame() -> pd.DataFrame:
    """Corrected-feedback-like frame: every category, problem-area variants, rewards."""
    from feedbackloop.synth import problem_variant_keys, render

    rng = random.Random(21)
    rows = []
    for category in TAXONOMY.category_ids:
        for _ in range(4):
            e = render(category, rng)
            rows.append({"text": e.text, "category": category, "actions": list(e.actions), "areas": []})
    for category, area in problem_variant_keys():
        e = render(category, rng, area)
        rows.append({"text": e.text, "category": category, "actions": list(e.actions), "areas": [area]})
    first = rows[0]
    rows.append({**first, "text": first["text"] + " "})  # an exact duplicate after normalisation
    rows.append(
        {**first, "text": first["text"].replace("\n\n", "\n\nP.S. see you soon.\n\n", 1)}
    )  # near-duplicate
    for i, r in enumerate(rows):
        r["weight"] = 1.0
        r["reward"] = round(0.3 + (int(hashlib.sha256(r["text"].encode()).hexdigest(), 16) % 40) / 100, 2)
        r["problem_areas"] = r.pop("areas")
        r["example_id"] = f"ex-{i:04d}"
    return pd.DataFrame(rows)


def test_fewshot_covers_categories_and_problem_areas_within_the_budget(fake, tmp_path, golden):
    frame = _feedback_frame()
    before = frame.copy(deep=True)
    config = FewShotConfig(token_budget=14_000, max_per_category=2)
    selection = select_exemplars(frame, TAXONOMY, config)
    pd.testing.assert_frame_equal(frame, before)  # input not mutated
    stats = selection.stats
    assert (
        stats["categories_covered"] == sorted(TAXONOMY.category_ids) and stats["categories_uncovered"] == []
    )
    assert stats["tokens_used"] <= config.token_budget
    assert sum(e.tokens for e in selection.exemplars) == stats["tokens_used"]
    present_areas = set(frame["problem_areas"].explode().dropna())
    assert set(stats["problem_areas_covered"]) | set(stats["problem_areas_uncovered"]) == present_areas
    assert len(stats["problem_areas_covered"]) >= len(present_areas) // 2
    assert stats["skipped"]["duplicate"] == 1
    keys = [e.key for e in selection.exemplars]
    assert len(keys) == len(set(keys))
    counts = pd.Series([e.category for e in selection.exemplars]).value_counts()
    assert counts.max() <= 2

    staging = LocalStaging(tmp_path / "staging")
    spec = optimise_prompt(staging, frame, TAXONOMY, SPEC_BASE, base_model="gpt-4o-mini", config=config)
    shuffled = frame.sample(frac=1.0, random_state=5).reset_index(drop=True)
    again = optimise_prompt(staging, shuffled, TAXONOMY, SPEC_BASE, base_model="gpt-4o-mini", config=config)
    assert spec.prompt_version == again.prompt_version and spec.prompt_version.startswith("sha256:")
    stored = staging.get_bytes(prompt_key(spec.prompt_version))
    assert "sha256:" + hashlib.sha256(stored).hexdigest() == spec.prompt_version
    assert (
        spec.backend == "fewshot"
        and spec.base_model == "gpt-4o-mini"
        and spec.artifact_uri == again.artifact_uri
    )
    assert spec.provenance["training"]["exemplars"] == len(selection.exemplars)

    # The evaluation path: a classifier from the spec sends the exemplars with every email.
    fake.responder = lambda _r: answer("promotion", ["view_offer"], 0.8)
    classifier = classifier_for_spec(fake.client(), spec.to_dict(), TAXONOMY, staging=staging, settings=FAST)
    predictions = classifier.classify(inputs_of(golden[:2]))
    assert [p.category for p in predictions] == ["promotion", "promotion"]
    sent = [r.body for r in fake.requests if r.operation == "createChatCompletion"]
    assert len(sent[0]["messages"]) == 2 + 2 * len(selection.exemplars)
    assert sent[0]["model"] == "gpt-4o-mini"
    assert_wire_ok(fake)


def test_fewshot_tight_budget_is_respected_and_reported():
    frame = _feedback_frame()
    selection = select_exemplars(frame, TAXONOMY, FewShotConfig(token_budget=900))
    assert 0 < selection.stats["tokens_used"] <= 900
    assert selection.stats["categories_uncovered"]  # reported, not silently dropped
    assert len(selection.stats["categories_covered"]) >= 3  # fair share keeps coverage wide


def test_fewshot_prefers_high_reward_and_skips_near_duplicates():
    frame = _feedback_frame()
    bill = frame[frame["category"] == "bill_due"].iloc[0]
    twin = {**bill.to_dict(), "text": bill["text"] + "\n\nThanks!", "reward": 0.99, "example_id": "ex-twin"}
    frame = pd.concat([frame, pd.DataFrame([twin])], ignore_index=True)
    frame.loc[frame["example_id"] == bill["example_id"], "reward"] = 0.98
    chosen = [
        e
        for e in select_exemplars(frame, TAXONOMY, FewShotConfig(token_budget=50_000)).exemplars
        if e.category == "bill_due"
    ]
    texts = [e.text for e in chosen]
    assert twin["text"] in texts and bill["text"] not in texts  # best first, its near-twin skipped


@pytest.mark.parametrize(
    ("frame", "match"),
    [
        pytest.param(pd.DataFrame({"category": ["bill_due"], "actions": [[]]}), "lacks column", id="no-text"),
        pytest.param(
            pd.DataFrame({"text": ["x"], "category": ["nope"], "actions": [[]]}), "no usable", id="no-rows"
        ),
    ],
)
def test_fewshot_bad_input(frame, match):
    with pytest.raises(FewShotError, match=match):
        select_exemplars(frame, TAXONOMY)


def test_tampered_prompt_document_is_refused(tmp_path):
    staging = LocalStaging(tmp_path / "staging")
    spec = optimise_prompt(
        staging, _feedback_frame(), TAXONOMY, SPEC_BASE, config=FewShotConfig(token_budget=3000)
    )
    key = prompt_key(spec.prompt_version)
    staging.put_bytes(key, staging.get_bytes(key).replace(b"inbox assistant", b"inbox assistent"))
    with pytest.raises(FewShotError, match="hashes to"):
        load_prompt(staging, spec.prompt_version)
