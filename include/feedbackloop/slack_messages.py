"""Slack messages as pure functions returning Block Kit payloads.

Every payload carries a plain ``text`` fallback (shown in notifications and to screen
readers) and respects Block Kit's limits: header text <= 150 characters, section text
<= 3000, at most 10 fields of <= 2000 characters, at most 50 blocks.
"""

from __future__ import annotations

from typing import Any

HEADER_MAX = 150
SECTION_MAX = 3000
FIELD_MAX = 2000
FIELDS_MAX = 10


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _pct(value: Any) -> str:
    return "n/a" if value is None else f"{100 * float(value):.1f}%"


def _escape(text: str) -> str:
    # Slack mrkdwn control characters; user text must not turn into mentions or links.
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def retraining_summary(
    dag_id: str,
    run_id: str,
    outcome: str,
    stages: dict[str, Any],
    run_url: str | None = None,
) -> dict[str, Any]:
    """Summary of one ``feedback_retraining`` run.

    Args:
        dag_id: the DAG.
        run_id: the run.
        outcome: ``deployed`` / ``gate_failed`` / ``failed`` / ``dry_run``.
        stages: XCom summaries of the stages that ran (``extract``, ``validate``, ``gate``,
            ``deploy``...), missing ones are skipped.
        run_url: link to the run in the Airflow UI.
    """
    icon = {"deployed": "✅", "gate_failed": "⛔", "failed": "❌", "dry_run": "🧪"}.get(outcome, "ℹ️")
    title = {
        "deployed": "Challenger deployed as canary",
        "gate_failed": "Challenger failed the golden-set gate",
        "failed": "Retraining run failed",
        "dry_run": "Retraining dry run finished",
    }.get(outcome, outcome)
    extract = stages.get("extract") or {}
    validate = stages.get("validate") or {}
    gate = stages.get("gate") or {}
    deploy = stages.get("deploy") or {}
    fields: list[str] = []
    if extract:
        fields.append(f"*Feedback rows*\n{extract.get('rows', 'n/a')}")
    if validate:
        fields.append(
            f"*Kept / quarantined*\n{validate.get('rows_valid', 'n/a')} / {validate.get('rows_quarantined', 'n/a')}"
        )
    if gate:
        fields.append(f"*Golden accuracy*\n{_pct(gate.get('accuracy'))} (≥ 95%)")
        fields.append(f"*Critical accuracy*\n{_pct(gate.get('critical_accuracy'))} (≥ 98%)")
        fields.append(f"*Model version*\n`{_escape(str(gate.get('version_id', 'n/a')))}`")
    if deploy:
        share = deploy.get("traffic_share")
        fields.append(f"*Deployment*\n{deploy.get('alias')} at {_pct(share)} of traffic")
    reasons = gate.get("reasons") or stages.get("error_reasons") or []
    text = f"{icon} {title}: {dag_id} / {run_id}"
    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": {"type": "plain_text", "text": _clip(f"{icon} {title}", HEADER_MAX), "emoji": True}},
        {
            "type": "section",
            "text": {"type": "mrkdwn", "text": _clip(f"*{_escape(dag_id)}* run `{_escape(run_id)}`", SECTION_MAX)},
        },
    ]
    if fields:
        blocks.append(
            {
                "type": "section",
                "fields": [{"type": "mrkdwn", "text": _clip(f, FIELD_MAX)} for f in fields[:FIELDS_MAX]],
            }
        )
    if reasons:
        body = "\n".join(f"• {_escape(str(r))}" for r in reasons)
        blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": _clip(f"*Why*\n{body}", SECTION_MAX)}})
    if gate.get("report_html_uri"):
        blocks.append(
            {
                "type": "context",
                "elements": [{"type": "mrkdwn", "text": _clip(f"Report: {_escape(gate['report_html_uri'])}", SECTION_MAX)}],
            }
        )
    if run_url:
        blocks.append(
            {
                "type": "actions",
                "elements": [
                    {"type": "button", "text": {"type": "plain_text", "text": "Open run in Airflow"}, "url": run_url}
                ],
            }
        )
    return {"text": _clip(text, SECTION_MAX), "blocks": blocks}


def task_failure(dag_id: str, run_id: str, task_id: str, error: str, log_url: str | None = None) -> dict[str, Any]:
    """Failure notification for one failed run (sent once per run, not per retry)."""
    text = f"❌ {dag_id}.{task_id} failed in run {run_id}: {error}"
    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": {"type": "plain_text", "text": _clip(f"❌ {dag_id} failed", HEADER_MAX), "emoji": True}},
        {
            "type": "section",
            "fields": [
                {"type": "mrkdwn", "text": _clip(f"*Task*\n`{_escape(task_id)}`", FIELD_MAX)},
                {"type": "mrkdwn", "text": _clip(f"*Run*\n`{_escape(run_id)}`", FIELD_MAX)},
            ],
        },
        {"type": "section", "text": {"type": "mrkdwn", "text": _clip(f"*Error*\n```{_escape(error)}```", SECTION_MAX)}},
    ]
    if log_url:
        blocks.append(
            {
                "type": "actions",
                "elements": [{"type": "button", "text": {"type": "plain_text", "text": "Open log"}, "url": log_url}],
            }
        )
    return {"text": _clip(text, SECTION_MAX), "blocks": blocks}
