"""Nightly golden-set validation of the deployed models (the champion and the challenger).

A model that passed the release gate once can still get worse: a provider may change what
stands behind a remote model id, a library upgrade may change a local model's features, a
new golden-set version may expose a blind spot. Every night :func:`validate_alias`
re-evaluates the model behind an alias on the golden set, applies the release gate's
value thresholds, compares the result with the **last recorded run of the same model
version on the same golden-set version** and records everything in ``ml.golden_runs``:

* ``regression:accuracy``: overall accuracy may drop by at most ``max_accuracy_drop``
  (default 0.02, the brief's two points) against that run;
* ``regression:critical`` and ``regression:category:<id>`` for every critical category:
  accuracy on critical slices may not drop at all (on the critical emails one more mistake
  is already a regression worth a page).

Regression checks have the gate checks' shape (``name``, ``value``, ``threshold``, ``op``,
``passed``, ``skipped``, ``detail``); ``value`` is the drop (previous minus current). They
join the gate's checks in the recorded decision, so the verdict, the report and the alert
all tell the same story. Runs on another golden-set version are not compared: their emails
differ, so a change in accuracy would say nothing about the model.

Staged under the run prefix, per alias: ``<alias>/eval.json``, ``<alias>/report.json``,
``<alias>/report.html``, the report's plots as PNG (``<alias>/<plot>.png``) and
``<alias>/summary.json`` (the task's XCom summary, also written when there is no model).
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from typing import Any

from feedbackloop.db import transaction
from feedbackloop.gate import NO_CHAMPION, GateDecision, GateThresholds

log = logging.getLogger(__name__)

ALIASES: tuple[str, ...] = ("champion", "challenger")
MAX_ACCURACY_DROP = 0.02
# Float noise allowance, as in the gate: accuracies are ratios of small integers.
_EPS = 1e-12

EVAL = "eval.json"
CHAMPION_EVAL = "champion_eval.json"
REPORT_JSON = "report.json"
REPORT_HTML = "report.html"
SUMMARY = "summary.json"
NO_MODEL = {"champion": NO_CHAMPION, "challenger": "no challenger deployed"}


class ValidationError(ValueError):
    """Bad input to the validation (unknown alias, negative allowed drop)."""


def _check_alias(alias: str) -> str:
    if alias not in ALIASES:
        raise ValidationError(f"alias must be one of {', '.join(ALIASES)}, got {alias!r}")
    return alias


def _as_dict(value: Any) -> dict[str, Any]:
    return value.to_dict() if hasattr(value, "to_dict") else dict(value)


def _run_dict(run: Any) -> dict[str, Any]:
    data = run.to_dict() if hasattr(run, "to_dict") else dict(run)
    for name in ("dag_id", "run_id"):
        if not (isinstance(data.get(name), str) and data[name]):
            raise ValidationError(f"run must name its {name}, got {data.get(name)!r}")
    return data


def golden_run_id(run: Any, version_id: str) -> str:
    """Primary key of a run's row in ``ml.golden_runs``: ``<dag_id>/<run_id>/<version_id>``."""
    data = _run_dict(run)
    return f"{data['dag_id']}/{data['run_id']}/{version_id}"


# --------------------------------------------------------------------------- regression


def _accuracy(evaluation: Mapping[str, Any], slice_name: str) -> float | None:
    if slice_name == "overall" and "slices" not in evaluation:
        value = evaluation.get("accuracy")
    else:
        entry = (evaluation.get("slices") or {}).get(slice_name)
        value = entry.get("accuracy") if isinstance(entry, Mapping) and entry.get("n") else None
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        return None
    return float(value)


def _regression_check(
    name: str,
    slice_name: str,
    current: Mapping[str, Any],
    previous: Mapping[str, Any],
    allowed: float,
    since: str,
) -> dict[str, Any]:
    now, before = _accuracy(current, slice_name), _accuracy(previous, slice_name)
    check = {"name": name, "threshold": allowed, "op": "<=", "skipped": False}
    if before is None:
        return {
            **check,
            "value": None,
            "passed": True,
            "skipped": True,
            "detail": f"skipped: slice '{slice_name}' was not evaluated in {since}",
        }
    if now is None:
        return {
            **check,
            "value": None,
            "passed": False,
            "detail": f"slice '{slice_name}' is missing now but was evaluated in {since}",
        }
    drop = before - now
    ok = drop <= allowed + _EPS
    verb = "dropped" if drop > _EPS else "did not drop"
    detail = (
        f"accuracy on '{slice_name}' {verb}: {before:.4f} in {since}, {now:.4f} now "
        f"(drop {drop:+.4f}, allowed <= {allowed:g})"
    )
    return {**check, "value": drop, "passed": ok, "detail": detail}


def _check_drop(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0.0 <= value <= 1.0:
        raise ValidationError(f"max_accuracy_drop must be a number within [0, 1], got {value!r}")
    return float(value)


def regression_checks(
    current: Any,
    previous: Mapping[str, Any] | None,
    *,
    max_accuracy_drop: float = MAX_ACCURACY_DROP,
    critical_categories: Sequence[str] | None = None,
    previous_label: str = "the last run",
) -> list[dict[str, Any]]:
    """Compare an evaluation with the last recorded one of the same model and golden set.

    Args:
        current: This run's ``EvalResult`` (or its ``to_dict()``).
        previous: The metrics recorded for the last run (an ``EvalResult.to_dict()``), or
            None when this model version has never been evaluated on this golden set.
        max_accuracy_drop: Largest allowed drop of overall accuracy (inclusive).
        critical_categories: Categories whose accuracy may not drop at all; default: the
            ``critical_categories`` recorded in ``current``.
        previous_label: How the details name the earlier run (e.g. its run id).

    Returns:
        New check dicts, each with ``value`` = previous minus current accuracy (positive is
        worse). Without a previous run one skipped check says so.

    Raises:
        ValidationError: ``max_accuracy_drop`` is not a number within [0, 1].
    """
    _check_drop(max_accuracy_drop)
    now = _as_dict(current)
    if previous is None:
        return [
            {
                "name": "regression:accuracy",
                "value": None,
                "threshold": float(max_accuracy_drop),
                "op": "<=",
                "passed": True,
                "skipped": True,
                "detail": "skipped: no earlier run of this model version on this golden-set version",
            }
        ]
    categories = list(
        critical_categories if critical_categories is not None else now.get("critical_categories") or []
    )
    checks = [
        _regression_check(
            "regression:accuracy", "overall", now, previous, float(max_accuracy_drop), previous_label
        ),
        _regression_check("regression:critical", "critical", now, previous, 0.0, previous_label),
    ]
    for category in sorted(categories):
        checks.append(
            _regression_check(
                f"regression:category:{category}", f"category:{category}", now, previous, 0.0, previous_label
            )
        )
    return checks


def _describe(check: Mapping[str, Any]) -> str:
    return f"{check['name']}: {check['detail']}"


def with_regression(
    decision: GateDecision, checks: Sequence[Mapping[str, Any]], max_accuracy_drop: float
) -> GateDecision:
    """The gate's decision extended by regression checks (a new object; inputs untouched).

    The verdict fails when any regression check fails; each failed one adds a reason.
    """
    added = [dict(c) for c in checks]
    return replace(
        decision,
        passed=decision.passed and all(c["passed"] for c in added),
        checks=[dict(c) for c in decision.checks] + added,
        reasons=list(decision.reasons) + [_describe(c) for c in added if not c["passed"]],
        thresholds={**decision.thresholds, "max_accuracy_drop": float(max_accuracy_drop)},
    )


def as_champion_decision(decision: GateDecision) -> GateDecision:
    """Relabel the gate's "no champion yet" comparison for the champion's own validation.

    The gate compares a challenger with the champion; validating the champion itself there
    is nothing to compare with, and "no champion yet" would be false. The skipped check
    stays (the paired test did not run) with the true reason.
    """
    checks = []
    for c in decision.checks:
        c = dict(c)
        if c.get("skipped") and c["name"] == "paired:overall" and NO_CHAMPION in str(c.get("detail")):
            c["detail"] = "skipped: this model is the champion (nothing to compare it with)"
        checks.append(c)
    reasons = [r for r in decision.reasons if r != NO_CHAMPION]
    return replace(decision, checks=checks, reasons=reasons, champion_version=None)


# --------------------------------------------------------------------------- database


def last_validation_run(
    conn: Any, version_id: str, golden_version: str, exclude_golden_run_id: str | None = None
) -> dict[str, Any] | None:
    """The latest recorded golden run of a model version on a golden-set version, or None.

    ``exclude_golden_run_id`` leaves out the current run's own row, so a re-run of the same
    Airflow run compares with the run before it, not with itself.
    """
    with transaction(conn) as cur:
        cur.execute(
            """SELECT golden_run_id, dag_id, run_id, verdict, metrics, created_at
               FROM ml.golden_runs
               WHERE version_id = %s AND golden_version = %s AND golden_run_id IS DISTINCT FROM %s
               ORDER BY created_at DESC, golden_run_id DESC
               LIMIT 1""",
            (version_id, golden_version, exclude_golden_run_id),
        )
        row = cur.fetchone()
    if row is None:
        return None
    keys = ("golden_run_id", "dag_id", "run_id", "verdict", "metrics", "created_at")
    return dict(zip(keys, row, strict=True))


def record_validation_run(
    conn: Any,
    alias: str,
    spec: Mapping[str, Any],
    result: Any,
    decision: Any,
    report_uri: str,
    run: Any,
    *,
    golden_version: str | None = None,
) -> str:
    """UPSERT the validation of one deployed model into ``ml.golden_runs``.

    Args:
        conn: psycopg connection to the feedback DB.
        alias: ``champion`` or ``challenger`` (stored in ``metrics["alias"]``; the table has
            no alias column and the alias can move, so the row says what it was that night).
        spec: The model spec (``version_id`` is read).
        result: The ``EvalResult`` (or its ``to_dict()``), stored as ``metrics``.
        decision: The ``GateDecision`` (or its ``to_dict()``) with the regression checks.
        report_uri: Where ``report.json`` was staged.
        run: The run (``RunContext`` or a dict with ``dag_id`` and ``run_id``).
        golden_version: Content version of the golden set; default: the current file's.

    Returns:
        The ``golden_run_id``. Re-running the same run updates the same row.
    """
    from feedbackloop.golden import golden_version as current_golden_version

    _check_alias(alias)
    version_id = spec.get("version_id")
    if not (isinstance(version_id, str) and version_id):
        raise ValidationError(f"spec must have a version_id, got {version_id!r}")
    data = _run_dict(run)
    metrics = {**_as_dict(result), "alias": alias}
    dec = _as_dict(decision)
    run_key = golden_run_id(data, version_id)
    with transaction(conn) as cur:
        cur.execute(
            """INSERT INTO ml.golden_runs
                   (golden_run_id, version_id, dag_id, run_id, golden_version, verdict,
                    reasons, checks, metrics, report_uri)
               VALUES (%s, %s, %s, %s, %s, %s, %s::jsonb, %s::jsonb, %s::jsonb, %s)
               ON CONFLICT (golden_run_id) DO UPDATE SET
                   golden_version = EXCLUDED.golden_version, verdict = EXCLUDED.verdict,
                   reasons = EXCLUDED.reasons, checks = EXCLUDED.checks,
                   metrics = EXCLUDED.metrics, report_uri = EXCLUDED.report_uri""",
            (
                run_key,
                version_id,
                data["dag_id"],
                data["run_id"],
                golden_version or current_golden_version(),
                "pass" if dec["passed"] else "fail",
                json.dumps(list(dec["reasons"]), sort_keys=True),
                json.dumps([dict(c) for c in dec["checks"]], sort_keys=True),
                json.dumps(metrics, sort_keys=True, allow_nan=False),
                report_uri,
            ),
        )
    return run_key


# --------------------------------------------------------------------------- orchestration


def _put_json(staging: Any, key: str, payload: Any) -> str:
    data = json.dumps(payload, sort_keys=True, indent=2, ensure_ascii=False, allow_nan=False).encode() + b"\n"
    return staging.put_bytes(key, data)


def _compact(check: Mapping[str, Any]) -> dict[str, Any]:
    return {k: check.get(k) for k in ("name", "value", "op", "threshold", "detail")}


def _champion_evaluation(
    conn: Any, staging: Any, run: Any, openai_client_factory: Callable[[], Any] | None
) -> tuple[dict[str, Any] | None, str | None]:
    """The champion's evaluation for the challenger's paired test: the champion task's
    staged one when it is of the current champion, else evaluated now."""
    from feedbackloop import registry
    from feedbackloop.pipeline import evaluate_spec, needs_openai
    from feedbackloop.staging import read_json

    champion = registry.get_alias(conn, "champion")
    if champion is None:
        return None, None
    key = run.key(f"champion/{EVAL}")
    if staging.exists(key):
        staged = read_json(staging, key)
        if staged.get("model_version") == champion["version_id"]:
            return staged, champion["version_id"]
    spec = dict(champion["spec"])
    client = openai_client_factory() if needs_openai(spec) and openai_client_factory else None
    evaluation = evaluate_spec(staging, spec, client)
    _put_json(staging, run.key(f"challenger/{CHAMPION_EVAL}"), evaluation)
    return evaluation, champion["version_id"]


def validate_alias(
    conn: Any,
    staging: Any,
    run: Any,
    alias: str,
    thresholds: GateThresholds | Mapping[str, Any] | None = None,
    *,
    max_accuracy_drop: float = MAX_ACCURACY_DROP,
    openai_client_factory: Callable[[], Any] | None = None,
    render_pngs: bool = True,
) -> dict[str, Any]:
    """Evaluate the model behind ``alias``, gate it, look for a regression, record and stage.

    Args:
        conn: psycopg connection to the feedback DB (registry and ``ml.golden_runs``).
        staging: Where reports go (``Staging``); also holds local model artifacts.
        run: The run's :class:`feedbackloop.pipeline.RunContext`.
        alias: ``champion`` or ``challenger``.
        thresholds: The gate's value thresholds (defaults: the brief's).
        max_accuracy_drop: Allowed drop of overall accuracy against the last run.
        openai_client_factory: Builds an OpenAI-compatible client; called only when the
            model needs one.
        render_pngs: Also stage the report's plots as PNG.

    Returns:
        A JSON-safe summary (the task's XCom): ``status`` is ``"validated"`` or
        ``"no_model"`` (then ``reason`` says e.g. "no champion yet"); a validated one has
        ``passed``, ``below_thresholds``, ``regressed``, ``failed_checks``, the headline
        metrics, the previous run's accuracy and the staged URIs.

    Raises:
        ValidationError: Unknown alias or bad ``max_accuracy_drop``.
        feedbackloop.gate.GateError: Bad thresholds.
    """
    from feedbackloop import registry
    from feedbackloop.gate import gate
    from feedbackloop.golden import golden_version
    from feedbackloop.pipeline import evaluate_spec, needs_openai
    from feedbackloop.report import render_report_html, render_report_json

    _check_alias(alias)
    limits = (
        thresholds if isinstance(thresholds, GateThresholds) else GateThresholds.from_dict(thresholds or {})
    )
    _check_drop(max_accuracy_drop)
    gv = golden_version()
    base = {"alias": alias, "golden_version": gv, **_run_dict(run)}

    deployment = registry.get_alias(conn, alias)
    if deployment is None:
        summary = {**base, "status": "no_model", "reason": NO_MODEL[alias], "passed": None}
        summary["summary_uri"] = _put_json(staging, run.key(f"{alias}/{SUMMARY}"), summary)
        log.info("golden-set validation of the %s: %s", alias, NO_MODEL[alias])
        return summary

    spec = dict(deployment["spec"])
    version = spec["version_id"]
    client = openai_client_factory() if needs_openai(spec) and openai_client_factory else None
    evaluation = evaluate_spec(staging, spec, client)
    eval_uri = _put_json(staging, run.key(f"{alias}/{EVAL}"), evaluation)

    champion_eval, champion_version = (None, None)
    if alias == "challenger":
        champion_eval, champion_version = _champion_evaluation(conn, staging, run, openai_client_factory)
    decision = gate(evaluation, limits, champion=champion_eval, champion_version=champion_version)
    if alias == "champion":
        decision = as_champion_decision(decision)
    below = not decision.passed

    row_id = golden_run_id(run, version)
    previous = last_validation_run(conn, version, gv, exclude_golden_run_id=row_id)
    label = f"run {previous['run_id']} of {previous['dag_id']}" if previous else "the last run"
    reg = regression_checks(
        evaluation,
        previous["metrics"] if previous else None,
        max_accuracy_drop=max_accuracy_drop,
        previous_label=label,
    )
    decision = with_regression(decision, reg, max_accuracy_drop)
    regressed = any(not c["passed"] for c in reg)

    context = {
        **_run_dict(run),
        "alias": alias,
        "version_id": version,
        "backend": spec.get("backend"),
        "golden_version": gv,
        "golden_emails": evaluation["n_emails"],
        "compared_with": previous["golden_run_id"] if previous else "no earlier run",
    }
    report_uri = staging.put_bytes(
        run.key(f"{alias}/{REPORT_JSON}"), render_report_json(evaluation, decision, context, champion_eval)
    )
    html_uri = staging.put_bytes(
        run.key(f"{alias}/{REPORT_HTML}"),
        render_report_html(evaluation, decision, context, champion_eval).encode("utf-8"),
    )
    png_uris: dict[str, str] = {}
    if render_pngs:
        from feedbackloop.report_png import render_report_pngs

        for name, data in sorted(render_report_pngs(evaluation, decision, champion_eval).items()):
            png_uris[name] = staging.put_bytes(run.key(f"{alias}/{name}"), data)

    record_validation_run(conn, alias, spec, evaluation, decision, report_uri, run, golden_version=gv)
    previous_accuracy = _accuracy(previous["metrics"], "overall") if previous else None
    summary = {
        **base,
        "status": "validated",
        "version_id": version,
        "backend": spec.get("backend"),
        "golden_run_id": row_id,
        "passed": decision.passed,
        "below_thresholds": below,
        "regressed": regressed,
        "failed_checks": [_compact(c) for c in decision.failed_checks],
        "reasons": list(decision.reasons),
        "accuracy": evaluation["accuracy"],
        "critical_accuracy": evaluation["critical_accuracy"],
        "ece": evaluation["ece"],
        "p95_latency_ms": evaluation["latency_ms"]["p95"],
        "previous_golden_run_id": previous["golden_run_id"] if previous else None,
        "previous_accuracy": previous_accuracy,
        "champion_version": champion_version,
        "eval_uri": eval_uri,
        "report_uri": report_uri,
        "report_html_uri": html_uri,
        "png_uris": png_uris,
    }
    summary["summary_uri"] = _put_json(staging, run.key(f"{alias}/{SUMMARY}"), summary)
    log.info(
        "golden-set validation of the %s %s: %s (accuracy %.4f%s)",
        alias,
        version,
        "passed" if decision.passed else "FAILED: " + "; ".join(decision.reasons),
        evaluation["accuracy"],
        f", previous {previous_accuracy:.4f}" if previous_accuracy is not None else ", no earlier run",
    )
    return summary
