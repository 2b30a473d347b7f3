"""``feedbackloop gate``: exit codes, the printed verdict table, the written report, errors.

A tiny local model (trained on 30 seed-corpus emails per category, about a second) is
staged in a temporary folder; lenient thresholds make it pass, the brief's defaults make it
fail. A weaker model (5 emails per category) is significantly worse than it in the paired
test.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from tests.tiny_models import train_tiny_model

from feedbackloop.gate import GateThresholds
from feedbackloop.gate_cli import add_gate_parser, run_gate, verdict_table

ROOT = Path(__file__).resolve().parents[2]
LENIENT = {"min_accuracy": 0.5, "min_critical_accuracy": 0.5, "max_ece": 0.5, "max_p95_latency_ms": 5000.0}


@pytest.fixture(scope="module")
def models(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("models")
    train_tiny_model(root / "good", "tiny-good", 30, relative_artifact=True)
    train_tiny_model(root / "weak", "tiny-weak", 5)
    return {"good": root / "good" / "model_spec.json", "weak": root / "weak" / "model_spec.json"}


def _gate(model: str | Path, **kwargs) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    kwargs.setdefault("env", {})
    code = run_gate(str(model), stdout=out, stderr=err, **kwargs)
    return code, out.getvalue(), err.getvalue()


def _row(output: str, name: str) -> list[str]:
    """The table row of one check, split into its columns."""
    for line in output.splitlines():
        cells = line.split()
        if cells and cells[0] == name:
            return cells
    raise AssertionError(f"no row for {name!r} in:\n{output}")


def test_lenient_thresholds_pass_with_exit_0_and_write_the_report(models, tmp_path):
    code, out, err = _gate(models["good"], out=tmp_path / "report", thresholds=LENIENT)
    assert (code, err) == (0, "")
    assert re.search(r"^check\s+value\s+op\s+threshold\s+result$", out, re.M)
    accuracy = _row(out, "accuracy")
    assert accuracy[2:] == [">=", "0.5", "pass"]
    assert 0.5 <= float(accuracy[1]) <= 1.0
    assert _row(out, "p95_latency_ms")[2:4] == ["<", "5000"]
    assert _row(out, "paired:overall")[1:] == ["-", ">=", "0.05", "skipped"]
    assert "verdict: PASSED" in out
    assert "no champion yet" not in out  # no comparison was asked for, so none is claimed

    report = json.loads((tmp_path / "report" / "report.json").read_text())
    assert report["decision"]["passed"] is True
    assert report["challenger"]["model_version"] == "tiny-good"
    assert report["context"]["golden_version"].startswith("sha256:")
    html = (tmp_path / "report" / "report.html").read_text()
    assert "PASSED" in html and "tiny-good" in html
    assert sorted(p.name for p in (tmp_path / "report").iterdir()) == ["report.html", "report.json"]


def test_default_thresholds_fail_with_exit_1_and_name_the_failed_checks(models, tmp_path):
    code, out, _ = _gate(models["good"], out=tmp_path / "r", png=True)
    assert code == 1
    assert _row(out, "accuracy")[2:] == [">=", "0.95", "FAIL"]
    assert _row(out, "critical_accuracy")[2:] == [">=", "0.98", "FAIL"]
    assert _row(out, "slice:critical")[2:] == [">=", "1", "pass"]
    assert re.search(r"^verdict: FAILED \(\d+ of \d+ checks failed\)$", out, re.M)
    assert "accuracy = 0." in out and "(required >= 0.95)" in out
    assert json.loads((tmp_path / "r" / "report.json").read_text())["decision"]["passed"] is False
    for name in ("category_accuracy.png", "confusion_matrix.png", "reliability.png", "latency.png"):
        assert (tmp_path / "r" / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", name


@pytest.mark.parametrize(
    ("challenger", "champion", "code", "paired"),
    [
        pytest.param("weak", "good", 1, "FAIL", id="significantly-worse-than-champion-fails"),
        pytest.param("good", "weak", 0, "pass", id="better-than-champion-passes"),
    ],
)
def test_paired_test_against_a_champion_spec(models, challenger, champion, code, paired):
    lenient = {**LENIENT, "min_accuracy": 0.0, "min_critical_accuracy": 0.0}
    got, out, _ = _gate(models[challenger], out=None, thresholds=lenient, champion_spec=models[champion])
    assert got == code, out
    assert _row(out, "paired:overall")[-1] == paired
    # every critical category gets its own paired check
    assert "paired:category:phishing" in out


def test_missing_spec_file_is_a_usage_error_with_exit_2(tmp_path):
    missing = tmp_path / "nope" / "model_spec.json"
    code, out, err = _gate(missing, out=tmp_path / "report")
    assert code == 2
    assert out == ""
    assert err == (
        f"feedbackloop gate: error: model spec file not found: {missing} "
        "(give a model_spec.json path or one of champion, challenger)\n"
    )
    assert not (tmp_path / "report").exists()


def _bad_json(path: Path) -> Path:
    path.write_text("{not json")
    return path


def _unknown_backend(path: Path) -> Path:
    path.write_text(
        json.dumps({"version_id": "v", "backend": "tensorflow", "base_model": "m", "created_at": "t"})
    )
    return path


def _missing_artifact(path: Path) -> Path:
    path.write_text(
        json.dumps(
            {
                "version_id": "v",
                "backend": "local",
                "base_model": "m",
                "created_at": "t",
                "artifact_uri": "gone/model.bin",
            }
        )
    )
    return path


def _openai_model(path: Path) -> Path:
    path.write_text(
        json.dumps(
            {
                "version_id": "v",
                "backend": "openai",
                "base_model": "gpt-4o-mini",
                "created_at": "t",
                "remote_model_id": "ft:gpt-4o-mini:acme::abc",
            }
        )
    )
    return path


@pytest.mark.parametrize(
    ("make_spec", "kwargs", "message"),
    [
        pytest.param(_bad_json, {}, "is not valid JSON", id="spec-not-json"),
        pytest.param(
            _unknown_backend,
            {},
            "is invalid: backend must be one of local, openai, fewshot",
            id="bad-backend",
        ),
        pytest.param(_missing_artifact, {}, "artifact not found", id="artifact-missing"),
        pytest.param(_openai_model, {}, "set OPENAI_API_KEY", id="openai-without-key"),
        pytest.param(
            None,
            {"thresholds": {"min_accuracy": 1.5}},
            "bad threshold: min_accuracy must be within [0, 1]",
            id="threshold-out-of-range",
        ),
        pytest.param(
            None,
            {"thresholds": {"min_acuracy": 0.9}},
            "unknown gate threshold(s): min_acuracy",
            id="threshold-typo",
        ),
        pytest.param(
            "champion",
            {},
            "--model champion reads the model registry: give --dsn or set FEEDBACKLOOP_DSN",
            id="alias-without-dsn",
        ),
        pytest.param(
            "challenger",
            {"dsn": "postgresql://nobody@127.0.0.1:1/none?connect_timeout=2"},
            "cannot read the model registry",
            id="registry-unreachable",
        ),
        pytest.param(
            "champion",
            {"against_champion": True, "dsn": "postgresql://x"},
            "would compare the champion with itself",
            id="champion-against-itself",
        ),
    ],
)
def test_configuration_errors_exit_2_with_a_clear_message(models, tmp_path, make_spec, kwargs, message):
    if make_spec is None:
        model: str | Path = models["good"]
    elif isinstance(make_spec, str):
        model = make_spec
    else:
        model = make_spec(tmp_path / "spec.json")
    code, out, err = _gate(model, out=tmp_path / "report", **kwargs)
    assert code == 2, out
    assert err.startswith("feedbackloop gate: error: ")
    assert message in err
    assert not (tmp_path / "report").exists()


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="feedbackloop")
    add_gate_parser(parser.add_subparsers(dest="command", required=True))
    return parser


def test_gate_subcommand_flags_become_thresholds_and_the_handler_returns_the_exit_code(
    models, tmp_path, capsys
):
    args = _parser().parse_args(
        [
            "gate",
            "--model",
            str(models["good"]),
            "--out",
            str(tmp_path / "o"),
            "--min-accuracy",
            "0.5",
            "--min-critical-accuracy",
            "0.5",
            "--max-ece",
            "0.5",
            "--max-p95-latency-ms",
            "5000",
            "--require-slice",
            "category:phishing",
            "--require-slice",
            "critical",
        ]
    )
    assert args.func(args) == 0
    out = capsys.readouterr().out
    assert _row(out, "slice:category:phishing")[-1] == "pass"
    thresholds = json.loads((tmp_path / "o" / "report.json").read_text())["decision"]["thresholds"]
    assert thresholds["required_slices"] == ["category:phishing", "critical"]
    assert thresholds["min_accuracy"] == 0.5


def test_gate_subcommand_defaults_are_the_brief_thresholds():
    args = _parser().parse_args(["gate", "--model", "x.json"])
    defaults = GateThresholds()
    assert (args.min_accuracy, args.min_critical_accuracy, args.max_p95_latency_ms, args.max_ece) == (
        defaults.min_accuracy,
        defaults.min_critical_accuracy,
        defaults.max_p95_latency_ms,
        defaults.max_ece,
    )
    assert args.out == "gate-report"


@pytest.mark.parametrize(
    "argv",
    [
        pytest.param(["gate"], id="model-missing"),
        pytest.param(
            ["gate", "--model", "x", "--against-champion", "--champion-spec", "y"], id="two-champions"
        ),
        pytest.param(["gate", "--model", "x", "--min-accuracy", "high"], id="threshold-not-a-number"),
    ],
)
def test_bad_command_lines_exit_2(argv, capsys):
    with pytest.raises(SystemExit) as exc:
        _parser().parse_args(argv)
    assert exc.value.code == 2
    assert "error:" in capsys.readouterr().err


def test_verdict_table_lists_every_check_with_value_op_threshold_and_result():
    decision = {
        "passed": False,
        "checks": [
            {
                "name": "accuracy",
                "value": 0.9,
                "threshold": 0.95,
                "op": ">=",
                "passed": False,
                "skipped": False,
            },
            {
                "name": "critical_accuracy",
                "value": None,
                "threshold": 0.98,
                "op": ">=",
                "passed": False,
                "skipped": False,
            },
            {
                "name": "p95_latency_ms",
                "value": 12.5,
                "threshold": 500.0,
                "op": "<",
                "passed": True,
                "skipped": False,
            },
            {
                "name": "paired:overall",
                "value": None,
                "threshold": 0.05,
                "op": ">=",
                "passed": True,
                "skipped": True,
            },
        ],
        "reasons": ["accuracy too low", "slice 'critical' is missing"],
    }
    assert verdict_table(decision).splitlines() == [
        "check              value    op  threshold  result",
        "-----------------  -------  --  ---------  -------",
        "accuracy           0.9000   >=  0.95       FAIL",
        "critical_accuracy  missing  >=  0.98       FAIL",
        "p95_latency_ms     12.5000  <   500        pass",
        "paired:overall     -        >=  0.05       skipped",
        "",
        "verdict: FAILED (2 of 4 checks failed)",
        "  - accuracy too low",
        "  - slice 'critical' is missing",
    ]


def test_python_dash_m_feedbackloop_gate_runs_the_gate(tmp_path):
    """The module entry point reaches the gate subcommand (needs ``add_gate_parser`` in cli.py)."""
    missing = tmp_path / "missing.json"
    env = {**os.environ, "PYTHONPATH": str(ROOT / "include")}
    proc = subprocess.run(
        [sys.executable, "-m", "feedbackloop", "gate", "--model", str(missing), "--no-report"],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=60,
    )
    assert proc.returncode == 2, proc.stderr
    assert f"model spec file not found: {missing}" in proc.stderr
