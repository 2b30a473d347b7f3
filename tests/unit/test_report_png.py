"""PNG copies of the report plots: valid PNGs of fixed size, byte-identical on every call."""

from __future__ import annotations

import copy
import struct
import zlib

import pytest

from feedbackloop.evaluation import evaluate
from feedbackloop.gate import GateThresholds, gate
from feedbackloop.golden import GoldenEmail, default_taxonomy
from feedbackloop.models.base import Prediction
from feedbackloop.report_png import PNG_NAMES, render_report_pngs

TAXONOMY = default_taxonomy()
CATEGORIES = ["phishing", "bill_due", "receipt", "newsletter", "security_alert"]


def _golden() -> list[GoldenEmail]:
    emails = []
    for i, category in enumerate(CATEGORIES * 6):
        cat = TAXONOMY.category(category)
        emails.append(
            GoldenEmail(
                f"gs-{i:03d}",
                f"s{i}@example.com",
                f"subject {i}",
                "body",
                category,
                cat.priority,
                cat.actions[:1],
                (),
                "",
            )
        )
    return emails


GOLDEN = _golden()


def _result(wrong: set[int], version: str, latency: float = 10.0, confidence: float = 0.9):
    preds = []
    for i, g in enumerate(GOLDEN):
        category = "receipt" if i in wrong else g.category
        preds.append(
            Prediction(
                g.id,
                category,
                confidence - 0.01 * (i % 7),
                TAXONOMY.category(category).actions[:1],
                latency + 3 * (i % 5),
            )
        )
    return evaluate(GOLDEN, preds, TAXONOMY, model_version=version)


CHALLENGER = _result({1, 6}, "v2")
CHAMPION = _result({6, 11, 16}, "v1", latency=30.0)
DECISION = gate(CHALLENGER, GateThresholds(), champion=CHAMPION)


def _chunks(png: bytes) -> list[tuple[bytes, bytes]]:
    """(type, data) of every chunk, checking each CRC."""
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    chunks, pos = [], 8
    while pos < len(png):
        (length,) = struct.unpack(">I", png[pos : pos + 4])
        kind, data = png[pos + 4 : pos + 8], png[pos + 8 : pos + 8 + length]
        (crc,) = struct.unpack(">I", png[pos + 8 + length : pos + 12 + length])
        assert crc == zlib.crc32(kind + data), f"bad CRC in {kind!r}"
        chunks.append((kind, data))
        pos += 12 + length
    return chunks


@pytest.fixture(scope="module")
def pngs() -> dict[str, bytes]:
    return render_report_pngs(CHALLENGER, DECISION, CHAMPION)


def test_renders_the_four_plots_as_valid_pngs_of_fixed_width(pngs):
    assert tuple(pngs) == PNG_NAMES
    widths = {}
    for name, data in pngs.items():
        chunks = _chunks(data)
        assert chunks[0][0] == b"IHDR" and chunks[-1][0] == b"IEND"
        widths[name] = struct.unpack(">II", chunks[0][1][:8])
        # No text chunk: the matplotlib version would otherwise be in the bytes.
        assert not [k for k, _ in chunks if k in (b"tEXt", b"iTXt", b"zTXt")], name
    assert widths["category_accuracy.png"][0] == 960
    assert widths["reliability.png"][0] == 960
    assert widths["latency.png"] == (960, 540)
    assert widths["confusion_matrix.png"][0] == 1200


def test_output_bytes_are_deterministic_and_inputs_are_not_modified(pngs):
    ev, dec, champ = CHALLENGER.to_dict(), DECISION.to_dict(), CHAMPION.to_dict()
    before = copy.deepcopy((ev, dec, champ))
    assert render_report_pngs(ev, dec, champ) == pngs
    assert (ev, dec, champ) == before


def test_champion_appears_only_in_the_category_plot(pngs):
    alone = render_report_pngs(CHALLENGER, DECISION)
    assert alone["category_accuracy.png"] != pngs["category_accuracy.png"]
    for name in ("confusion_matrix.png", "reliability.png", "latency.png"):
        assert alone[name] == pngs[name], name


def test_gate_thresholds_change_the_plots_they_draw(pngs):
    looser = gate(CHALLENGER, GateThresholds(min_accuracy=0.5, max_p95_latency_ms=20.0), champion=CHAMPION)
    other = render_report_pngs(CHALLENGER, looser, CHAMPION)
    assert other["category_accuracy.png"] != pngs["category_accuracy.png"]  # gate line moved
    assert other["latency.png"] != pngs["latency.png"]  # limit now inside the range


@pytest.mark.parametrize(
    "evaluation",
    [
        pytest.param({}, id="empty-evaluation"),
        pytest.param({**CHALLENGER.to_dict(), "per_email": [], "reliability": []}, id="no-latencies-no-bins"),
        pytest.param({**CHALLENGER.to_dict(), "slices": {}}, id="no-slices"),
    ],
)
def test_sparse_evaluations_still_render(evaluation):
    out = render_report_pngs(evaluation, {})
    assert all(_chunks(data)[0][0] == b"IHDR" for data in out.values())


@pytest.mark.parametrize("bad", [pytest.param(42, id="int"), pytest.param("report", id="str")])
def test_rejects_inputs_that_are_not_results(bad):
    with pytest.raises(TypeError, match="expected a result object or a mapping"):
        render_report_pngs(bad, DECISION)
