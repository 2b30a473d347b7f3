"""Bad input at every boundary gets a specific, actionable error message, checked by its text.

Boundaries covered here (what already had such tests is listed in RELIABILITY.md and not
repeated): the trigger form's params of every DAG (refused by the form's JSON schema, i.e.
Airflow's Param validation, which the UI, the REST API and ``dag.test`` all apply), the same
values reaching the tasks anyway (each task checks them itself and fails without retries),
golden-set and taxonomy files that are missing or unreadable, model answers that are not
JSON or name an unknown category, and configuration with a missing connection.

Every case is counted for RELIABILITY.md (``bad_input.tried``).
"""

from __future__ import annotations

import copy
import json
import logging
import re
from types import SimpleNamespace

import pytest
from tests.reliability.security_support import Figures
from tests.support import RUN_DATE

from feedbackloop.export import resolve_export_day
from feedbackloop.monitoring import Thresholds
from feedbackloop.review import ReviewPolicy

pytestmark = pytest.mark.slow

ISO_START, ISO_END = "2026-11-15T02:00:00+00:00", "2026-11-22T02:00:00+00:00"


@pytest.fixture
def figures(tmp_path_factory):
    return Figures(tmp_path_factory.getbasetemp())


# ------------------------------------------------------------------ the trigger form (params)

FORM_CASES = [
    # dag, param, value, what the message must say (besides "Invalid input for param <name>:")
    ("feedback_retraining", "min_accuracy", 1.5, "1.5 is greater than the maximum of 1"),
    ("feedback_retraining", "min_critical_accuracy", -0.1, "-0.1 is less than the minimum of 0"),
    ("feedback_retraining", "max_ece", 2, "2 is greater than the maximum of 1"),
    ("feedback_retraining", "max_p95_latency_ms", 0, "0 is less than or equal to the minimum of 0"),
    ("feedback_retraining", "traffic_share", 0.3, "0.3 is not one of [0.05, 0.25, 0.5]"),
    ("feedback_retraining", "min_examples", 5, "5 is less than the minimum of 10"),
    ("feedback_retraining", "min_examples", 10.5, "10.5 is not of type 'integer'"),
    ("feedback_retraining", "max_quarantine_share", 1.2, "1.2 is greater than the maximum of 1"),
    ("feedback_retraining", "max_cost_usd", -1, "-1 is less than the minimum of 0"),
    ("feedback_retraining", "trainer", "gpt-5", "'gpt-5' is not one of ['local', 'openai', 'fewshot']"),
    ("feedback_retraining", "finetune_method", "rl", "'rl' is not one of ['supervised', 'dpo']"),
    ("feedback_retraining", "interval_start", "last week", "'last week' is not a 'date-time'"),
    ("feedback_retraining", "dry_run", "yes", "'yes' is not of type 'boolean'"),
    ("golden_set_validation", "max_accuracy_drop", 2, "2 is greater than the maximum of 1"),
    ("golden_set_validation", "min_accuracy", "high", "'high' is not of type 'number'"),
    ("regression_monitor", "accuracy_max_drop", 0.9, "0.9 is greater than the maximum of 0.5"),
    ("regression_monitor", "accuracy_min_samples", 0, "0 is less than the minimum of 1"),
    ("regression_monitor", "latency_p95_ms", 0, "0 is less than or equal to the minimum of 0"),
    ("review_queue", "confidence_threshold", 0, "0 is less than or equal to the minimum of 0"),
    ("review_queue", "daily_cap", -1, "-1 is less than the minimum of 0"),
    (
        "experiment_evaluation",
        "action",
        "force",
        "'force' is not one of ['auto', 'force_promote', 'force_rollback']",
    ),
    ("experiment_evaluation", "reason", "x" * 501, "is too long"),
    ("feedback_export", "day", "2026-13-45", "'2026-13-45' is not a 'date'"),
    ("feedback_export", "day", "yesterday", "'yesterday' is not a 'date'"),
    ("feedback_export", "max_quarantine_share", -0.5, "-0.5 is less than the minimum of 0"),
]


@pytest.mark.parametrize(
    ("dag_id", "name", "value", "message"),
    [pytest.param(*c, id=f"{c[0]}.{c[1]}={str(c[2])[:12]}") for c in FORM_CASES],
)
def test_the_trigger_form_refuses_out_of_range_params(dagbag, dag_id, name, value, message, figures, request):
    from airflow.sdk.exceptions import ParamValidationError

    params = copy.deepcopy(dagbag.dags[dag_id].params)
    with pytest.raises(ParamValidationError) as err:
        params[name] = value  # what the form / REST API does with each submitted field
    text = str(err.value)
    assert text.startswith(f"Invalid input for param {name}: "), text
    assert message in text, text
    figures.add_case("bad_input", f"form:{request.node.callspec.id}", text.splitlines()[0])


def test_a_run_with_an_out_of_range_param_is_never_created(dagbag, figures):
    """The real path (run creation validates the conf): nothing runs, the message names the param."""
    from airflow.models.dagrun import DagRun
    from airflow.sdk.exceptions import ParamValidationError

    dag = dagbag.dags["feedback_retraining"]
    when = RUN_DATE.replace(year=2031)
    with pytest.raises(ParamValidationError, match=r"Invalid input for param min_accuracy: 1.5 is greater"):
        dag.test(logical_date=when, run_conf={"min_accuracy": 1.5})
    assert DagRun.find(dag_id="feedback_retraining", logical_date=when) == []
    figures.add_case("bad_input", "run-creation:min_accuracy=1.5", "ParamValidationError, no run created")


# -------------------------------------------------------------- the same values in the tasks


def _context(**params):
    base = {"interval_start": ISO_START, "interval_end": ISO_END}
    return {
        "params": {**base, **params},
        "dag": SimpleNamespace(dag_id="feedback_retraining"),
        "run_id": "manual__bad_input",
        "dag_run": SimpleNamespace(triggering_user_name="tester", run_after=RUN_DATE),
        "logical_date": RUN_DATE,
    }


def _retraining_tasks():
    from feedbackloop_airflow.operators import (
        BuildTrainingSetsOperator,
        DeployChallengerOperator,
        GoldenGateOperator,
        TrainChallengerOperator,
        ValidateFeedbackOperator,
    )

    return {
        "validate": lambda v: ValidateFeedbackOperator(task_id="t", max_quarantine_share=v),
        "datasets": lambda v: BuildTrainingSetsOperator(task_id="t", min_examples=v),
        "train_trainer": lambda v: TrainChallengerOperator(task_id="t", trainer=v),
        "train_cost": lambda v: TrainChallengerOperator(task_id="t", trainer="local", max_cost_usd=v),
        "train_method": lambda v: TrainChallengerOperator(task_id="t", trainer="local", method=v),
        "gate": lambda v: GoldenGateOperator(task_id="t", thresholds={"min_accuracy": v}),
        "gate_latency": lambda v: GoldenGateOperator(task_id="t", thresholds={"max_p95_latency_ms": v}),
        "deploy": lambda v: DeployChallengerOperator(task_id="t", traffic_share=v),
    }


TASK_CASES = [
    # operator, templated value as the task receives it, message
    ("validate", "1.2", "max_quarantine_share must be a number >= 0 and <= 1, got '1.2'"),
    ("validate", "lots", "max_quarantine_share must be a number >= 0 and <= 1, got 'lots'"),
    ("datasets", "ten", "min_examples must be an integer >= 1, got 'ten'"),
    ("datasets", "10.5", "min_examples must be an integer >= 1, got '10.5'"),
    ("datasets", "0", "min_examples must be an integer >= 1, got '0'"),
    ("train_trainer", "gpt-5", "unknown trainer 'gpt-5': choose one of local, fewshot, openai"),
    ("train_method", "rl", "unknown fine-tuning method 'rl': choose supervised or dpo"),
    ("train_cost", "-1", "max_cost_usd must be a number >= 0, got '-1'"),
    ("gate", "1.5", "invalid gate thresholds: min_accuracy must be within [0, 1], got 1.5"),
    ("gate", "high", "min_accuracy must be a number, got 'high'"),
    ("gate", "nan", "min_accuracy must be a number, got 'nan'"),
    ("gate_latency", "0", "invalid gate thresholds: max_p95_latency_ms must be > 0, got 0.0"),
    ("deploy", "0.3", "traffic_share must be one of the canary ramp steps 0.05, 0.25, 0.5, got '0.3'"),
    ("deploy", "1.5", "traffic_share must be a number > 0 and <= 1, got '1.5'"),
]


@pytest.mark.parametrize(
    ("task", "value", "message"), [pytest.param(*c, id=f"{c[0]}={c[1]}") for c in TASK_CASES]
)
def test_each_task_refuses_bad_values_itself_without_retrying(
    task, value, message, figures, monkeypatch, tmp_path
):
    """A value the form would refuse can still reach a task (another DAG, a CLI conf, a typo in
    a template): the task fails at once, naming the setting, what is allowed and what it got."""
    from airflow.sdk.exceptions import AirflowFailException

    monkeypatch.setenv("FEEDBACKLOOP_STAGING_URI", tmp_path.as_uri())
    operator = _retraining_tasks()[task](value)
    with pytest.raises((AirflowFailException, ValueError)) as err:
        operator.execute(_context())
    assert message in str(err.value), str(err.value)
    if task not in ("train_trainer", "train_method"):  # those are ValueErrors of the settings
        assert isinstance(err.value, AirflowFailException), "bad input must not be retried"
    figures.add_case("bad_input", f"task:{task}={value}", str(err.value))


@pytest.mark.parametrize(
    ("params", "message"),
    [
        pytest.param(
            {"interval_start": "last week"},
            "interval_start must be an ISO 8601 timestamp with a time zone, e.g. 2026-11-15T02:00:00+00:00, "
            "got 'last week'",
            id="not-a-timestamp",
        ),
        pytest.param(
            {"interval_end": "2026-11-22T02:00:00"},
            "interval_end must carry a time zone, e.g. 2026-11-22T02:00:00+00:00 for UTC, got 2026-11-22T02:00:00",
            id="naive",
        ),
        pytest.param(
            {"interval_start": ISO_END, "interval_end": ISO_START},
            "interval_start 2026-11-22T02:00:00+00:00 must be before interval_end 2026-11-15T02:00:00+00:00",
            id="reversed",
        ),
    ],
)
def test_a_bad_feedback_interval_is_named(params, message, figures, request):
    from feedbackloop_airflow.operators import ExtractFeedbackOperator

    with pytest.raises(ValueError) as err:
        ExtractFeedbackOperator(task_id="t").run_context(_context(**params))
    assert message in str(err.value), str(err.value)
    figures.add_case("bad_input", f"interval:{request.node.callspec.id}", str(err.value))


@pytest.mark.parametrize(
    ("build", "message"),
    [
        pytest.param(
            lambda: Thresholds.from_mapping({"latency_p95_ms": "0"}),
            "latency_p95_ms must be > 0, got 0.0",
            id="monitor-latency-zero",
        ),
        pytest.param(
            lambda: Thresholds.from_mapping({"accuracy_max_drop": "abc"}),
            "threshold accuracy_max_drop must be a number, got 'abc'",
            id="monitor-not-a-number",
        ),
        pytest.param(
            lambda: ReviewPolicy.from_mapping({"daily_cap": "x"}),
            "daily_cap must be a number, got 'x'",
            id="review-cap-not-a-number",
        ),
        pytest.param(
            lambda: ReviewPolicy.from_mapping({"confidence_threshold": "1.5"}),
            "confidence_threshold must be in (0, 1], got 1.5",
            id="review-threshold",
        ),
        pytest.param(
            lambda: resolve_export_day("2026-13-45"),
            "'2026-13-45' is not a calendar day",
            id="export-day",
        ),
    ],
)
def test_the_other_dags_settings_are_checked_by_their_tasks(build, message, figures, request):
    with pytest.raises(ValueError) as err:
        build()
    assert message in str(err.value), str(err.value)
    figures.add_case("bad_input", f"task:{request.node.callspec.id}", str(err.value))


def test_a_manual_override_without_a_reason_or_with_an_unknown_action_is_refused(figures, monkeypatch):
    from airflow.sdk.exceptions import AirflowFailException

    from feedbackloop_airflow.experiment_operators import EvaluateExperimentOperator

    monkeypatch.delenv("AIRFLOW_CONN_FEEDBACK_DB", raising=False)  # refused before any DB access
    for action, reason, message in (
        ("force", "", "action must be one of ('auto', 'force_promote', 'force_rollback'), got 'force'"),
        ("force_rollback", "  ", "a reason is required for force_rollback"),
    ):
        with pytest.raises(AirflowFailException, match=re.escape(message)):
            EvaluateExperimentOperator(task_id="t", action=action, reason=reason).execute(_context())
        figures.add_case("bad_input", f"task:experiment-{action}", message)


# ----------------------------------------------------------------- golden set and taxonomy


def _golden_cases(tmp_path):
    from feedbackloop.paths import golden_dir

    good_taxonomy = (golden_dir() / "taxonomy.yaml").read_text(encoding="utf-8")
    good_line = (golden_dir() / "golden_set.jsonl").read_text(encoding="utf-8").splitlines()[0]
    return {
        "golden-missing": ("golden", None, "golden_set.jsonl: not found at"),
        "golden-empty": ("golden", b"\n\n", "golden_set.jsonl: holds no emails"),
        "golden-not-utf8": (
            "golden",
            good_line.encode() + b"\n\xff\xfe{}\n",
            "golden_set.jsonl: is not valid UTF-8",
        ),
        "golden-json-array": (
            "golden",
            b'["gs-001", "bill_due"]\n',
            "golden_set.jsonl:1: must be a JSON object",
        ),
        "golden-a-directory": ("golden", "dir", "golden_set.jsonl: cannot be read"),
        "taxonomy-missing": ("taxonomy", None, "taxonomy.yaml: not found at"),
        "taxonomy-a-list": ("taxonomy", b"- a\n- b\n", "taxonomy.yaml: top level must be a mapping"),
        "taxonomy-no-categories": (
            "taxonomy",
            good_taxonomy.split("\ncategories:")[0].encode(),
            "taxonomy.yaml: field 'categories': is missing",
        ),
        "taxonomy-version-text": (
            "taxonomy",
            good_taxonomy.replace("version: 1", "version: one", 1).encode(),
            "taxonomy.yaml: field 'version': must be an integer, got 'one'",
        ),
    }


@pytest.mark.parametrize(
    "case",
    [
        "golden-missing",
        "golden-empty",
        "golden-not-utf8",
        "golden-json-array",
        "golden-a-directory",
        "taxonomy-missing",
        "taxonomy-a-list",
        "taxonomy-no-categories",
        "taxonomy-version-text",
    ],
)
def test_golden_set_and_taxonomy_file_errors_name_the_file_and_the_fix(case, tmp_path, figures):
    from feedbackloop.golden import GoldenSetError, default_taxonomy, load_golden_set, load_taxonomy

    kind, content, message = _golden_cases(tmp_path)[case]
    path = tmp_path / ("golden_set.jsonl" if kind == "golden" else "taxonomy.yaml")
    if content == "dir":
        path.mkdir()
    elif content is not None:
        path.write_bytes(content)
    with pytest.raises(GoldenSetError) as err:
        if kind == "golden":
            load_golden_set(path, default_taxonomy())
        else:
            load_taxonomy(path)
    assert str(err.value).startswith(message), str(err.value)
    if content is None:
        assert "FEEDBACKLOOP_GOLDEN_DIR" in str(err.value) and str(path) in str(err.value)
    figures.add_case("bad_input", f"file:{case}", str(err.value)[:200])


def test_a_wrong_golden_dir_is_named_by_the_cli(tmp_path, monkeypatch, capsys, figures):
    from feedbackloop import cli

    monkeypatch.setenv("FEEDBACKLOOP_GOLDEN_DIR", str(tmp_path / "nowhere"))
    assert cli.main(["validate-golden"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("invalid: taxonomy.yaml: not found at ") and "set FEEDBACKLOOP_GOLDEN_DIR" in err, (
        err
    )
    figures.add_case("bad_input", "file:cli-golden-dir", err.strip())


# ------------------------------------------------------------------------- model answers


def test_unusable_model_answers_are_counted_and_explained(caplog, figures):
    """Not JSON, an unknown category, an action outside the vocabulary: each answer becomes an
    invalid prediction (wrong in the metrics), and one warning says how many, why and where."""
    from tests.fakes.openai_server import FakeOpenAI, answer, lookup_responder

    from feedbackloop.golden import default_taxonomy, load_golden_set
    from feedbackloop.models.base import EmailInput
    from feedbackloop.models.openai_chat import ChatSettings, OpenAIChatClassifier

    golden = load_golden_set()[:5]
    emails = [EmailInput.from_golden(g) for g in golden]
    table = {e.text: answer(g.category, g.actions, 0.9) for e, g in zip(emails, golden, strict=True)}
    table[emails[1].text] = "The category is phishing."
    table[emails[2].text] = '{"category": "spaceship", "actions": []}'
    table[emails[3].text] = '{"category": "spaceship", "actions": []}'
    table[emails[4].text] = json.dumps({"category": golden[4].category, "actions": ["fly_to_moon"]})
    settings = ChatSettings(backoff_base_s=0.01, backoff_max_s=0.05, deadline_s=20.0, attempt_timeout_s=5.0)
    with FakeOpenAI(responder=lookup_responder(table)) as fake, caplog.at_level(logging.WARNING):
        predictions = OpenAIChatClassifier(
            fake.client(), "ft:model-x", default_taxonomy(), settings=settings
        ).classify(emails)
    assert [p.valid for p in predictions] == [True, False, False, False, False]
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1, warnings
    text = warnings[0]
    assert text.startswith("4 of 5 answers from model 'ft:model-x' were unusable and count as wrong: "), text
    assert f"2x unknown category 'spaceship' (e.g. {golden[2].id}, {golden[3].id})" in text, text
    assert f"1x answer is not JSON: Expecting value (e.g. {golden[1].id})" in text, text
    assert f"1x action(s) outside the vocabulary: fly_to_moon (e.g. {golden[4].id})" in text, text
    assert "structured output" in text  # what to check
    for problem in ("not-json", "unknown-category", "unknown-action"):
        figures.add_case("bad_input", f"model-answer:{problem}", text)


# ---------------------------------------------------------------------- missing connections


@pytest.fixture
def no_connections(monkeypatch):
    for name in ("FEEDBACK_DB", "AWS_DEFAULT", "OPENAI_DEFAULT", "SLACK_ALERTS"):
        monkeypatch.delenv(f"AIRFLOW_CONN_{name}", raising=False)
    for var in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", "/dev/null")
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")


def test_a_missing_feedback_db_connection_says_how_to_define_it(no_connections, figures):
    from airflow.sdk.exceptions import AirflowNotFoundException

    from feedbackloop_airflow.operators import ExtractFeedbackOperator

    with pytest.raises(AirflowNotFoundException) as err:
        ExtractFeedbackOperator(task_id="extract_feedback").db()  # what every DB task opens
    text = str(err.value)
    assert text.startswith(
        "Airflow connection 'feedback_db' is not defined; it is needed for the feedback DB"
    ), text
    for hint in (
        "airflow connections add feedback_db",
        "AIRFLOW_CONN_FEEDBACK_DB=",
        '"conn_type": "postgres"',
        '"login": "feedbackloop_pipeline"',
        "README, Configuration",
    ):
        assert hint in text, (hint, text)
    figures.add_case("bad_input", "config:feedback_db-missing", text)


def test_a_missing_openai_connection_says_how_to_define_it(no_connections, figures):
    from airflow.sdk.exceptions import AirflowNotFoundException

    from feedbackloop_airflow.hooks import openai_client

    with pytest.raises(AirflowNotFoundException) as err:
        openai_client("openai_default")
    text = str(err.value)
    assert text.startswith(
        "Airflow connection 'openai_default' is not defined; it is needed for the "
        "OpenAI-compatible model endpoint"
    ), text
    assert "AIRFLOW_CONN_OPENAI_DEFAULT=" in text and '"password": "<api key>"' in text, text
    figures.add_case("bad_input", "config:openai_default-missing", text)


def test_s3_staging_without_any_credentials_says_what_to_configure(no_connections, figures):
    from feedbackloop_airflow.hooks import StagingHook

    with pytest.raises(ValueError) as err:
        StagingHook("s3://feedbackloop-staging/airflow").get_conn()
    text = str(err.value)
    assert text.startswith(
        "staging root 's3://feedbackloop-staging/airflow' is on S3 but no AWS credentials were found. "
        "Airflow connection 'aws_default' is not defined; it is needed for S3 staging."
    ), text
    assert "AIRFLOW_CONN_AWS_DEFAULT=" in text and "IAM role" in text, text
    figures.add_case("bad_input", "config:aws_default-missing", text)


def test_an_unsupported_staging_root_is_named(no_connections, figures):
    from feedbackloop_airflow.hooks import StagingHook

    with pytest.raises(ValueError, match=r"unsupported staging root 'ftp://host/x': use file:// or s3://"):
        StagingHook("ftp://host/x").get_conn()
    figures.add_case("bad_input", "config:staging-uri-scheme", "unsupported staging root 'ftp://host/x'")


def test_without_a_slack_connection_messages_are_logged_not_lost(no_connections, figures):
    """Slack is optional by design: no connection means the message goes to the task log."""
    from feedbackloop_airflow.operators import send_slack

    log = logging.getLogger("test.slack")
    records: list[str] = []
    handler = logging.Handler()
    handler.emit = lambda r: records.append(r.getMessage())  # type: ignore[method-assign]
    log.addHandler(handler)
    try:
        assert send_slack("slack_alerts", {"text": "hello"}, log) is False
    finally:
        log.removeHandler(handler)
    assert records == ["no 'slack_alerts' connection: Slack message not sent, logged only"]
    figures.add_case("bad_input", "config:slack_alerts-missing", records[0])
