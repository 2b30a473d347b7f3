"""PNG copies of the gate report's plots, for Slack threads and for reading on a phone.

The HTML report draws its charts as inline SVG; these are the same four plots rendered with
matplotlib's Agg backend (no display, no pyplot global state):

* ``category_accuracy.png``: accuracy per true category, challenger vs champion, with the
  gate's overall-accuracy threshold;
* ``confusion_matrix.png``: expected (rows) x predicted (columns) counts, shaded by the
  share of the row (green on the diagonal, red off it), plus the invalid-answer column;
* ``reliability.png``: accuracy vs mean confidence per confidence bin, with the emails per bin;
* ``latency.png``: per-email latency histogram with the p95 and the gate's limit.

Output bytes are deterministic for the same inputs and the same matplotlib version: fixed
figure sizes and dpi, matplotlib's default style (a user's ``matplotlibrc`` is ignored), the
bundled DejaVu Sans font, and no PNG ``Software`` text chunk (it names the version).
"""

from __future__ import annotations

import io
import math
from collections.abc import Mapping, Sequence
from typing import Any

DPI = 150
WIDTH_IN = 6.4  # 960 px at DPI: readable on a phone without zooming, sharp in Slack
PNG_NAMES: tuple[str, ...] = (
    "category_accuracy.png",
    "confusion_matrix.png",
    "reliability.png",
    "latency.png",
)

_BLUE = "#0969da"
_GREY = "#8c959f"
_RED = "#cf222e"
_INK = "#1f2328"
_RC: dict[Any, Any] = {
    "font.family": "DejaVu Sans",
    "font.size": 9,
    "axes.titlesize": 11,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "svg.hashsalt": "feedbackloop",
}


class ReportPngError(RuntimeError):
    """PNG plots cannot be rendered (matplotlib is not installed)."""


def _as_dict(value: Any) -> dict[str, Any] | None:
    if value is None:
        return None
    if hasattr(value, "to_dict"):
        return value.to_dict()
    if isinstance(value, Mapping):
        return dict(value)
    raise TypeError(f"expected a result object or a mapping, got {type(value).__name__}")


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        return None
    return float(value)


def _png(fig: Any) -> bytes:
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    FigureCanvasAgg(fig)
    buffer = io.BytesIO()
    # metadata Software=None drops the only text chunk matplotlib writes by default.
    fig.savefig(buffer, format="png", dpi=DPI, metadata={"Software": None})
    return buffer.getvalue()


def _category_plot(
    labels: Sequence[str], ev: Mapping[str, Any], champ: Mapping[str, Any] | None, threshold: Any
) -> Any:
    from matplotlib.figure import Figure

    rows = list(reversed(labels))  # first category at the top
    height = 1.3 + 0.3 * max(len(rows), 1) * (1.4 if champ else 1.0)
    fig = Figure(figsize=(WIDTH_IN, height), layout="constrained")
    ax = fig.add_subplot()
    series = [("challenger", ev, _BLUE)] + ([("champion", champ, _GREY)] if champ else [])
    bar_h = 0.8 / len(series)
    for k, (name, result, colour) in enumerate(series):
        slices = result.get("slices") or {}
        for i, label in enumerate(rows):
            entry = slices.get(f"category:{label}")
            # The challenger sits above the champion within a category's row.
            y = i + (len(series) - 1 - k - (len(series) - 1) / 2) * bar_h
            if not entry or not entry.get("n"):
                ax.text(0.01, y, "not evaluated", va="center", fontsize=7, color=_GREY)
                continue
            ax.barh(y, entry["accuracy"], height=bar_h * 0.9, color=colour, label=name if i == 0 else None)
            ax.text(
                1.01,
                y,
                f"{100 * entry['accuracy']:.0f}% ({entry['correct']}/{entry['n']})",
                va="center",
                fontsize=7,
                color=_INK,
                clip_on=False,
            )
    level = _number(threshold)
    if level is not None:
        ax.axvline(level, color=_RED, linestyle="--", linewidth=1, label=f"gate {level:.2f}")
    ax.set_yticks(range(len(rows)), rows)
    ax.set_xlim(0, 1)
    ax.set_ylim(-0.6, len(rows) - 0.4)
    ax.set_xlabel("accuracy on the golden set")
    ax.set_title(f"Accuracy per category: {ev.get('model_version') or 'challenger'}", loc="left")
    if ax.get_legend_handles_labels()[0]:
        ax.legend(loc="lower right", bbox_to_anchor=(1.0, 1.0), ncols=3, frameon=False, fontsize=7)
    return fig


def _heat_rgb(share: float, diagonal: bool) -> tuple[float, float, float]:
    # The HTML report's colours: white to green on the diagonal, white to red off it.
    share = max(0.0, min(1.0, share))
    if diagonal:
        rgb = (255 - int(210 * share), 255 - int(91 * share), 255 - int(177 * share))
    else:
        rgb = (255 - int(48 * share), 255 - int(221 * share), 255 - int(209 * share))
    return (rgb[0] / 255, rgb[1] / 255, rgb[2] / 255)


def _confusion_plot(confusion: Mapping[str, Any]) -> Any:
    import numpy as np
    from matplotlib.figure import Figure

    labels = list(confusion.get("labels") or [])
    matrix = confusion.get("matrix") or []
    invalid = list(confusion.get("invalid") or [0] * len(labels))
    columns = labels + ["(invalid)"]
    size = max(len(labels), 1)
    fig = Figure(figsize=(WIDTH_IN + 1.6, WIDTH_IN + 1.0), layout="constrained")
    ax = fig.add_subplot()
    image = np.ones((size, len(columns), 3))
    for i in range(len(labels)):
        row = list(matrix[i]) + [invalid[i]]
        support = sum(row)
        for j, count in enumerate(row):
            if count:
                share = count / support if support else 0.0
                image[i, j] = _heat_rgb(share, i == j)
                ax.text(
                    j,
                    i,
                    str(count),
                    ha="center",
                    va="center",
                    fontsize=6,
                    color="white" if share > 0.6 else _INK,
                )
    ax.imshow(image, aspect="equal", interpolation="nearest")
    ax.set_xticks(range(len(columns)), columns, rotation=60, ha="right", rotation_mode="anchor", fontsize=7)
    ax.set_yticks(range(len(labels)), labels, fontsize=7)
    ax.set_xticks(np.arange(-0.5, len(columns)), minor=True)
    ax.set_yticks(np.arange(-0.5, len(labels)), minor=True)
    ax.grid(which="minor", color="#d0d7de", linewidth=0.5)
    ax.tick_params(which="minor", length=0)
    ax.set_xlabel("predicted")
    ax.set_ylabel("expected")
    ax.set_title("Confusion matrix (counts; colour: share of the row)", loc="left")
    return fig


def _reliability_plot(bins: Sequence[Mapping[str, Any]], ece: Any) -> Any:
    from matplotlib.figure import Figure
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    fig = Figure(figsize=(WIDTH_IN, WIDTH_IN + 0.6), layout="constrained")
    top, bottom = fig.subplots(2, 1, sharex=True, height_ratios=[4, 1])
    used = [b for b in bins if b.get("count")]
    for b in used:
        width = b["upper"] - b["lower"]
        top.bar(
            b["lower"],
            b["accuracy"],
            width=width,
            align="edge",
            color=_BLUE,
            alpha=0.75,
            edgecolor="white",
            linewidth=0.8,
        )
        top.hlines(b["confidence"], b["lower"], b["upper"], colors=_RED, linewidth=2)
        bottom.bar(
            b["lower"], b["count"], width=width, align="edge", color=_GREY, edgecolor="white", linewidth=0.8
        )
    top.plot([0, 1], [0, 1], linestyle="--", color=_INK, linewidth=1)
    handles = [
        Patch(facecolor=_BLUE, alpha=0.75, label="accuracy"),
        Line2D([], [], color=_RED, linewidth=2, label="mean confidence"),
        Line2D([], [], color=_INK, linestyle="--", linewidth=1, label="perfect calibration"),
    ]
    top.set_xlim(0, 1)
    top.set_ylim(0, 1)
    top.set_ylabel("accuracy")
    value = _number(ece)
    top.set_title(
        f"Reliability diagram (ECE {value:.4f})" if value is not None else "Reliability diagram", loc="left"
    )
    top.legend(handles=handles, loc="upper left", frameon=False, fontsize=7)
    bottom.set_ylabel("emails")
    bottom.set_xlabel("confidence")
    if not used:
        top.text(0.5, 0.5, "no predictions", ha="center", va="center", color=_GREY)
    return fig


def _latency_plot(latencies: Sequence[float], p95: Any, limit: Any) -> Any:
    from matplotlib.figure import Figure

    fig = Figure(figsize=(WIDTH_IN, 3.6), layout="constrained")
    ax = fig.add_subplot()
    ax.set_xlabel("latency per email (ms)")
    ax.set_ylabel("emails")
    if not latencies:
        ax.text(0.5, 0.5, "no latencies recorded", ha="center", va="center", transform=ax.transAxes)
        ax.set_title("Latency", loc="left")
        return fig
    high = max(latencies)
    span = high if high > 0 else 1.0
    ax.hist(latencies, bins=20, range=(0.0, span), color=_BLUE, edgecolor="white", linewidth=0.8)
    mark = _number(p95)
    if mark is not None:
        ax.axvline(mark, color=_RED, linestyle="--", linewidth=1, label=f"p95 {mark:.2f} ms")
    gate = _number(limit)
    title = "Latency"
    if gate is not None:
        if gate <= span:
            ax.axvline(gate, color=_INK, linewidth=1, label=f"gate {gate:g} ms")
        else:
            title += f" (gate limit {gate:g} ms is beyond the slowest email)"
    ax.set_xlim(0, span)
    ax.set_title(title, loc="left")
    if ax.get_legend_handles_labels()[0]:
        ax.legend(loc="upper right", frameon=False, fontsize=7)
    return fig


def render_report_pngs(eval_result: Any, decision: Any, champion: Any = None) -> dict[str, bytes]:
    """The report's four plots as PNG bytes.

    Args:
        eval_result: The evaluated model's ``EvalResult`` (or its ``to_dict()``).
        decision: The ``GateDecision`` (or its ``to_dict()``); its thresholds draw the gate lines.
        champion: The champion's ``EvalResult`` on the same golden set, shown beside the
            challenger per category; None when there is none.

    Returns:
        ``{file name: PNG bytes}`` for the names in :data:`PNG_NAMES`; inputs are not modified.

    Raises:
        ReportPngError: matplotlib is not installed.
    """
    try:
        import matplotlib
        from matplotlib import style
    except ImportError as exc:  # pragma: no cover - matplotlib is a runtime requirement
        raise ReportPngError("PNG plots need matplotlib (see requirements.txt)") from exc

    ev = _as_dict(eval_result) or {}
    dec = _as_dict(decision) or {}
    champ = _as_dict(champion)
    thresholds = dec.get("thresholds") or {}
    confusion = ev.get("confusion") or {"labels": [], "matrix": [], "invalid": []}
    latencies = [float(e["latency_ms"]) for e in ev.get("per_email") or []]
    # "default" resets every rcParam to matplotlib's defaults, so a site or user
    # matplotlibrc cannot change the bytes; _RC then sets the few things we choose.
    with style.context("default"), matplotlib.rc_context(_RC):
        figures = {
            "category_accuracy.png": _category_plot(
                list(confusion.get("labels") or []), ev, champ, thresholds.get("min_accuracy")
            ),
            "confusion_matrix.png": _confusion_plot(confusion),
            "reliability.png": _reliability_plot(ev.get("reliability") or [], ev.get("ece")),
            "latency.png": _latency_plot(
                latencies, (ev.get("latency_ms") or {}).get("p95"), thresholds.get("max_p95_latency_ms")
            ),
        }
        return {name: _png(fig) for name, fig in figures.items()}
