"""Slack Block Kit messages for monitoring incidents, and a Block Kit payload validator.

:func:`alert_opened` / :func:`alert_resolved` turn an ``ml.alerts`` incident (a dict of its
columns, see :mod:`feedbackloop.alerts`) into an incoming-webhook payload: a plain ``text``
fallback (notifications, screen readers) and blocks with the metric, the alert line, the
baseline, the window, the sample size and buttons to the Airflow run and the dashboard.
User-controlled text is escaped for mrkdwn and every text is clipped to Block Kit's limits.

:func:`validate_blocks` checks a payload against the Block Kit rules below, taken from the
Slack message payload JSON Schema (``message_payload.schema.json``: Slack's chat.postMessage
parameters with the Block Kit block definitions) for the block types this project sends:

* payload: ``text`` (string, 1..40000) and/or ``blocks`` (1..50 blocks); this project also
  requires the ``text`` fallback whenever there are blocks, as Slack recommends.
* text objects: ``plain_text`` (keys type, text, emoji) or ``mrkdwn`` (type, text, verbatim),
  text 1..3000 characters.
* ``header``: a plain_text object of at most 150 characters; optional ``level`` 1..4.
* ``section``: ``text`` and/or ``fields`` (1..10 text objects of at most 2000 characters);
  optional ``accessory`` (button or image), ``expand`` (boolean).
* ``context``: 1..10 elements, each a text object or an image element.
* ``actions``: 1..25 elements; buttons have plain_text of at most 75 characters, an optional
  ``url`` (an absolute URI of at most 3000 characters; this project requires http(s)),
  ``value`` 1..2000, ``action_id`` 1..255, ``style`` primary or danger.
* ``divider``; ``markdown`` (text 1..12000, 12000 characters across all markdown blocks);
  ``image`` (``image_url`` or ``slack_file``, ``alt_text``).
* ``block_id`` 1..255 characters, unique within the message; ``action_id`` unique too.
* No property outside the ones listed for its object (the schema's additionalProperties: false).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any
from urllib.parse import urlparse

HEADER_MAX = 150
TEXT_MAX = 3000
FIELD_MAX = 2000
FIELDS_MAX = 10
BLOCKS_MAX = 50
PAYLOAD_TEXT_MAX = 40000
BUTTON_TEXT_MAX = 75
URL_MAX = 3000
CONTEXT_ELEMENTS_MAX = 10
ACTIONS_ELEMENTS_MAX = 25
MARKDOWN_MAX = 12000
ID_MAX = 255

TITLES = {
    "accuracy_drop": "Accuracy regression",
    "latency_p95": "p95 latency above the SLO",
    "calibration_error": "Confidence miscalibrated",
    "category_imbalance": "Category mix shifted",
}


# --------------------------------------------------------------------------- formatting


def clip(text: str, limit: int) -> str:
    """``text`` cut to at most ``limit`` characters, marked with an ellipsis when cut."""
    if limit < 1:
        raise ValueError(f"limit must be >= 1, got {limit}")
    return text if len(text) <= limit else text[: limit - 1] + "…"


def escape(text: str) -> str:
    """Escape Slack mrkdwn control characters so data cannot become mentions or links."""
    return str(text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _fmt_value(metric: str, value: Any) -> str:
    if value is None:
        return "n/a"
    v = float(value)
    if metric == "p95_latency_ms":
        return f"{v:.0f} ms"
    if metric in ("accuracy", "ece", "share"):
        return f"{100 * v:.1f}%"
    return f"{v:.4g}"


def _fmt_line(detector: str, metric: str, threshold: Any) -> str:
    if threshold is None:
        return "n/a"
    if detector == "accuracy_drop":
        return f"below {_fmt_value(metric, threshold)}"
    if detector == "category_imbalance":
        return f"effect size h ≥ {float(threshold):.2f}"
    return f"above {_fmt_value(metric, threshold)}"


def _fmt_time(value: Any) -> str:
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    if not isinstance(value, datetime):
        return "n/a"
    return value.strftime("%Y-%m-%d %H:%M UTC") if value.utcoffset() is not None else value.isoformat()


def _fmt_duration(start: Any, end: Any) -> str:
    if isinstance(start, str):
        start = datetime.fromisoformat(start)
    if isinstance(end, str):
        end = datetime.fromisoformat(end)
    if not (isinstance(start, datetime) and isinstance(end, datetime)):
        return "n/a"
    minutes = int((end - start).total_seconds() // 60)
    days, rest = divmod(minutes, 24 * 60)
    hours, mins = divmod(rest, 60)
    parts = [f"{n} {unit}" for n, unit in ((days, "d"), (hours, "h"), (mins, "min")) if n]
    return " ".join(parts) if parts else "0 min"


def _window(incident: Mapping[str, Any]) -> str:
    start, end = incident.get("window_start"), incident.get("window_end")
    return f"{_fmt_time(start)} → {_fmt_time(end)} ({_fmt_duration(start, end)})"


def _is_http_url(url: Any) -> bool:
    if not isinstance(url, str) or not url or len(url) > URL_MAX:
        return False
    parsed = urlparse(url)
    return parsed.scheme in ("http", "https") and bool(parsed.netloc) and not any(c.isspace() for c in url)


def _title(incident: Mapping[str, Any]) -> str:
    title = TITLES.get(str(incident.get("detector")), str(incident.get("detector")))
    key = str(incident.get("key") or "all")
    return title if key == "all" else f"{title}: {key}"


def _links(run_url: str | None, dashboard_url: str | None, alert_id: Any) -> list[dict[str, Any]]:
    buttons = []
    if _is_http_url(run_url):
        buttons.append(
            {
                "type": "button",
                "text": {"type": "plain_text", "text": "Open Airflow run"},
                "url": run_url,
                "action_id": f"alert-{alert_id}-run",
            }
        )
    if _is_http_url(dashboard_url):
        buttons.append(
            {
                "type": "button",
                "text": {"type": "plain_text", "text": "Open dashboard"},
                "url": dashboard_url,
                "action_id": f"alert-{alert_id}-dashboard",
            }
        )
    return buttons


def _field(label: str, value: str) -> dict[str, str]:
    return {"type": "mrkdwn", "text": clip(f"*{label}*\n{value}", FIELD_MAX)}


# --------------------------------------------------------------------------- messages


def alert_opened(
    incident: Mapping[str, Any], run_url: str | None = None, dashboard_url: str | None = None
) -> dict[str, Any]:
    """The one message sent when an incident opens.

    Args:
        incident: the ``ml.alerts`` row (detector, key, metric, value, threshold, baseline,
            window_start, window_end, opened_at, summary, evidence, alert_id).
        run_url: link to the Airflow run that opened it (omitted unless http(s)).
        dashboard_url: link to the model-quality dashboard (omitted unless http(s)).
    """
    detector = str(incident.get("detector"))
    metric = str(incident.get("metric"))
    title = _title(incident)
    evidence = incident.get("evidence") or {}
    value = _fmt_value(metric, incident.get("value"))
    line = _fmt_line(detector, metric, incident.get("threshold"))
    text = (
        f"🚨 {title}: {metric} {value} (alert {line}) over {_window(incident)}. "
        f"{incident.get('summary') or ''}"
    ).strip()
    fields = [
        _field("Metric", f"{escape(metric)} = {value}"),
        _field("Alert line", line),
        _field("Baseline", _fmt_value(metric, incident.get("baseline"))),
        _field("Window", _window(incident)),
        _field("Samples", str(evidence.get("n", "n/a"))),
        _field("p-value", _fmt_p(evidence.get("p_value"))),
        _field(
            "Incident",
            f"#{incident.get('alert_id')} `{escape(detector)}` / `{escape(str(incident.get('key')))}`",
        ),
        _field("Opened", _fmt_time(incident.get("opened_at"))),
    ]
    blocks: list[dict[str, Any]] = [
        {
            "type": "header",
            "text": {"type": "plain_text", "text": clip(f"🚨 {title}", HEADER_MAX), "emoji": True},
        },
        {
            "type": "section",
            "text": {"type": "mrkdwn", "text": clip(escape(str(incident.get("summary") or title)), TEXT_MAX)},
        },
        {"type": "section", "fields": fields[:FIELDS_MAX]},
        {
            "type": "context",
            "elements": [
                {
                    "type": "mrkdwn",
                    "text": "Repeats are suppressed while this incident is open; a resolution follows when the signal clears.",
                }
            ],
        },
    ]
    buttons = _links(run_url, dashboard_url, incident.get("alert_id"))
    if buttons:
        blocks.append({"type": "actions", "elements": buttons})
    return {"text": clip(text, TEXT_MAX), "blocks": blocks}


def alert_resolved(
    incident: Mapping[str, Any], run_url: str | None = None, dashboard_url: str | None = None
) -> dict[str, Any]:
    """The one message sent when an incident's signal clears.

    Args:
        incident: the resolved ``ml.alerts`` row (as for :func:`alert_opened`, plus
            ``resolved_at``, ``occurrences``, ``resolution_evidence``).
        run_url: link to the Airflow run that resolved it.
        dashboard_url: link to the model-quality dashboard.
    """
    detector = str(incident.get("detector"))
    metric = str(incident.get("metric"))
    title = _title(incident)
    resolution = incident.get("resolution_evidence") or {}
    now_value = _fmt_value(metric, resolution.get("value"))
    line = _fmt_line(detector, metric, incident.get("threshold"))
    duration = _fmt_duration(incident.get("opened_at"), incident.get("resolved_at"))
    text = f"✅ Resolved: {title} after {duration}; {metric} now {now_value} (alert {line})."
    detail = resolution.get("summary") or f"{metric} is back within its alert line."
    fields = [
        _field("Metric now", f"{escape(metric)} = {now_value}"),
        _field("Alert line", line),
        _field("When opened", _fmt_value(metric, incident.get("value"))),
        _field("Open for", duration),
        _field("Evaluations firing", str(incident.get("occurrences", "n/a"))),
        _field(
            "Window now",
            _window(
                {"window_start": resolution.get("window_start"), "window_end": resolution.get("window_end")}
            ),
        ),
        _field(
            "Incident",
            f"#{incident.get('alert_id')} `{escape(detector)}` / `{escape(str(incident.get('key')))}`",
        ),
        _field("Resolved", _fmt_time(incident.get("resolved_at"))),
    ]
    blocks: list[dict[str, Any]] = [
        {
            "type": "header",
            "text": {"type": "plain_text", "text": clip(f"✅ Resolved: {title}", HEADER_MAX), "emoji": True},
        },
        {"type": "section", "text": {"type": "mrkdwn", "text": clip(escape(str(detail)), TEXT_MAX)}},
        {"type": "section", "fields": fields[:FIELDS_MAX]},
    ]
    buttons = _links(run_url, dashboard_url, incident.get("alert_id"))
    if buttons:
        blocks.append({"type": "actions", "elements": buttons})
    return {"text": clip(text, TEXT_MAX), "blocks": blocks}


def _fmt_p(value: Any) -> str:
    return "n/a" if value is None else f"{float(value):.2g}"


def alert_message(
    kind: str, incident: Mapping[str, Any], run_url: str | None = None, dashboard_url: str | None = None
) -> dict[str, Any]:
    """:func:`alert_opened` for ``kind='open'``, :func:`alert_resolved` for ``'resolve'``."""
    if kind == "open":
        return alert_opened(incident, run_url, dashboard_url)
    if kind == "resolve":
        return alert_resolved(incident, run_url, dashboard_url)
    raise ValueError(f"kind must be 'open' or 'resolve', got {kind!r}")


# --------------------------------------------------------------------------- validation

_TEXT_KEYS = {"plain_text": {"type", "text", "emoji"}, "mrkdwn": {"type", "text", "verbatim"}}
_BLOCK_KEYS = {
    "header": {"type", "text", "block_id", "level"},
    "section": {"type", "text", "fields", "accessory", "block_id", "expand"},
    "context": {"type", "elements", "block_id"},
    "actions": {"type", "elements", "block_id"},
    "divider": {"type", "block_id"},
    "markdown": {"type", "text", "block_id"},
    "image": {"type", "image_url", "slack_file", "alt_text", "title", "block_id"},
}
_BUTTON_KEYS = {"type", "text", "action_id", "url", "value", "style", "confirm", "accessibility_label"}
_IMAGE_ELEMENT_KEYS = {"type", "alt_text", "image_url", "slack_file"}


class _Checker:
    def __init__(self) -> None:
        self.problems: list[str] = []
        self.block_ids: set[str] = set()
        self.action_ids: set[str] = set()
        self.markdown_chars = 0

    def add(self, where: str, problem: str) -> None:
        self.problems.append(f"{where}: {problem}")

    def keys(self, where: str, obj: Mapping[str, Any], allowed: set[str]) -> None:
        extra = sorted(set(obj) - allowed)
        if extra:
            self.add(where, f"unexpected propert{'y' if len(extra) == 1 else 'ies'} {', '.join(extra)}")

    def string(self, where: str, value: Any, low: int, high: int) -> bool:
        if not isinstance(value, str):
            self.add(where, f"must be a string, got {type(value).__name__}")
            return False
        if not low <= len(value) <= high:
            self.add(where, f"length {len(value)} outside {low}..{high}")
            return False
        return True

    def unique_id(self, where: str, value: Any, seen: set[str]) -> None:
        if self.string(where, value, 1, ID_MAX):
            if value in seen:
                self.add(where, f"duplicate id {value!r}")
            seen.add(value)

    def text_object(self, where: str, obj: Any, max_len: int = TEXT_MAX, plain_only: bool = False) -> None:
        if not isinstance(obj, Mapping):
            self.add(where, "must be a text object")
            return
        kind = obj.get("type")
        if kind not in _TEXT_KEYS or (plain_only and kind != "plain_text"):
            self.add(
                where, f"type must be {'plain_text' if plain_only else 'plain_text or mrkdwn'}, got {kind!r}"
            )
            return
        self.keys(where, obj, _TEXT_KEYS[kind])
        self.string(f"{where}.text", obj.get("text"), 1, min(max_len, TEXT_MAX))
        flag = "emoji" if kind == "plain_text" else "verbatim"
        if flag in obj and not isinstance(obj[flag], bool):
            self.add(f"{where}.{flag}", "must be a boolean")

    def button(self, where: str, obj: Mapping[str, Any]) -> None:
        self.keys(where, obj, _BUTTON_KEYS)
        self.text_object(f"{where}.text", obj.get("text"), BUTTON_TEXT_MAX, plain_only=True)
        if "url" in obj and not _is_http_url(obj["url"]):
            self.add(f"{where}.url", f"must be an absolute http(s) URL of at most {URL_MAX} characters")
        if "value" in obj:
            self.string(f"{where}.value", obj["value"], 1, 2000)
        if "action_id" in obj:
            self.unique_id(f"{where}.action_id", obj["action_id"], self.action_ids)
        if "style" in obj and obj["style"] not in ("primary", "danger"):
            self.add(f"{where}.style", "must be 'primary' or 'danger'")
        if "accessibility_label" in obj:
            self.string(f"{where}.accessibility_label", obj["accessibility_label"], 1, BUTTON_TEXT_MAX)

    def image_element(self, where: str, obj: Mapping[str, Any]) -> None:
        self.keys(where, obj, _IMAGE_ELEMENT_KEYS)
        self.string(f"{where}.alt_text", obj.get("alt_text"), 1, 10**9)
        if ("image_url" in obj) == ("slack_file" in obj):
            self.add(where, "needs exactly one of image_url and slack_file")
        if "image_url" in obj and not _is_http_url(obj["image_url"]):
            self.add(f"{where}.image_url", "must be an absolute http(s) URL")

    def block(self, where: str, block: Any) -> None:
        if not isinstance(block, Mapping):
            self.add(where, "must be an object")
            return
        kind = block.get("type")
        if kind not in _BLOCK_KEYS:
            self.add(where, f"unsupported block type {kind!r} (supported: {', '.join(sorted(_BLOCK_KEYS))})")
            return
        self.keys(where, block, _BLOCK_KEYS[kind])
        if "block_id" in block:
            self.unique_id(f"{where}.block_id", block["block_id"], self.block_ids)
        getattr(self, f"_{kind}")(where, block)

    def _header(self, where: str, block: Mapping[str, Any]) -> None:
        self.text_object(f"{where}.text", block.get("text"), HEADER_MAX, plain_only=True)
        level = block.get("level")
        if "level" in block and not (
            isinstance(level, int) and not isinstance(level, bool) and 1 <= level <= 4
        ):
            self.add(f"{where}.level", "must be an integer 1..4")

    def _section(self, where: str, block: Mapping[str, Any]) -> None:
        if "text" not in block and "fields" not in block:
            self.add(where, "a section needs text or fields")
        if "text" in block:
            self.text_object(f"{where}.text", block["text"])
        if "fields" in block:
            items = block["fields"]
            if not isinstance(items, list) or not 1 <= len(items) <= FIELDS_MAX:
                self.add(f"{where}.fields", f"must be a list of 1..{FIELDS_MAX} text objects")
            else:
                for i, f in enumerate(items):
                    self.text_object(f"{where}.fields[{i}]", f, FIELD_MAX)
        if "accessory" in block:
            acc = block["accessory"]
            kind = acc.get("type") if isinstance(acc, Mapping) else None
            if kind == "button":
                self.button(f"{where}.accessory", acc)
            elif kind == "image":
                self.image_element(f"{where}.accessory", acc)
            else:
                self.add(f"{where}.accessory", f"unsupported accessory {kind!r}")
        if "expand" in block and not isinstance(block["expand"], bool):
            self.add(f"{where}.expand", "must be a boolean")

    def _context(self, where: str, block: Mapping[str, Any]) -> None:
        items = block.get("elements")
        if not isinstance(items, list) or not 1 <= len(items) <= CONTEXT_ELEMENTS_MAX:
            self.add(f"{where}.elements", f"must be a list of 1..{CONTEXT_ELEMENTS_MAX} elements")
            return
        for i, el in enumerate(items):
            if isinstance(el, Mapping) and el.get("type") == "image":
                self.image_element(f"{where}.elements[{i}]", el)
            else:
                self.text_object(f"{where}.elements[{i}]", el)

    def _actions(self, where: str, block: Mapping[str, Any]) -> None:
        items = block.get("elements")
        if not isinstance(items, list) or not 1 <= len(items) <= ACTIONS_ELEMENTS_MAX:
            self.add(f"{where}.elements", f"must be a list of 1..{ACTIONS_ELEMENTS_MAX} elements")
            return
        for i, el in enumerate(items):
            if isinstance(el, Mapping) and el.get("type") == "button":
                self.button(f"{where}.elements[{i}]", el)
            else:
                kind = el.get("type") if isinstance(el, Mapping) else type(el).__name__
                self.add(f"{where}.elements[{i}]", f"unsupported element {kind!r}")

    def _divider(self, where: str, block: Mapping[str, Any]) -> None:
        return None

    def _markdown(self, where: str, block: Mapping[str, Any]) -> None:
        if self.string(f"{where}.text", block.get("text"), 1, MARKDOWN_MAX):
            self.markdown_chars += len(block["text"])

    def _image(self, where: str, block: Mapping[str, Any]) -> None:
        self.image_element(where, {k: v for k, v in block.items() if k not in ("title", "block_id")})
        if "title" in block:
            self.text_object(f"{where}.title", block["title"], 2000, plain_only=True)


def validate_blocks(payload: Any) -> list[str]:
    """Problems of a Slack message payload under the Block Kit rules of the module docstring.

    Returns:
        A list of human-readable problems (``"blocks[2].fields: ..."``); empty when valid.
    """
    c = _Checker()
    if not isinstance(payload, Mapping):
        return [f"payload: must be an object, got {type(payload).__name__}"]
    if "text" not in payload and "blocks" not in payload:
        c.add("payload", "needs text or blocks")
    if "text" in payload:
        c.string("text", payload["text"], 1, PAYLOAD_TEXT_MAX)
    if "blocks" in payload:
        if "text" not in payload:
            c.add("text", "missing: a plain-text fallback is required when blocks are sent")
        blocks = payload["blocks"]
        if not isinstance(blocks, list) or not 1 <= len(blocks) <= BLOCKS_MAX:
            c.add("blocks", f"must be a list of 1..{BLOCKS_MAX} blocks")
        else:
            for i, block in enumerate(blocks):
                c.block(f"blocks[{i}]", block)
    if c.markdown_chars > MARKDOWN_MAX:
        c.add(
            "blocks", f"markdown blocks hold {c.markdown_chars} characters in total (at most {MARKDOWN_MAX})"
        )
    return c.problems
