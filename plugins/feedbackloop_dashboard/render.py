"""The dashboard page: server-rendered HTML with inline SVG charts drawn here.

No JavaScript and nothing loaded from another origin: the page is one HTML document plus
the plugin's stylesheet, so it works offline and under ``Content-Security-Policy:
default-src 'self'``. Charts are SVG with a ``viewBox`` (they scale to any width) and a
``<title>`` per point or cell (hover shows the value). Every panel is a ``<section>`` with
``data-panel`` (its name), ``data-available`` and ``data-empty``, so a test (or a person) can
tell rendered data from an empty state.

Pure functions of the dicts from :mod:`feedbackloop.dashboard_data`; all text is escaped.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from html import escape
from typing import Any
from urllib.parse import urlencode

WINDOW_CHOICES = (7, 30, 90)
_SERIES_CLASSES = ("s0", "s1", "s2", "s3")
# Accuracy -> heatmap colour class (heat-0 worst .. heat-9 best).
_HEAT_STEPS = (0.5, 0.6, 0.7, 0.8, 0.85, 0.9, 0.93, 0.95, 0.97)


# ------------------------------------------------------------------------------ format


def _e(value: Any) -> str:
    return escape("" if value is None else str(value), quote=True)


def _pct(value: Any, digits: int = 1) -> str:
    if value is None:
        return "\u2013"
    return f"{100 * float(value):.{digits}f}%"


def _int(value: Any) -> str:
    return "\u2013" if value is None else f"{int(value):,}"


def _ms(value: Any) -> str:
    return "\u2013" if value is None else f"{float(value):,.0f} ms"


def _when(iso: str | None) -> str:
    """``2026-11-27T16:27:12.43+00:00`` -> ``2026-11-27 16:27 UTC``."""
    if not iso:
        return "\u2013"
    day, _, rest = iso.partition("T")
    return f"{day} {rest[:5]} UTC" if rest else day


def _short_day(iso: str) -> str:
    return iso[5:10]


def _share(value: Any) -> str:
    return "\u2013" if value is None else f"{100 * float(value):g}%"


def _nice_ceiling(value: float) -> float:
    """The smallest 1 / 2 / 5 x 10^k at or above ``value`` (at least 1)."""
    if value <= 1:
        return 1.0
    power = 10 ** math.floor(math.log10(value))
    for step in (1, 2, 5, 10):
        if step * power >= value:
            return float(step * power)
    return float(10 * power)


# -------------------------------------------------------------------------------- svg


class _Plot:
    """Coordinates of a chart's plot area inside its viewBox."""

    def __init__(self, width: int, height: int, left: int, right: int, top: int, bottom: int) -> None:
        self.width, self.height = width, height
        self.left, self.top = left, top
        self.w = width - left - right
        self.h = height - top - bottom

    def y(self, value: float, lo: float, hi: float) -> float:
        span = hi - lo or 1.0
        v = min(hi, max(lo, value))
        return round(self.top + self.h * (1 - (v - lo) / span), 2)

    def x_slot(self, i: int, n: int) -> float:
        return round(self.left + self.w * (i + 0.5) / max(n, 1), 2)


def _svg(plot: _Plot, label: str, parts: Sequence[str], css: str = "chart") -> str:
    return (
        f'<svg class="{css}" viewBox="0 0 {plot.width} {plot.height}" role="img" aria-label="{_e(label)}">'
        f"<title>{_e(label)}</title>{''.join(parts)}</svg>"
    )


def _text(x: float, y: float, content: str, css: str = "tick", anchor: str = "middle") -> str:
    return f'<text class="{css}" x="{x}" y="{y}" text-anchor="{anchor}">{_e(content)}</text>'


def _y_axis(
    plot: _Plot, ticks: Sequence[float], lo: float, hi: float, fmt: Callable[[float], str]
) -> list[str]:
    parts = []
    for t in ticks:
        y = plot.y(t, lo, hi)
        parts.append(f'<line class="grid" x1="{plot.left}" x2="{plot.left + plot.w}" y1="{y}" y2="{y}"/>')
        parts.append(_text(plot.left - 6, y + 4, fmt(t), anchor="end"))
    return parts


def _x_labels(plot: _Plot, labels: Sequence[str]) -> list[str]:
    n = len(labels)
    step = max(1, math.ceil(n / 7))
    base = plot.top + plot.h + 18
    return [_text(plot.x_slot(i, n), base, labels[i]) for i in range(0, n, step)]


def _legend(items: Sequence[tuple[str, str]]) -> str:
    lis = "".join(f'<li><span class="swatch {css}"></span>{_e(name)}</li>' for name, css in items)
    return f'<ul class="legend">{lis}</ul>'


def line_chart(
    label: str,
    days: Sequence[str],
    series: Sequence[tuple[str, str, Mapping[str, float | None]]],
    *,
    lo: float,
    hi: float,
    ticks: Sequence[float],
    fmt: Callable[[float], str],
    refs: Sequence[tuple[float, str, str]] = (),
) -> str:
    """A line chart over ``days`` (ISO dates); each series is (name, css class, day -> value).

    Lines break where a day has no value. ``refs`` are horizontal reference lines
    (value, css class, label), e.g. an SLO.
    """
    plot = _Plot(640, 250, 56, 14, 12, 30)
    n = len(days)
    parts = _y_axis(plot, ticks, lo, hi, fmt)
    for value, css, text in refs:
        y = plot.y(value, lo, hi)
        parts.append(f'<line class="{css}" x1="{plot.left}" x2="{plot.left + plot.w}" y1="{y}" y2="{y}"/>')
        parts.append(_text(plot.left + plot.w - 2, y - 4, text, css="ref-label", anchor="end"))
    radius = 2.6 if n <= 31 else 1.6
    for name, css, values in series:
        runs: list[list[tuple[float, float]]] = [[]]
        dots = []
        for i, day in enumerate(days):
            v = values.get(day)
            if v is None:
                if runs[-1]:
                    runs.append([])
                continue
            x, y = plot.x_slot(i, n), plot.y(v, lo, hi)
            runs[-1].append((x, y))
            dots.append(
                f'<circle class="dot {css}" cx="{x}" cy="{y}" r="{radius}">'
                f"<title>{_e(name)} {_e(day)}: {_e(fmt(v))}</title></circle>"
            )
        for run in runs:
            if len(run) > 1:
                pts = " ".join(f"{x},{y}" for x, y in run)
                parts.append(f'<polyline class="line {css}" points="{pts}"/>')
        parts.extend(dots)
    parts.extend(_x_labels(plot, [_short_day(d) for d in days]))
    return _svg(plot, label, parts)


def stacked_bars(label: str, days: Sequence[str], stacks: Sequence[tuple[str, str, Sequence[int]]]) -> str:
    """Stacked daily bars; each stack is (name, css class, one count per day)."""
    plot = _Plot(640, 250, 56, 14, 12, 30)
    n = len(days)
    totals = [sum(s[2][i] for s in stacks) for i in range(n)]
    hi = _nice_ceiling(max(totals, default=0))
    ticks = [hi * k / 4 for k in range(5)]
    parts = _y_axis(plot, ticks, 0.0, hi, lambda t: f"{t:,.0f}")
    bar_w = round(max(1.0, plot.w / max(n, 1) * 0.78), 2)
    for i, day in enumerate(days):
        base = 0
        x = round(plot.x_slot(i, n) - bar_w / 2, 2)
        for name, css, counts in stacks:
            count = counts[i]
            if count <= 0:
                continue
            y_top, y_base = plot.y(base + count, 0.0, hi), plot.y(base, 0.0, hi)
            parts.append(
                f'<rect class="bar {css}" x="{x}" y="{y_top}" width="{bar_w}" height="{round(y_base - y_top, 2)}">'
                f"<title>{_e(day)} {_e(name)}: {count:,}</title></rect>"
            )
            base += count
    parts.extend(_x_labels(plot, [_short_day(d) for d in days]))
    return _svg(plot, label, parts)


def _heat_class(accuracy: float | None) -> str:
    if accuracy is None:
        return "heat-none"
    return f"heat-{sum(accuracy >= s for s in _HEAT_STEPS)}"


def heatmap(panel: Mapping[str, Any]) -> str:
    """Category (rows, worst first) x week (columns) accuracy heatmap."""
    weeks: list[str] = list(panel["weeks"])
    categories = [c["category"] for c in panel["categories"]]
    cells = {(c["category"], c["week"]): c for c in panel["cells"]}
    left, top, cell_h = 150, 22, 20
    cell_w = max(30, min(64, 470 // max(len(weeks), 1)))
    plot = _Plot(left + cell_w * len(weeks) + 8, top + cell_h * len(categories) + 6, left, 8, top, 6)
    parts = [_text(left + cell_w * (j + 0.5), 14, _short_day(wk)) for j, wk in enumerate(weeks)]
    for i, category in enumerate(categories):
        y = top + i * cell_h
        parts.append(_text(left - 6, y + 14, category.replace("_", " "), css="row-label", anchor="end"))
        for j, wk in enumerate(weeks):
            cell = cells.get((category, wk))
            x = left + j * cell_w
            if cell is None:
                parts.append(
                    f'<rect class="heat-none" x="{x + 1}" y="{y + 1}" width="{cell_w - 2}" height="{cell_h - 2}"/>'
                )
                continue
            css = _heat_class(cell["accuracy"]) + (" low" if cell["low_sample"] else "")
            tip = (
                f"{category}, week of {wk}: {_pct(cell['accuracy'])} of {cell['predictions']:,} predictions"
                + (" (few samples)" if cell["low_sample"] else "")
            )
            parts.append(
                f'<rect class="{css}" x="{x + 1}" y="{y + 1}" width="{cell_w - 2}" height="{cell_h - 2}">'
                f"<title>{_e(tip)}</title></rect>"
            )
            if cell["accuracy"] is not None:
                parts.append(_text(x + cell_w / 2, y + 14, f"{100 * cell['accuracy']:.0f}", css="cell-label"))
    return _svg(plot, "Accuracy per category and week", parts, css="chart heatmap")


def reliability_diagram(panel: Mapping[str, Any]) -> str:
    """Reliability diagram: bars of observed accuracy per confidence bin, the diagonal, and dots
    at each bin's mean confidence."""
    plot = _Plot(420, 320, 48, 14, 12, 34)
    parts = _y_axis(plot, [0, 0.25, 0.5, 0.75, 1.0], 0.0, 1.0, lambda t: f"{100 * t:.0f}%")

    def x(v: float) -> float:
        return round(plot.left + plot.w * min(1.0, max(0.0, v)), 2)

    for t in (0, 0.25, 0.5, 0.75, 1.0):
        parts.append(_text(x(t), plot.top + plot.h + 18, f"{100 * t:.0f}%"))
    parts.append(_text(plot.left + plot.w / 2, plot.height - 2, "confidence", css="axis-label"))
    parts.append(
        f'<line class="diagonal" x1="{x(0)}" y1="{plot.y(0, 0, 1)}" x2="{x(1)}" y2="{plot.y(1, 0, 1)}"/>'
    )
    for b in panel["bins"]:
        x0, x1 = x(b["lower"]), x(b["upper"])
        y = plot.y(b["accuracy"], 0.0, 1.0)
        tip = (
            f"confidence {_pct(b['lower'], 0)}-{_pct(b['upper'], 0)}: accuracy {_pct(b['accuracy'])}, "
            f"mean confidence {_pct(b['mean_confidence'])}, {b['predictions']:,} predictions"
        )
        parts.append(
            f'<rect class="bar s0" x="{x0 + 0.5}" y="{y}" width="{round(x1 - x0 - 1, 2)}" '
            f'height="{round(plot.top + plot.h - y, 2)}"><title>{_e(tip)}</title></rect>'
        )
        parts.append(
            f'<circle class="dot s1" cx="{x(b["mean_confidence"])}" cy="{plot.y(b["mean_confidence"], 0, 1)}" r="2.6"/>'
        )
    return _svg(plot, "Reliability diagram: accuracy per confidence bin", parts, css="chart square")


# ----------------------------------------------------------------------------- panels


def _table(headers: Sequence[str], rows: Sequence[Sequence[str]], numeric: Sequence[int] = ()) -> str:
    head = "".join(
        f'<th scope="col"{" class=num" if i in numeric else ""}>{_e(h)}</th>' for i, h in enumerate(headers)
    )
    body = "".join(
        "<tr>"
        + "".join(f"<td{' class=num' if i in numeric else ''}>{c}</td>" for i, c in enumerate(r))
        + "</tr>"
        for r in rows
    )
    return f'<div class="table-wrap"><table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table></div>'


def _empty(message: str) -> str:
    return f'<p class="empty-state">{_e(message)}</p>'


def _section(
    panel: Mapping[str, Any], title: str, body: Callable[[], str], empty_message: str, wide: bool = False
) -> str:
    name = str(panel.get("panel", "unknown"))
    available = bool(panel.get("available"))
    empty = bool(panel.get("empty", True))
    if not available:
        content = _empty(f"Not available: {panel.get('reason', 'no data source')}")
    elif empty:
        content = _empty(empty_message)
    else:
        content = body()
    css = "panel wide" if wide else "panel"
    return (
        f'<section class="{css}" id="{_e(name)}" data-panel="{_e(name)}" '
        f'data-available="{str(available).lower()}" data-empty="{str(empty).lower()}">'
        f"<h2>{_e(title)}</h2>{content}</section>"
    )


def _window_days(panel: Mapping[str, Any]) -> list[str]:
    from datetime import date, timedelta

    w = panel["window"]
    first, last = date.fromisoformat(w["first_day"]), date.fromisoformat(w["last_day"])
    return [(first + timedelta(days=i)).isoformat() for i in range((last - first).days + 1)]


def _accuracy_body(panel: Mapping[str, Any]) -> str:
    versions = panel["versions"]
    rows = []
    for v in versions:
        cells = [
            f"<code>{_e(v['model_version'] or '(none)')}</code>",
            _e(", ".join(v["variants"]) or "\u2013"),
        ]
        for n in WINDOW_CHOICES:
            stats = v["windows"][str(n)]
            if stats["accuracy"] is None:
                cells.append("\u2013")
            else:
                cells.append(
                    f'{_pct(stats["accuracy"])} <span class="muted">of {_int(stats["predictions"])}</span>'
                )
        rows.append(cells)
    table = _table(["model version", "variant", "7 days", "30 days", "90 days"], rows, numeric=(2, 3, 4))
    days = _window_days(panel)
    shown = versions[: len(_SERIES_CLASSES)]
    series = [
        (v["model_version"] or "(none)", _SERIES_CLASSES[i], {p["day"]: p["accuracy"] for p in v["series"]})
        for i, v in enumerate(shown)
    ]
    values = [a for _, _, s in series for a in s.values() if a is not None]
    lo = max(0.0, math.floor((min(values, default=0.9) - 0.02) * 20) / 20)
    step = 0.05 if 1 - lo <= 0.3 else 0.1
    ticks = [round(lo + step * k, 2) for k in range(int(round((1 - lo) / step)) + 1)]
    chart = line_chart(
        f"Daily accuracy per model version, last {panel['window']['days']} days",
        days,
        series,
        lo=lo,
        hi=1.0,
        ticks=ticks,
        fmt=lambda t: (
            f"{100 * t:.0f}%" if step >= 0.05 and abs(t * 100 - round(t * 100)) < 1e-9 else f"{100 * t:.1f}%"
        ),
    )
    return f'<p class="note">{_e(panel["definition"])}.</p>{table}{chart}' + _legend(
        [(name, css) for name, css, _ in series]
    )


def _category_body(panel: Mapping[str, Any]) -> str:
    return (
        heatmap(panel) + f'<p class="note">Worst categories first; categories with fewer than '
        f"{panel['min_cell_predictions']} predictions last. Faded cells have fewer than "
        f"{panel['min_cell_predictions']} predictions. Weeks start on Monday (UTC).</p>"
    )


def _calibration_body(panel: Mapping[str, Any]) -> str:
    ece = panel["ece"]
    status = (
        "ok" if ece is not None and ece <= 0.05 else ("warn" if ece is not None and ece <= 0.10 else "bad")
    )
    invalid = panel["invalid_confidence"]
    return (
        f'<p class="kpi"><span class="badge {status}">ECE {_pct(ece)}</span> over '
        f"{_int(panel['predictions'])} predictions; accuracy {_pct(panel['accuracy'])} vs mean confidence "
        f"{_pct(panel['mean_confidence'])}.</p>"
        + reliability_diagram(panel)
        + '<p class="note">Bars: observed accuracy per confidence bin; dots: the bin\'s mean confidence; '
        "a calibrated model follows the diagonal. Target ECE \u2264 5%, alert above 10%."
        + (f" {_int(invalid)} predictions had no valid confidence." if invalid else "")
        + "</p>"
    )


def _latency_body(panel: Mapping[str, Any]) -> str:
    days = _window_days(panel)
    points = panel["days"]
    worst = max((p["p99_ms"] or 0 for p in points), default=0)
    hi = _nice_ceiling(max(worst, panel["slo_ms"] * 1.1))
    series = [
        (name, css, {p["day"]: p[key] for p in points})
        for name, css, key in (("p50", "s0", "p50_ms"), ("p95", "s1", "p95_ms"), ("p99", "s2", "p99_ms"))
    ]
    chart = line_chart(
        f"Latency percentiles per day, last {panel['window']['days']} days",
        days,
        series,
        lo=0.0,
        hi=hi,
        ticks=[hi * k / 5 for k in range(6)],
        fmt=lambda t: f"{t:,.0f} ms",
        refs=[(panel["slo_ms"], "slo", f"SLO p95 < {panel['slo_ms']:.0f} ms")],
    )
    over = panel["days_over_slo"]
    status = "bad" if over else "ok"
    return (
        f'<p class="kpi"><span class="badge {status}">{len(over)} day(s) over the SLO</span> '
        f"worst daily p95 {_ms(panel['worst_p95_ms'])}; latest p95 {_ms(points[-1]['p95_ms'])}.</p>"
        + chart
        + _legend([(name, css) for name, css, _ in series] + [("SLO", "slo")])
    )


def _feedback_body(panel: Mapping[str, Any]) -> str:
    points = panel["days"]
    days = [p["day"] for p in points]
    stacks = [
        ("corrections", "s1", [p["corrections"] for p in points]),
        ("confirmations", "s0", [p["confirmations"] for p in points]),
        ("action feedback", "s2", [p["action_feedback"] for p in points]),
    ]
    t = panel["totals"]
    return (
        f'<p class="kpi">{_int(t["total"])} feedback items: {_int(t["corrections"])} corrections, '
        f"{_int(t['confirmations'])} confirmations, {_int(t['action_feedback'])} action feedback "
        f"({_int(t['missed_actions'])} missed, {_int(t['unnecessary_actions'])} unnecessary actions).</p>"
        + stacked_bars(f"Feedback per day, last {panel['window']['days']} days", days, stacks)
        + _legend([(name, css) for name, css, _ in stacks])
    )


def _deployments_body(panel: Mapping[str, Any]) -> str:
    rows = [
        [
            f"<strong>{_e(d['alias'])}</strong>",
            f"<code>{_e(d['version_id'])}</code>",
            _share(d["traffic_share"]),
            '<span class="badge ok">passed</span>'
            if d["gate_passed"]
            else '<span class="badge bad">no</span>',
            _e(_when(d["updated_at"])),
            f'{_e(d["reason"])} <span class="muted">({_e(d["updated_by"])})</span>',
        ]
        for d in panel["deployments"]
    ]
    return _table(["alias", "version", "share", "gate", "since", "why (who)"], rows, numeric=(2,))


def _experiment_body(panel: Mapping[str, Any]) -> str:
    exp = panel["experiment"]
    arms = panel["arms"]
    prob = panel["prob_beat_champion"]
    decision = panel["latest_decision"]
    facts = [
        ("experiment", f"<code>{_e(exp['experiment_id'])}</code>"),
        (
            "status",
            f'<span class="badge {"warn" if exp["status"] == "halted" else "ok"}">{_e(exp["status"])}</span>',
        ),
        ("challenger share", _e(_share(exp["traffic_share"]))),
        ("live for", f"{_e(exp['days_live'])} days (stage: {_e(exp['stage_days'])} days)"),
        ("next decision", _e(_when(panel["next_decision_at"]))),
        ("earliest ramp / promotion", _e(_when(panel["earliest_progress_at"]))),
        ("stage horizon", _e(_when(panel["stage_horizon_at"]))),
    ]
    dl = "".join(f"<dt>{_e(k)}</dt><dd>{v}</dd>" for k, v in facts)
    need = panel["min_samples_per_arm"]
    arm_rows = [
        [
            _e(arm),
            f"<code>{_e(exp[f'{arm}_version'] or '(app default)')}</code>",
            f"{_int(arms[arm]['predictions'])} / {_int(need)}",
            _pct(arms[arm]["accuracy"], 2),
        ]
        for arm in ("champion", "challenger")
    ]
    table = _table(["arm", "version", "samples (stage) / needed", "accuracy"], arm_rows, numeric=(2, 3))
    prob_line = (
        f'<p class="kpi">P(challenger beats champion): accuracy <strong>{_pct(prob["accuracy"])}</strong>'
        f" (live, this stage), engagement <strong>{_pct(prob['engagement'])}</strong>"
        f" (as of the latest decision).</p>"
    )
    if decision is not None:
        decision_html = (
            f'<p class="decision">Latest decision {_e(decision["decision_date"])}: '
            f'<span class="badge">{_e(decision["outcome"])}</span> ({_e(decision["source"])}) \u2013 '
            f"{_e(decision['reason'])}</p>"
        )
    elif panel["decisions_available"]:
        decision_html = '<p class="decision muted">No decision recorded for this experiment yet.</p>'
    else:
        decision_html = (
            '<p class="decision muted">Decisions are not recorded (ml.experiment_decisions is missing).</p>'
        )
    return f'<dl class="facts">{dl}</dl>{table}{prob_line}{decision_html}'


def _alerts_body(panel: Mapping[str, Any]) -> str:
    rows = [
        [
            _e(_when(a["opened_at"])),
            f"<strong>{_e(a['detector'])}</strong>"
            + (f" <code>{_e(a['key'])}</code>" if a["key"] != "all" else ""),
            f"{_e(a['metric'])} {_e(a['value'])} vs {_e(a['threshold'])}",
            _int(a["occurrences"]),
            _e(a["summary"]),
        ]
        for a in panel["alerts"]
    ]
    return (
        f'<p class="kpi"><span class="badge bad">{_int(panel["open_count"])} open</span> '
        f"{_int(panel['resolved_last_7_days'])} resolved in the last 7 days.</p>"
        + _table(["opened", "detector", "value vs threshold", "seen", "summary"], rows, numeric=(3,))
    )


def _review_body(panel: Mapping[str, Any]) -> str:
    top = "".join(
        f"<li>{_e(c['category'] or '(none)')}: {_int(c['pending'])}</li>" for c in panel["top_categories"]
    )
    hours = panel["oldest_pending_hours"]
    oldest = _when(panel["oldest_pending_at"]) + ("" if hours is None else f" ({hours:g} h ago)")
    facts = [
        ("oldest pending", oldest),
        ("reviewers with pending items", _int(panel["reviewers_with_pending"])),
        ("queued today", _int(panel["queued_today"])),
        ("resolved, last 7 days", _int(panel["resolved_last_7_days"])),
        ("expired, last 7 days", _int(panel["expired_last_7_days"])),
    ]
    dl = "".join(f"<dt>{_e(k)}</dt><dd>{_e(v)}</dd>" for k, v in facts)
    return (
        f'<p class="big-number">{_int(panel["pending"])}<span> pending</span></p><dl class="facts">{dl}</dl>'
        + (
            f'<p class="note">Most pending by predicted category:</p><ul class="compact">{top}</ul>'
            if top
            else ""
        )
    )


def _gate_body(panel: Mapping[str, Any]) -> str:
    rows = []
    for r in panel["reports"]:
        link = (
            f'<a href="reports?{_e(urlencode({"id": r["golden_run_id"]}))}">report</a>'
            if r["report_html_uri"]
            else "\u2013"
        )
        verdict = "ok" if r["verdict"] == "pass" else "bad"
        rows.append(
            [
                _e(_when(r["created_at"])),
                f"<code>{_e(r['version_id'])}</code>",
                f'<span class="badge {verdict}">{_e(r["verdict"])}</span>',
                _pct(r["accuracy"]),
                _pct(r["critical_accuracy"]),
                link,
            ]
        )
    return _table(["run", "version", "verdict", "accuracy", "critical", "HTML"], rows, numeric=(3, 4))


def _misclassified_body(panel: Mapping[str, Any]) -> str:
    rows = [
        [
            _e(_when(r["corrected_at"])),
            f"{_e(r['predicted_category'])} \u2192 <strong>{_e(r['corrected_category'])}</strong>",
            _pct(r["confidence"], 0),
            _e(r["variant"] or "\u2013"),
            _e(r["subject"] or "\u2013"),
        ]
        for r in panel["rows"]
    ]
    return _table(
        ["corrected", "predicted \u2192 corrected", "confidence", "arm", "subject (redacted)"],
        rows,
        numeric=(2,),
    )


# ------------------------------------------------------------------------------- page


def render_page(data: Mapping[str, Any], days: int) -> str:
    """The whole dashboard page for :func:`feedbackloop.dashboard_data.dashboard`'s output."""
    p = data["panels"]
    w = data["window"]
    nav = "".join(
        f'<a href="?days={n}"{" aria-current=page" if n == days else ""}>{n} days</a>' for n in WINDOW_CHOICES
    )
    sections = [
        _section(
            p["accuracy"],
            "Accuracy by model version",
            lambda: _accuracy_body(p["accuracy"]),
            f"No predictions in the last {days} days.",
            wide=True,
        ),
        _section(
            p["category_accuracy"],
            "Accuracy per category (90 days, by week)",
            lambda: _category_body(p["category_accuracy"]),
            "No predictions in the last 90 days.",
        ),
        _section(
            p["calibration"],
            "Calibration",
            lambda: _calibration_body(p["calibration"]),
            f"No predictions with a confidence in the last {days} days.",
        ),
        _section(
            p["latency"],
            "Latency",
            lambda: _latency_body(p["latency"]),
            f"No latency logged in the last {days} days.",
        ),
        _section(
            p["feedback_volume"],
            "Feedback volume",
            lambda: _feedback_body(p["feedback_volume"]),
            f"No feedback in the last {days} days.",
        ),
        _section(
            p["deployments"],
            "Deployments",
            lambda: _deployments_body(p["deployments"]),
            "No model deployed yet: the app serves its built-in model.",
        ),
        _section(
            p["experiment"],
            "A/B experiment",
            lambda: _experiment_body(p["experiment"]),
            "No experiment is running.",
        ),
        _section(p["alerts"], "Open alerts", lambda: _alerts_body(p["alerts"]), "No open alerts."),
        _section(
            p["review_queue"],
            "Human-review queue",
            lambda: _review_body(p["review_queue"]),
            "The review queue is empty.",
        ),
        _section(
            p["gate_reports"],
            "Latest gate reports",
            lambda: _gate_body(p["gate_reports"]),
            "No golden-set gate has run yet.",
        ),
        _section(
            p["misclassifications"],
            "Recent misclassifications",
            lambda: _misclassified_body(p["misclassifications"]),
            "No prediction was corrected in this window.",
            wide=True,
        ),
    ]
    refreshed = (data.get("summary") or {}).get("refreshed_at")
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        "<title>Model quality \u2013 feedback loop</title>"
        # No favicon request: the browser would otherwise ask the api-server for /favicon.ico.
        '<link rel="icon" href="data:,"><link rel="stylesheet" href="static/dashboard.css"></head><body>'
        '<header class="top"><div><h1>Model quality</h1>'
        f'<p class="meta">{_e(w["first_day"])} to {_e(w["last_day"])} (UTC) \u00b7 as of {_e(_when(data["as_of"]))}'
        f" \u00b7 trends refreshed {_e(_when(refreshed))}</p></div>"
        f'<nav class="windows" aria-label="window">{nav}</nav></header>'
        f'<main class="grid">{"".join(sections)}</main>'
        f'<footer><p>JSON: <a href="api/dashboard?days={days}">api/dashboard?days={days}</a> \u00b7 '
        "per panel under <code>api/</code>. Accuracy counts a prediction as correct unless a user corrected "
        "its category, so it is an upper bound; golden-set accuracy is in the gate reports.</p></footer>"
        "</body></html>"
    )


def render_message(title: str, message: str, link: tuple[str, str] | None = None) -> str:
    """A small standalone page (errors, sign-in hints) using the same stylesheet."""
    extra = f'<p><a href="{_e(link[0])}">{_e(link[1])}</a></p>' if link else ""
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{_e(title)}</title></head><body><h1>{_e(title)}</h1><p>{_e(message)}</p>{extra}</body></html>"
    )
