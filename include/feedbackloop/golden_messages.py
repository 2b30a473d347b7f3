"""Slack alert of the nightly golden-set validation, as a pure Block Kit builder.

Input are the validation tasks' summaries (see
:func:`feedbackloop.golden_validation.validate_alias`), one per alias, each with a
``status``: ``validated`` (with ``passed``, ``below_thresholds``, ``regressed`` and the
failed checks), ``no_model`` (nothing deployed under the alias; not an alert) or
``missing`` (the validation task did not finish; an alert, since an unvalidated champion is
exactly what the nightly run exists to prevent).

The payload keeps within Block Kit's limits (header <= 150 characters, section text <= 3000,
fields <= 2000 each and at most 10, at most 50 blocks) and always carries a plain ``text``
fallback. Text that comes from data (versions, run ids, URIs, check details) is escaped so it
cannot become a mention or a link.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

HEADER_MAX = 150
SECTION_MAX = 3000
FIELD_MAX = 2000
FIELDS_MAX = 10
BLOCKS_MAX = 50
CHECK_LINES_MAX = 12
# 12 lines of this length leave room for the title and the "and N more" line in one section.
CHECK_LINE_MAX = 220


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _escape(text: Any) -> str:
    return str(text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _pct(value: Any) -> str:
    return "n/a" if value is None else f"{100 * float(value):.1f}%"


def needs_alert(outcome: Mapping[str, Any]) -> bool:
    """Whether one alias's outcome calls for an alert (failed verdict or unfinished task)."""
    status = outcome.get("status")
    if status == "missing":
        return True
    return status == "validated" and outcome.get("passed") is False


def problems(outcome: Mapping[str, Any]) -> list[str]:
    """Short names of what went wrong for one alias, e.g. ``["below thresholds", "regressed"]``."""
    if outcome.get("status") == "missing":
        return ["not validated"]
    found = []
    if outcome.get("below_thresholds"):
        found.append("below thresholds")
    if outcome.get("regressed"):
        found.append("regressed")
    if not found and outcome.get("passed") is False:
        found.append("failed")
    return found


def _check_line(check: Mapping[str, Any]) -> str:
    name = _escape(check.get("name", "?"))
    value = check.get("value")
    if check.get("name", "").startswith("regression:") or value is None:
        return f"• `{name}`: {_escape(check.get('detail', ''))}"
    shown = f"{value:.4f}" if isinstance(value, float) else _escape(value)
    threshold = check.get("threshold")
    limit = f"{threshold:g}" if isinstance(threshold, float) else _escape(threshold)
    return f"• `{name}` = {shown} (required {_escape(check.get('op', ''))} {limit})"


def _model_blocks(outcome: Mapping[str, Any]) -> list[dict[str, Any]]:
    alias = str(outcome.get("alias", "model"))
    if outcome.get("status") == "missing":
        text = (
            f"*{_escape(alias)}*: not validated. {_escape(outcome.get('reason', 'the task did not finish'))}"
        )
        return [{"type": "section", "text": {"type": "mrkdwn", "text": _clip(text, SECTION_MAX)}}]
    previous = outcome.get("previous_accuracy")
    accuracy = _pct(outcome.get("accuracy"))
    if previous is not None:
        accuracy = f"{_pct(previous)} → {accuracy}"
    latency = outcome.get("p95_latency_ms")
    ece = outcome.get("ece")
    fields = [
        f"*{_escape(alias.capitalize())}*\n`{_escape(outcome.get('version_id', 'n/a'))}`",
        f"*Problem*\n{', '.join(problems(outcome)) or 'none'}",
        f"*Accuracy*\n{accuracy}",
        f"*Critical accuracy*\n{_pct(outcome.get('critical_accuracy'))}",
        f"*Calibration error*\n{'n/a' if ece is None else format(float(ece), '.4f')}",
        f"*p95 latency*\n{'n/a' if latency is None else format(float(latency), '.1f') + ' ms'}",
    ]
    blocks: list[dict[str, Any]] = [
        {
            "type": "section",
            "fields": [{"type": "mrkdwn", "text": _clip(f, FIELD_MAX)} for f in fields[:FIELDS_MAX]],
        }
    ]
    checks = list(outcome.get("failed_checks") or [])
    if checks:
        lines = [_clip(_check_line(c), CHECK_LINE_MAX) for c in checks[:CHECK_LINES_MAX]]
        if len(checks) > CHECK_LINES_MAX:
            lines.append(f"… and {len(checks) - CHECK_LINES_MAX} more (see the report)")
        blocks.append(
            {
                "type": "section",
                "text": {
                    "type": "mrkdwn",
                    "text": _clip("*Failed checks*\n" + "\n".join(lines), SECTION_MAX),
                },
            }
        )
    links = []
    if outcome.get("report_html_uri"):
        links.append(f"Report: {_escape(outcome['report_html_uri'])}")
    if outcome.get("previous_golden_run_id"):
        links.append(f"Compared with: {_escape(outcome['previous_golden_run_id'])}")
    pngs = outcome.get("png_uris") or {}
    if pngs:
        links.append("Plots (PNG): " + ", ".join(_escape(pngs[k]) for k in sorted(pngs)))
    if links:
        blocks.append(
            {
                "type": "context",
                "elements": [{"type": "mrkdwn", "text": _clip(t, SECTION_MAX)} for t in links[:10]],
            }
        )
    return blocks


def golden_validation_alert(
    dag_id: str, run_id: str, outcomes: Sequence[Mapping[str, Any]], run_url: str | None = None
) -> dict[str, Any] | None:
    """Block Kit payload for a nightly validation that found a problem, or None if it found none.

    Args:
        dag_id: The validation DAG.
        run_id: The run.
        outcomes: One summary per alias (``champion`` first), as the validation tasks return them.
        run_url: Link to the run in the Airflow UI, shown as a button.

    Returns:
        ``{"text": ..., "blocks": [...]}``, or None when no outcome needs an alert.
    """
    alerting = [o for o in outcomes if needs_alert(o)]
    if not alerting:
        return None
    summary = "; ".join(f"{o.get('alias', 'model')} {' and '.join(problems(o))}" for o in alerting)
    icon = "📉" if all(o.get("regressed") and not o.get("below_thresholds") for o in alerting) else "⛔"
    title = f"{icon} Golden-set validation: {summary}"
    golden = next((o.get("golden_version") for o in outcomes if o.get("golden_version")), None)
    intro = f"*{_escape(dag_id)}* run `{_escape(run_id)}`"
    if golden:
        intro += f" on golden set `{_escape(golden)}`"
    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": {"type": "plain_text", "text": _clip(title, HEADER_MAX), "emoji": True}},
        {"type": "section", "text": {"type": "mrkdwn", "text": _clip(intro, SECTION_MAX)}},
    ]
    for outcome in alerting:
        blocks.append({"type": "divider"})
        blocks.extend(_model_blocks(outcome))
    quiet = []
    for o in outcomes:
        if needs_alert(o):
            continue
        if o.get("status") == "no_model":
            quiet.append(f"{_escape(o.get('alias', 'model'))}: {_escape(o.get('reason', 'no model'))}")
        elif o.get("status") == "validated":
            quiet.append(
                f"{_escape(o.get('alias'))} `{_escape(o.get('version_id'))}`: passed "
                f"(accuracy {_pct(o.get('accuracy'))})"
            )
    if quiet:
        blocks.append(
            {
                "type": "context",
                "elements": [{"type": "mrkdwn", "text": _clip(" · ".join(quiet), SECTION_MAX)}],
            }
        )
    if run_url:
        blocks.append(
            {
                "type": "actions",
                "elements": [
                    {
                        "type": "button",
                        "text": {"type": "plain_text", "text": "Open run in Airflow"},
                        "url": run_url,
                    }
                ],
            }
        )
    text = f"{title} ({dag_id} / {run_id})"
    return {"text": _clip(text, SECTION_MAX), "blocks": blocks[:BLOCKS_MAX]}
