"""Slack message for the daily A/B experiment decision, as a pure function.

Input is the JSON summary of :class:`feedbackloop.experiment.EvaluationResult`
(``to_summary()``), so the message can be rebuilt from XCom or from the decision row. The
payload is Block Kit with a plain ``text`` fallback that carries the same numbers (what
notifications and screen readers show), within Block Kit's limits (header <= 150
characters, section text <= 3000, at most 10 fields of <= 2000 characters).
"""

from __future__ import annotations

from typing import Any

from feedbackloop.slack_messages import FIELD_MAX, FIELDS_MAX, HEADER_MAX, SECTION_MAX

_ICONS = {"promote": "🚀", "ramp": "📈", "continue": "⏳", "rollback": "↩️", "halt": "🛑", "none": "ℹ️"}


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _escape(text: Any) -> str:
    # Override reasons are typed by people: they must not turn into mentions or links.
    return str(text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _pct(value: Any, digits: int = 1) -> str:
    return "n/a" if value is None else f"{100 * float(value):.{digits}f}%"


def _share(value: Any) -> str:
    return "n/a" if value is None else f"{100 * float(value):g}%"


def _p(value: Any) -> str:
    return "n/a" if value is None else f"{float(value):.2g}"


def _title(summary: dict[str, Any]) -> str:
    outcome = summary.get("outcome")
    srm = (summary.get("statistics") or {}).get("srm") or {}
    titles = {
        "promote": "Challenger promoted to champion",
        "ramp": f"Challenger ramped to {_share(summary.get('to_share'))}",
        "continue": f"Experiment continues at {_share(summary.get('from_share'))}",
        "rollback": "Challenger rolled back",
        "halt": "Experiment halted: sample-ratio mismatch" if srm.get("mismatch") else "Experiment halted",
        "none": "No A/B experiment running",
    }
    return titles.get(str(outcome), str(outcome))


def _metric_lines(stats: dict[str, Any]) -> dict[str, str]:
    lines: dict[str, str] = {}
    champ, chall = stats.get("champion") or {}, stats.get("challenger") or {}
    if champ or chall:
        lines["Samples (champion / challenger)"] = (
            f"{champ.get('predictions', 0)} / {chall.get('predictions', 0)} predictions\n"
            f"{champ.get('users', 0)} / {chall.get('users', 0)} users"
        )
    acc = stats.get("accuracy")
    if acc:
        boundary = stats.get("efficacy_boundary")
        bound = f" (promote at z ≥ {boundary:.2f})" if boundary is not None else ""
        lines["Accuracy (champion / challenger)"] = (
            f"{_pct(acc.get('champion_rate'))} / {_pct(acc.get('challenger_rate'))} "
            f"({100 * (acc.get('difference') or 0):+.2f} pts)\n"
            f"z={acc.get('z', 0):+.2f}{bound}, {acc.get('method')} p={_p(acc.get('p_value'))}"
        )
    lat = stats.get("latency")
    if lat:
        lines["Latency p95 (champion / challenger)"] = (
            f"{lat['champion']['p95_ms']:.0f} / {lat['challenger']['p95_ms']:.0f} ms "
            f"({lat.get('p95_difference_ms', 0):+.0f} ms)\n"
            f"Welch on log latency p={_p(lat.get('p_value'))}"
        )
    eng = stats.get("engagement")
    if eng:
        lines["Engagement (champion / challenger)"] = (
            f"{_pct(eng.get('champion_mean'))} / {_pct(eng.get('challenger_mean'))}\n"
            f"P(challenger better)={eng.get('prob_challenger_better', 0):.3f}, "
            f"expected loss {100 * (eng.get('expected_loss_challenger') or 0):.2f} pts"
        )
    srm = stats.get("srm")
    if srm:
        lines["Sample ratio"] = (
            f"{_pct(srm.get('observed_share'), 2)} of users on the challenger "
            f"(expected {_share(srm.get('expected_share'))})\nchi-square p={_p(srm.get('p_value'))}"
        )
    return lines


def experiment_decision_message(summary: dict[str, Any], run_url: str | None = None) -> dict[str, Any]:
    """Block Kit payload announcing one day's experiment decision with its numbers.

    Args:
        summary: ``EvaluationResult.to_summary()``.
        run_url: link to the Airflow run, shown as a button.

    Returns:
        ``{"text": fallback, "blocks": [...]}`` for ``SlackWebhookHook.send``.
    """
    outcome = str(summary.get("outcome"))
    icon = _ICONS.get(outcome, "ℹ️")
    title = _title(summary)
    stats = summary.get("statistics") or {}
    experiment = summary.get("experiment_id") or "no experiment"
    day = summary.get("decision_date", "")
    source = summary.get("source", "auto")
    who = f"manual override by {summary.get('decided_by')}" if source == "manual" else "automatic"
    reason = str(summary.get("reason") or "")
    metrics = _metric_lines(stats)

    fallback = [f"{icon} {title}: {experiment} on {day} ({who}): {reason}"]
    for name, value in metrics.items():
        fallback.append(f"{name}: {' '.join(value.split())}")
    text = _clip(" | ".join(fallback), SECTION_MAX)

    header = f"{icon} {title}"
    intro = f"*{_escape(experiment)}* · {_escape(day)} · {_escape(who)}"
    shares = ""
    if summary.get("from_share") is not None and outcome in ("ramp", "promote", "rollback"):
        shares = (
            f"\nChallenger share: {_share(summary.get('from_share'))} → {_share(summary.get('to_share'))}"
        )
    elif stats.get("look"):
        shares = f"\nLook {stats.get('look')} at {_share(stats.get('share'))}, {stats.get('days_live', 0):.1f} days live"
    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": {"type": "plain_text", "text": _clip(header, HEADER_MAX), "emoji": True}},
        {
            "type": "section",
            "text": {
                "type": "mrkdwn",
                "text": _clip(f"{intro}\n*Why:* {_escape(reason)}{shares}", SECTION_MAX),
            },
        },
    ]
    if metrics:
        fields = [
            {"type": "mrkdwn", "text": _clip(f"*{name}*\n{value}", FIELD_MAX)}
            for name, value in metrics.items()
        ]
        blocks.append({"type": "section", "fields": fields[:FIELDS_MAX]})
    other = [str(r) for r in summary.get("reasons") or []]
    if other:
        body = "\n".join(f"• {_escape(r)}" for r in other)
        blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": _clip(body, SECTION_MAX)}})
    if summary.get("experiment_id") and not summary.get("recorded", True):
        blocks.append(
            {
                "type": "context",
                "elements": [
                    {"type": "mrkdwn", "text": "Decided earlier today; this run did not apply it again."}
                ],
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
    return {"text": text, "blocks": blocks}
