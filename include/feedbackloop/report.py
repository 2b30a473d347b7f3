"""The gate report: the evidence behind a gate decision, as JSON and as one HTML page.

The HTML page is self-contained: inline CSS, charts drawn here as inline SVG, no scripts, no
fonts or images fetched from anywhere, so it renders the same from an S3 link, an Airflow
extra link or a laptop with no network. Every piece of email text is escaped. Both outputs
are deterministic: the same inputs give the same bytes (no clock is read here; a timestamp
belongs in ``context``).
"""

from __future__ import annotations

import html
import json
import math
from collections.abc import Mapping, Sequence
from typing import Any

REPORT_FORMAT = 1
# The page may load nothing at all: no script, font, image or stylesheet from anywhere
# (inline CSS and inline SVG are all it uses). A browser then blocks any request that an
# edit or an injected email text might introduce, before it leaves the machine.
CONTENT_SECURITY_POLICY = (
    "default-src 'none'; style-src 'unsafe-inline'; img-src data:; base-uri 'none'; form-action 'none'"
)

_CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,Helvetica,Arial,sans-serif;margin:24px;color:#1f2328;max-width:1200px}
h1{font-size:1.5em;margin:0 0 12px}h2{font-size:1.15em;margin:28px 0 8px;border-bottom:1px solid #d0d7de;padding-bottom:4px}
table{border-collapse:collapse;margin:6px 0 12px;font-size:.9em}
th,td{border:1px solid #d0d7de;padding:4px 8px;text-align:left;vertical-align:top}
th{background:#f6f8fa}td.num{text-align:right;font-variant-numeric:tabular-nums}
.verdict{padding:14px 18px;border-radius:6px;margin:8px 0 16px;border:1px solid}
.verdict.pass{background:#dafbe1;border-color:#1a7f37}.verdict.fail{background:#ffebe9;border-color:#cf222e}
.verdict .label{font-size:1.4em;font-weight:700}
.verdict.pass .label{color:#1a7f37}.verdict.fail .label{color:#cf222e}
.ok{color:#1a7f37;font-weight:600}.bad{color:#cf222e;font-weight:600}.skip{color:#6e7781;font-weight:600}
.muted{color:#6e7781}svg{display:block;margin:6px 0 10px}svg text{font-family:inherit}
.legend span{display:inline-block;margin-right:14px}.swatch{display:inline-block;width:10px;height:10px;margin-right:4px}
"""

_GREEN = "#2da44e"
_BLUE = "#0969da"
_GREY = "#8c959f"
_RED = "#cf222e"


def _as_dict(value: Any) -> dict[str, Any] | None:
    if value is None:
        return None
    if hasattr(value, "to_dict"):
        return value.to_dict()
    if isinstance(value, Mapping):
        return dict(value)
    raise TypeError(f"expected a result object or a mapping, got {type(value).__name__}")


def _e(value: Any) -> str:
    return html.escape(str(value), quote=True)


def _num(value: Any, digits: int = 4) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "n/a"
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, int):
        return str(value)
    return f"{value:.{digits}f}"


def _pct(value: Any) -> str:
    return "n/a" if value is None else f"{100 * value:.1f}%"


# --------------------------------------------------------------------------- JSON


def render_report_json(
    eval_result: Any, decision: Any, context: Mapping[str, Any], champion: Any = None
) -> bytes:
    """The report as canonical JSON bytes (sorted keys, UTF-8, trailing newline).

    Args:
        eval_result: The challenger's ``EvalResult`` (or its ``to_dict()``).
        decision: The ``GateDecision`` (or its ``to_dict()``).
        context: Run context shown in the report (dag_id, run_id, data interval, URIs...).
        champion: The champion's ``EvalResult`` on the same golden set, if any.

    Raises:
        ValueError: A value is not JSON-safe (NaN, infinity).
    """
    document = {
        "report_format": REPORT_FORMAT,
        "context": dict(context),
        "challenger": _as_dict(eval_result),
        "champion": _as_dict(champion),
        "decision": _as_dict(decision),
    }
    return (
        json.dumps(document, sort_keys=True, indent=2, ensure_ascii=False, allow_nan=False) + "\n"
    ).encode("utf-8")


# --------------------------------------------------------------------------- charts


def _svg(width: int, height: int, body: list[str], label: str) -> str:
    return (
        f'<svg width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" role="img" aria-label="{_e(label)}">' + "".join(body) + "</svg>"
    )


def _text(x: float, y: float, content: Any, size: int = 11, anchor: str = "start", extra: str = "") -> str:
    return (
        f'<text x="{x:.1f}" y="{y:.1f}" font-size="{size}" text-anchor="{anchor}"{extra}>{_e(content)}</text>'
    )


def _category_bars(
    labels: Sequence[str],
    challenger: Mapping[str, Any],
    champion: Mapping[str, Any] | None,
    threshold: float | None,
) -> str:
    left, plot_w, right = 170, 420, 110
    row_h = 30 if champion else 20
    top = 24
    height = top + row_h * len(labels) + 26
    width = left + plot_w + right
    body: list[str] = []
    for tick in (0.0, 0.25, 0.5, 0.75, 1.0):
        x = left + tick * plot_w
        body.append(f'<line x1="{x:.1f}" y1="{top - 4}" x2="{x:.1f}" y2="{height - 22}" stroke="#d0d7de"/>')
        body.append(_text(x, height - 8, f"{tick:.2f}", 10, "middle"))
    if threshold is not None:
        x = left + threshold * plot_w
        body.append(
            f'<line x1="{x:.1f}" y1="{top - 8}" x2="{x:.1f}" y2="{height - 22}" stroke="{_RED}" stroke-dasharray="4 3"/>'
        )
        body.append(_text(x, top - 12, f"gate {threshold:.2f}", 10, "middle", f' fill="{_RED}"'))
    for i, label in enumerate(labels):
        y = top + i * row_h
        body.append(_text(left - 6, y + 13, label, 11, "end"))
        series = [("challenger", challenger, _BLUE)]
        if champion:
            series.append(("champion", champion, _GREY))
        for k, (_, result, colour) in enumerate(series):
            entry = (result.get("slices") or {}).get(f"category:{label}")
            bar_y = y + 3 + k * 12
            if not entry:
                body.append(_text(left + 4, bar_y + 9, "not evaluated", 10, extra=' fill="#6e7781"'))
                continue
            w = entry["accuracy"] * plot_w
            body.append(f'<rect x="{left}" y="{bar_y}" width="{w:.1f}" height="10" fill="{colour}"/>')
            body.append(
                _text(
                    left + plot_w + 6,
                    bar_y + 9,
                    f"{_pct(entry['accuracy'])} ({entry['correct']}/{entry['n']})",
                    10,
                )
            )
    return _svg(width, height, body, "Per-category accuracy")


def _heat_colour(share: float, diagonal: bool) -> str:
    # White to green on the diagonal (right answers), white to red off it (mistakes).
    share = max(0.0, min(1.0, share))
    if diagonal:
        r, g, b = 255 - int(210 * share), 255 - int(91 * share), 255 - int(177 * share)
    else:
        r, g, b = 255 - int(48 * share), 255 - int(221 * share), 255 - int(209 * share)
    return f"#{r:02x}{g:02x}{b:02x}"


def _confusion_heatmap(confusion: Mapping[str, Any]) -> str:
    labels = list(confusion["labels"])
    matrix = confusion["matrix"]
    invalid = confusion.get("invalid") or [0] * len(labels)
    columns = labels + ["(invalid)"]
    cell = 22
    left, top = 160, 150
    width = left + cell * len(columns) + 20
    height = top + cell * len(labels) + 30
    body: list[str] = [_text(left + cell * len(columns) / 2, 12, "predicted", 11, "middle")]
    body.append(
        _text(
            12,
            top + cell * len(labels) / 2,
            "expected",
            11,
            "middle",
            f' transform="rotate(-90 12 {top + cell * len(labels) / 2:.1f})"',
        )
    )
    for j, label in enumerate(columns):
        x = left + j * cell + cell / 2 + 4
        body.append(_text(x, top - 6, label, 10, "start", f' transform="rotate(-60 {x:.1f} {top - 6})"'))
    for i, label in enumerate(labels):
        y = top + i * cell
        row = list(matrix[i]) + [invalid[i]]
        support = sum(row)
        body.append(_text(left - 6, y + cell / 2 + 4, label, 10, "end"))
        for j, count in enumerate(row):
            x = left + j * cell
            share = count / support if support else 0.0
            colour = _heat_colour(share, i == j) if count else "#ffffff"
            body.append(
                f'<rect x="{x}" y="{y}" width="{cell}" height="{cell}" fill="{colour}" stroke="#d0d7de">'
                f"<title>{_e(label)} → {_e(columns[j])}: {count}</title></rect>"
            )
            if count:
                fill = "#ffffff" if share > 0.6 else "#1f2328"
                body.append(_text(x + cell / 2, y + cell / 2 + 4, count, 10, "middle", f' fill="{fill}"'))
    return _svg(width, height, body, "Confusion matrix")


def _reliability_diagram(bins: Sequence[Mapping[str, Any]], ece: Any) -> str:
    left, top, size = 50, 20, 300
    width, height = left + size + 30, top + size + 70
    body: list[str] = []
    for tick in (0.0, 0.2, 0.4, 0.6, 0.8, 1.0):
        x = left + tick * size
        y = top + size - tick * size
        body.append(f'<line x1="{left}" y1="{y:.1f}" x2="{left + size}" y2="{y:.1f}" stroke="#eaeef2"/>')
        body.append(_text(left - 6, y + 4, f"{tick:.1f}", 10, "end"))
        body.append(_text(x, top + size + 14, f"{tick:.1f}", 10, "middle"))
    body.append(f'<rect x="{left}" y="{top}" width="{size}" height="{size}" fill="none" stroke="#8c959f"/>')
    max_count = max([b["count"] for b in bins] + [1])
    for b in bins:
        if not b["count"]:
            continue
        x = left + b["lower"] * size
        w = (b["upper"] - b["lower"]) * size
        acc_h = b["accuracy"] * size
        conf_y = top + size - b["confidence"] * size
        body.append(
            f'<rect x="{x + 1:.1f}" y="{top + size - acc_h:.1f}" width="{w - 2:.1f}" height="{acc_h:.1f}" '
            f'fill="{_BLUE}" fill-opacity="0.75"><title>confidence {b["lower"]:.2f}-{b["upper"]:.2f}: '
            f"{b['count']} emails, accuracy {b['accuracy']:.3f}, mean confidence {b['confidence']:.3f}</title></rect>"
        )
        body.append(
            f'<line x1="{x + 1:.1f}" y1="{conf_y:.1f}" x2="{x + w - 1:.1f}" y2="{conf_y:.1f}" stroke="{_RED}" stroke-width="2"/>'
        )
        count_h = 30 * b["count"] / max_count
        body.append(
            f'<rect x="{x + 1:.1f}" y="{top + size + 50 - count_h:.1f}" width="{w - 2:.1f}" height="{count_h:.1f}" fill="{_GREY}"/>'
        )
    body.append(
        f'<line x1="{left}" y1="{top + size}" x2="{left + size}" y2="{top}" stroke="#1f2328" stroke-dasharray="4 3"/>'
    )
    body.append(_text(left + 4, top + 14, f"ECE {_num(ece)}", 11))
    body.append(
        _text(
            left + size / 2,
            top + size + 64,
            "confidence (bars: accuracy, red: mean confidence, grey: emails)",
            10,
            "middle",
        )
    )
    return _svg(width, height, body, "Reliability diagram")


def _latency_histogram(latencies: Sequence[float], p95: Any, limit: float | None) -> str:
    left, top, plot_w, plot_h = 50, 34, 520, 180
    width, height = left + plot_w + 30, top + plot_h + 40
    body: list[str] = []
    if not latencies:
        body.append(_text(left, top + 20, "no latencies recorded", 11))
        return _svg(width, height, body, "Latency histogram")
    high = max(latencies)
    span = high if high > 0 else 1.0
    n_bins = 20
    counts = [0] * n_bins
    for v in latencies:
        counts[min(int(v / span * n_bins), n_bins - 1)] += 1
    top_count = max(counts)
    bar_w = plot_w / n_bins
    for k, count in enumerate(counts):
        h = plot_h * count / top_count
        x = left + k * bar_w
        lo, hi = k * span / n_bins, (k + 1) * span / n_bins
        body.append(
            f'<rect x="{x + 1:.1f}" y="{top + plot_h - h:.1f}" width="{bar_w - 2:.1f}" height="{h:.1f}" fill="{_BLUE}">'
            f"<title>{lo:.2f}-{hi:.2f} ms: {count} emails</title></rect>"
        )
    body.append(
        f'<line x1="{left}" y1="{top + plot_h}" x2="{left + plot_w}" y2="{top + plot_h}" stroke="#8c959f"/>'
    )
    for k in range(0, n_bins + 1, 5):
        body.append(_text(left + k * bar_w, top + plot_h + 14, f"{k * span / n_bins:.1f}", 10, "middle"))
    body.append(_text(left + plot_w / 2, top + plot_h + 32, "latency per email (ms)", 10, "middle"))
    body.append(_text(left - 6, top + 10, top_count, 10, "end"))
    if isinstance(p95, int | float):
        x = left + min(p95 / span, 1.0) * plot_w
        body.append(
            f'<line x1="{x:.1f}" y1="{top}" x2="{x:.1f}" y2="{top + plot_h}" stroke="{_RED}" stroke-dasharray="4 3"/>'
        )
        # Label on the side of the marker that has room for it.
        right_half = x > left + plot_w * 0.75
        body.append(
            _text(
                x - 4 if right_half else x + 4,
                top + 10,
                f"p95 {p95:.2f} ms",
                10,
                "end" if right_half else "start",
                f' fill="{_RED}"',
            )
        )
    if limit is not None:
        if limit <= span:
            x = left + limit / span * plot_w
            body.append(f'<line x1="{x:.1f}" y1="{top}" x2="{x:.1f}" y2="{top + plot_h}" stroke="#1f2328"/>')
            body.append(_text(x - 4, top + 24, f"gate {limit:g} ms", 10, "end"))
        else:
            body.append(
                _text(
                    left + plot_w, top - 18, f"gate limit {limit:g} ms is beyond the slowest email", 10, "end"
                )
            )
    return _svg(width, height, body, "Latency histogram")


# --------------------------------------------------------------------------- HTML


def _table(headers: Sequence[str], rows: Sequence[Sequence[str]], numeric: Sequence[int] = ()) -> str:
    head = "".join(f"<th>{_e(h)}</th>" for h in headers)
    body = []
    for row in rows:
        cells = "".join(
            f'<td class="num">{cell}</td>' if i in numeric else f"<td>{cell}</td>"
            for i, cell in enumerate(row)
        )
        body.append(f"<tr>{cells}</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def _slice_cells(entry: Mapping[str, Any] | None) -> list[str]:
    if not entry:
        return ["n/a", "n/a", "0"]
    return [
        _e(_pct(entry["accuracy"])),
        _e(f"{_pct(entry['ci_low'])} – {_pct(entry['ci_high'])}"),
        _e(f"{entry['correct']}/{entry['n']}"),
    ]


def _status(check: Mapping[str, Any]) -> str:
    if check.get("skipped"):
        return '<span class="skip">skipped</span>'
    return '<span class="ok">pass</span>' if check["passed"] else '<span class="bad">FAIL</span>'


def _context_value(value: Any) -> str:
    if isinstance(value, Mapping | list | tuple):
        return _e(json.dumps(value, sort_keys=True, ensure_ascii=False))
    return _e(value)


def render_report_html(
    eval_result: Any, decision: Any, context: Mapping[str, Any], champion: Any = None
) -> str:
    """One self-contained HTML page with the verdict, metrics, charts and mistakes.

    Args:
        eval_result: The challenger's ``EvalResult`` (or its ``to_dict()``).
        decision: The ``GateDecision`` (or its ``to_dict()``).
        context: Run context shown at the top (dag_id, run_id, data interval, URIs...).
        champion: The champion's ``EvalResult`` on the same golden set, if any; shown beside
            the challenger in the metrics table and the per-category chart.

    Returns:
        The page as a string (inline CSS and SVG only; every email text escaped).
    """
    ev = _as_dict(eval_result) or {}
    dec = _as_dict(decision) or {}
    champ = _as_dict(champion)
    thresholds = dec.get("thresholds") or {}
    passed = bool(dec.get("passed"))
    version = ev.get("model_version") or dec.get("challenger_version") or "challenger"
    champion_label = dec.get("champion_version") or (champ or {}).get("model_version")
    parts: list[str] = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f'<meta http-equiv="Content-Security-Policy" content="{CONTENT_SECURITY_POLICY}">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>Gate report: {_e(version)}</title>",
        f"<style>{_CSS}</style></head><body>",
        f"<h1>Release gate report: {_e(version)}</h1>",
    ]

    # Verdict ---------------------------------------------------------------------------
    reasons = "".join(f"<li>{_e(r)}</li>" for r in dec.get("reasons") or [])
    parts.append(
        f'<div class="verdict {"pass" if passed else "fail"}" id="verdict">'
        f'<div class="label">{"PASSED" if passed else "FAILED"}</div>'
        f"<div>champion: {_e(champion_label or 'no champion yet')}</div>"
        f"<ul>{reasons}</ul></div>"
    )

    # Context ---------------------------------------------------------------------------
    context_rows = [[_e(k), _context_value(v)] for k, v in sorted(context.items())]
    context_rows.append(["golden emails", _e(ev.get("n_emails", "n/a"))])
    context_rows.append(["taxonomy version", _e(ev.get("taxonomy_version", "n/a"))])
    parts.append("<h2>Run</h2>" + _table(["field", "value"], context_rows))

    # Checks ----------------------------------------------------------------------------
    check_rows = [
        [
            _e(c["name"]),
            _e(_num(c["value"]) if c["value"] is not None else "missing"),
            _e(f"{c['op']} {c['threshold']}"),
            _status(c),
            _e(c.get("detail", "")),
        ]
        for c in dec.get("checks") or []
    ]
    parts.append(
        "<h2>Gate checks</h2>" + _table(["check", "value", "required", "result", "detail"], check_rows, (1,))
    )

    # Metrics ---------------------------------------------------------------------------
    slices = ev.get("slices") or {}
    champ_slices = (champ or {}).get("slices") or {}
    headers = ["metric", "challenger", "95% CI (Wilson)", "correct/n"]
    if champ is not None:
        headers += ["champion", "champion 95% CI", "champion correct/n"]

    def slice_row(name: str, key: str) -> list[str]:
        row = [_e(name), *_slice_cells(slices.get(key))]
        if champ is not None:
            row += _slice_cells(champ_slices.get(key))
        return row

    def scalar_row(name: str, value: Any, champ_value: Any = None, digits: int = 4) -> list[str]:
        row = [_e(name), _e(_num(value, digits)), "", ""]
        if champ is not None:
            row += [_e(_num(champ_value, digits)), "", ""]
        return row

    latency = ev.get("latency_ms") or {}
    champ_latency = (champ or {}).get("latency_ms") or {}
    actions = ev.get("action_metrics") or {}
    champ_actions = (champ or {}).get("action_metrics") or {}
    metric_rows = [
        slice_row("accuracy (overall)", "overall"),
        slice_row("accuracy (critical priority)", "critical"),
        scalar_row("macro-F1", ev.get("macro_f1"), (champ or {}).get("macro_f1")),
        scalar_row("expected calibration error", ev.get("ece"), (champ or {}).get("ece")),
        scalar_row("action precision", actions.get("precision"), champ_actions.get("precision")),
        scalar_row("action recall", actions.get("recall"), champ_actions.get("recall")),
        scalar_row("action F1", actions.get("f1"), champ_actions.get("f1")),
        scalar_row("latency p50 (ms)", latency.get("p50"), champ_latency.get("p50"), 2),
        scalar_row("latency p95 (ms)", latency.get("p95"), champ_latency.get("p95"), 2),
        scalar_row("latency p99 (ms)", latency.get("p99"), champ_latency.get("p99"), 2),
        scalar_row("invalid predictions", ev.get("invalid_count"), (champ or {}).get("invalid_count")),
    ]
    parts.append("<h2>Metrics</h2>" + _table(headers, metric_rows, tuple(range(1, len(headers)))))

    # Per category ----------------------------------------------------------------------
    labels = list((ev.get("confusion") or {}).get("labels") or [])
    parts.append("<h2>Accuracy per category</h2>")
    legend = f'<span><i class="swatch" style="background:{_BLUE}"></i>challenger</span>'
    if champ is not None:
        legend += f'<span><i class="swatch" style="background:{_GREY}"></i>champion</span>'
    parts.append(f'<div class="legend">{legend}</div>')
    parts.append(_category_bars(labels, ev, champ, thresholds.get("min_accuracy")))
    metrics = ev.get("category_metrics") or {}
    cat_rows = []
    for label in labels:
        m = metrics.get(label) or {}
        cat_rows.append(
            [
                _e(label),
                _e(_num(m.get("precision"))),
                _e(_num(m.get("recall"))),
                _e(_num(m.get("f1"))),
                _e(m.get("support", 0)),
                _e(m.get("predicted", 0)),
                *_slice_cells(slices.get(f"category:{label}"))[1:2],
            ]
        )
    parts.append(
        _table(
            ["category", "precision", "recall", "F1", "support", "predicted", "recall 95% CI"],
            cat_rows,
            (1, 2, 3, 4, 5),
        )
    )

    other = sorted(k for k in slices if k.startswith(("priority:", "problem_area:")))
    if other:
        parts.append("<h2>Accuracy per priority and problem area</h2>")
        parts.append(
            _table(
                headers[:4] + (headers[4:] if champ is not None else []),
                [slice_row(k, k) for k in other],
                tuple(range(1, len(headers))),
            )
        )

    # Confusion, calibration, latency -----------------------------------------------------
    if labels:
        parts.append("<h2>Confusion matrix</h2>")
        parts.append('<p class="muted">Rows: expected category; columns: predicted. Counts per cell.</p>')
        parts.append(_confusion_heatmap(ev["confusion"]))
    parts.append("<h2>Reliability diagram</h2>")
    parts.append(_reliability_diagram(ev.get("reliability") or [], ev.get("ece")))
    parts.append("<h2>Latency</h2>")
    latencies = [float(e["latency_ms"]) for e in ev.get("per_email") or []]
    parts.append(_latency_histogram(latencies, latency.get("p95"), thresholds.get("max_p95_latency_ms")))

    # Misclassified -----------------------------------------------------------------------
    wrong = ev.get("misclassified") or []
    parts.append(f"<h2>Misclassified emails ({len(wrong)})</h2>")
    if wrong:
        rows = [
            [
                _e(m["id"]),
                _e(m.get("sender", "")),
                _e(m.get("subject", "")),
                _e(m["expected"]),
                _e(m["predicted"]),
                _e(_num(m.get("confidence"), 3)),
                _e(m.get("priority", "")),
                _e(", ".join(m.get("problem_areas") or [])),
            ]
            for m in wrong
        ]
        parts.append(
            _table(
                [
                    "id",
                    "sender",
                    "subject",
                    "expected",
                    "predicted",
                    "confidence",
                    "priority",
                    "problem areas",
                ],
                rows,
                (5,),
            )
        )
    else:
        parts.append("<p>None: every golden email was classified correctly.</p>")

    parts.append(f'<p class="muted">feedbackloop gate report, format {REPORT_FORMAT}.</p>')
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"
