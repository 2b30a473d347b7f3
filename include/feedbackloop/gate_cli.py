"""``feedbackloop gate``: the golden-set release gate as a CI/CD step outside Airflow.

    python -m feedbackloop gate --model build/model_spec.json --out gate-report
    python -m feedbackloop gate --model challenger --dsn postgresql://... --against-champion

``--model`` is a model spec JSON file (what a training run stages as ``model_spec.json``) or
a registry alias (``champion`` / ``challenger``) read from the ``ml`` tables of the database
named by ``--dsn`` or ``FEEDBACKLOOP_DSN``. The model classifies the golden set (a ``local``
model fully offline; ``openai`` / ``fewshot`` models through the OpenAI-compatible endpoint
named by ``OPENAI_BASE_URL`` and ``OPENAI_API_KEY``), the gate applies the thresholds given
as flags (defaults: the brief's, from :class:`feedbackloop.gate.GateThresholds`), and
optionally the paired test against the champion (``--against-champion``, from the registry)
or against any other spec (``--champion-spec``).

It prints one line per check (name, value, operator, threshold, pass/FAIL), writes
``report.json`` and ``report.html`` (and with ``--png`` the plots as PNG) to ``--out``, and
exits **0** when the gate passed, **1** when it failed, **2** on a usage or configuration
error (missing spec file, unknown alias, no database, no endpoint, bad threshold), with the
reason on stderr.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Mapping
from dataclasses import fields
from pathlib import Path
from typing import Any, TextIO

from feedbackloop.gate import GateThresholds

EXIT_PASSED = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
ALIASES = ("champion", "challenger")
DSN_ENV = "FEEDBACKLOOP_DSN"
DEFAULT_OUT = "gate-report"
_DEFAULTS = GateThresholds()


class GateUsageError(Exception):
    """A usage or configuration problem; the message is what the user needs to fix it."""


# --------------------------------------------------------------------------- loading models


def _spec_from_file(path: Path) -> dict[str, Any]:
    from feedbackloop.models.base import ModelSpec, ModelSpecError

    if not path.is_file():
        raise GateUsageError(
            f"model spec file not found: {path} (give a model_spec.json path or one of {', '.join(ALIASES)})"
        )
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise GateUsageError(f"model spec {path} is not valid JSON: {exc}") from exc
    try:
        spec = ModelSpec.from_dict(document).to_dict()
    except ModelSpecError as exc:
        raise GateUsageError(f"model spec {path} is invalid: {exc}") from exc
    uri = spec.get("artifact_uri")
    if uri and "://" not in uri:
        # A plain path in a spec file is relative to the file, so a spec and its model.bin
        # can travel together as a CI artifact.
        spec["artifact_uri"] = (path.parent / uri).resolve().as_uri()
    return spec


def _spec_from_registry(alias: str, dsn: str | None) -> dict[str, Any] | None:
    """The spec behind a registry alias, or None when nothing is registered under it."""
    from feedbackloop import db, registry

    if not dsn:
        raise GateUsageError(f"--model {alias} reads the model registry: give --dsn or set {DSN_ENV}")
    try:
        with db.connect(dsn) as conn:
            deployment = registry.get_alias(conn, alias)
    except Exception as exc:  # psycopg errors: bad DSN, refused connection, missing ml schema
        raise GateUsageError(f"cannot read the model registry: {type(exc).__name__}: {exc}") from exc
    return None if deployment is None else dict(deployment["spec"])


def _staging_for(spec: Mapping[str, Any], staging_uri: str | None) -> Any:
    """Staging that holds the model's artifact: ``--staging``, else the artifact's own folder."""
    from feedbackloop.staging import open_staging

    root = staging_uri
    uri = spec.get("artifact_uri") or ""
    if root is None and uri:
        if spec.get("backend") == "fewshot" and spec.get("prompt_version"):
            from feedbackloop.models.fewshot import prompt_key

            key = prompt_key(spec["prompt_version"])
            root = uri[: -len(key)].rstrip("/") if uri.endswith(key) else uri.rpartition("/")[0]
        else:
            root = uri.rpartition("/")[0]
    if root is None:
        root = os.environ.get("FEEDBACKLOOP_STAGING_URI") or Path.cwd().as_uri()
    client = None
    if root.startswith("s3://"):
        import boto3  # credentials and endpoint from the standard AWS_* environment

        client = boto3.client("s3")
    return open_staging(root, s3_client=client)


def _openai_client(env: Mapping[str, str]) -> Any:
    if not env.get("OPENAI_API_KEY"):
        raise GateUsageError(
            "this model is served through an OpenAI-compatible endpoint: set OPENAI_API_KEY "
            "(and OPENAI_BASE_URL for a non-OpenAI endpoint)"
        )
    import openai

    # max_retries=0: the classifier retries itself, visibly and within a deadline.
    return openai.OpenAI(
        api_key=env["OPENAI_API_KEY"], base_url=env.get("OPENAI_BASE_URL") or None, max_retries=0
    )


def _evaluate(spec: dict[str, Any], staging_uri: str | None, env: Mapping[str, str]) -> dict[str, Any]:
    from feedbackloop.evaluation import EvaluationError
    from feedbackloop.golden import GoldenSetError
    from feedbackloop.models.local import LocalModelError
    from feedbackloop.models.openai_chat import ClassificationError
    from feedbackloop.pipeline import evaluate_spec, needs_openai

    client = _openai_client(env) if needs_openai(spec) else None
    try:
        return evaluate_spec(_staging_for(spec, staging_uri), spec, client)
    except FileNotFoundError as exc:
        raise GateUsageError(f"model {spec['version_id']}: artifact not found: {exc}") from exc
    except (LocalModelError, GoldenSetError, EvaluationError, ValueError) as exc:
        raise GateUsageError(f"cannot evaluate model {spec['version_id']}: {exc}") from exc
    except ClassificationError as exc:  # the endpoint failed after retries: not a verdict
        raise GateUsageError(f"the model endpoint failed for {spec['version_id']}: {exc}") from exc


# --------------------------------------------------------------------------- output


def _fmt_value(check: Mapping[str, Any]) -> str:
    value = check["value"]
    if value is None:
        return "-" if check.get("skipped") else "missing"
    if isinstance(value, float):
        return f"{value:.4f}"
    return str(value)


def _fmt_threshold(value: Any) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


def _without_comparison(decision: Any) -> Any:
    """No champion comparison was asked for: say so instead of "no champion yet"."""
    from dataclasses import replace

    from feedbackloop.gate import NO_CHAMPION

    checks = []
    for c in decision.checks:
        c = dict(c)
        if c.get("skipped") and c["name"] == "paired:overall":
            c["detail"] = "skipped: no champion comparison requested"
        checks.append(c)
    return replace(decision, checks=checks, reasons=[r for r in decision.reasons if r != NO_CHAMPION])


def verdict_table(decision: Any) -> str:
    """The gate's checks as a fixed-width text table (one row per check) plus the verdict.

    Args:
        decision: A ``GateDecision`` or its ``to_dict()``.
    """
    dec = decision.to_dict() if hasattr(decision, "to_dict") else dict(decision)
    rows = [("check", "value", "op", "threshold", "result")]
    for c in dec["checks"]:
        result = "skipped" if c.get("skipped") else ("pass" if c["passed"] else "FAIL")
        rows.append((c["name"], _fmt_value(c), c["op"], _fmt_threshold(c["threshold"]), result))
    widths = [max(len(r[i]) for r in rows) for i in range(5)]
    lines = ["  ".join(cell.ljust(widths[i]) for i, cell in enumerate(row)).rstrip() for row in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    failed = [c for c in dec["checks"] if not c["passed"]]
    verdict = "PASSED" if dec["passed"] else f"FAILED ({len(failed)} of {len(dec['checks'])} checks failed)"
    lines.append("")
    lines.append(f"verdict: {verdict}")
    for reason in dec.get("reasons") or []:
        lines.append(f"  - {reason}")
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------- the command


def run_gate(
    model: str,
    *,
    dsn: str | None = None,
    out: str | Path | None = DEFAULT_OUT,
    thresholds: GateThresholds | Mapping[str, Any] | None = None,
    against_champion: bool = False,
    champion_spec: str | Path | None = None,
    staging_uri: str | None = None,
    png: bool = False,
    stdout: TextIO | None = None,
    stderr: TextIO | None = None,
    env: Mapping[str, str] | None = None,
) -> int:
    """Evaluate a model on the golden set, apply the release gate, print and write the report.

    Args:
        model: Path to a model spec JSON, or ``champion`` / ``challenger`` (registry alias).
        dsn: PostgreSQL DSN of the registry; default ``$FEEDBACKLOOP_DSN``.
        out: Folder for ``report.json`` / ``report.html`` (created); None writes nothing.
        thresholds: Gate thresholds (a ``GateThresholds`` or its fields as a dict).
        against_champion: Also run the paired test against the registry's champion ("no
            champion yet" is recorded when there is none).
        champion_spec: Compare against the model in this spec file instead.
        staging_uri: Staging root holding the model artifacts; default: the artifact's folder.
        png: Also write the report's plots as PNG files.
        stdout: Where the table goes (default ``sys.stdout``).
        stderr: Where errors go (default ``sys.stderr``).
        env: Environment for ``FEEDBACKLOOP_DSN`` / ``OPENAI_*`` (default ``os.environ``).

    Returns:
        0 when the gate passed, 1 when it failed, 2 on a usage or configuration error.
    """
    stdout = stdout or sys.stdout
    stderr = stderr or sys.stderr
    env = os.environ if env is None else env
    try:
        return _run(
            model,
            dsn or env.get(DSN_ENV),
            out,
            thresholds,
            against_champion,
            champion_spec,
            staging_uri,
            png,
            stdout,
            env,
        )
    except GateUsageError as exc:
        print(f"feedbackloop gate: error: {exc}", file=stderr)
        return EXIT_USAGE


def _run(
    model: str,
    dsn: str | None,
    out: str | Path | None,
    thresholds: GateThresholds | Mapping[str, Any] | None,
    against_champion: bool,
    champion_spec: str | Path | None,
    staging_uri: str | None,
    png: bool,
    stdout: TextIO,
    env: Mapping[str, str],
) -> int:
    from feedbackloop.gate import GateError, gate
    from feedbackloop.golden import golden_version
    from feedbackloop.report import render_report_html, render_report_json

    if against_champion and champion_spec is not None:
        raise GateUsageError("give either --against-champion or --champion-spec, not both")
    if against_champion and model == "champion":
        raise GateUsageError(
            "--against-champion with --model champion would compare the champion with itself"
        )
    try:
        limits = (
            thresholds
            if isinstance(thresholds, GateThresholds)
            else GateThresholds.from_dict(thresholds or {})
        )
    except (GateError, TypeError) as exc:
        raise GateUsageError(f"bad threshold: {exc}") from exc

    source = f"registry alias {model!r}" if model in ALIASES else str(model)
    if model in ALIASES:
        registered = _spec_from_registry(model, dsn)
        if registered is None:
            raise GateUsageError(f"no model is registered as {model!r} in the registry")
        spec = registered
    else:
        spec = _spec_from_file(Path(model))
    champion: dict[str, Any] | None = None
    champion_version: str | None = None
    compare = against_champion or champion_spec is not None
    champion_model: dict[str, Any] | None
    if against_champion:
        champion_model = _spec_from_registry("champion", dsn)  # None: the gate records "no champion yet"
    elif champion_spec is not None:
        champion_model = _spec_from_file(Path(champion_spec))
    else:
        champion_model = None
    if champion_model is not None and champion_model["version_id"] == spec["version_id"]:
        raise GateUsageError(f"model {spec['version_id']} is the champion itself; nothing to compare")

    evaluation = _evaluate(spec, staging_uri, env)
    if champion_model is not None:
        champion = _evaluate(champion_model, staging_uri, env)
        champion_version = champion_model["version_id"]
    decision = gate(evaluation, limits, champion=champion, champion_version=champion_version)
    if not compare:
        decision = _without_comparison(decision)

    gv = golden_version()
    print(
        f"release gate for {spec['version_id']} ({spec['backend']}, from {source}) on golden set {gv} "
        f"({evaluation['n_emails']} emails)"
        + ("" if compare else "; no champion comparison (use --against-champion or --champion-spec)"),
        file=stdout,
    )
    print("", file=stdout)
    print(verdict_table(decision), end="", file=stdout)

    if out is not None:
        folder = Path(out)
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise GateUsageError(f"cannot create the report folder {folder}: {exc}") from exc
        context = {
            "command": "feedbackloop gate",
            "model": source,
            "version_id": spec["version_id"],
            "backend": spec["backend"],
            "golden_version": gv,
            "champion": champion_version or ("no champion yet" if compare else "not compared"),
        }
        written = {
            "report.json": render_report_json(evaluation, decision, context, champion),
            "report.html": render_report_html(evaluation, decision, context, champion).encode("utf-8"),
        }
        if png:
            from feedbackloop.report_png import ReportPngError, render_report_pngs

            try:
                written.update(render_report_pngs(evaluation, decision, champion))
            except ReportPngError as exc:
                raise GateUsageError(str(exc)) from exc
        for name, data in written.items():
            (folder / name).write_bytes(data)
        print(f"report: {', '.join(str(folder / n) for n in written)}", file=stdout)
    return EXIT_PASSED if decision.passed else EXIT_FAILED


# --------------------------------------------------------------------------- argparse


def _threshold_args(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("gate thresholds (defaults: the product brief's)")
    group.add_argument(
        "--min-accuracy",
        type=float,
        default=_DEFAULTS.min_accuracy,
        help="overall accuracy must be >= this (default %(default)s)",
    )
    group.add_argument(
        "--min-critical-accuracy",
        type=float,
        default=_DEFAULTS.min_critical_accuracy,
        help="accuracy on critical-priority emails must be >= this (default %(default)s)",
    )
    group.add_argument(
        "--max-p95-latency-ms",
        type=float,
        default=_DEFAULTS.max_p95_latency_ms,
        help="p95 latency per email must be < this (default %(default)s)",
    )
    group.add_argument(
        "--max-ece",
        type=float,
        default=_DEFAULTS.max_ece,
        help="expected calibration error must be <= this (default %(default)s)",
    )
    group.add_argument(
        "--paired-alpha",
        type=float,
        default=_DEFAULTS.paired_alpha,
        help="significance level of the paired test vs the champion (default %(default)s)",
    )
    group.add_argument(
        "--require-slice",
        action="append",
        dest="required_slices",
        metavar="SLICE",
        help="a slice that must have been evaluated, e.g. category:phishing "
        f"(repeatable; default {' '.join(_DEFAULTS.required_slices)})",
    )


def _thresholds_from_args(args: argparse.Namespace) -> dict[str, Any]:
    values = {f.name: getattr(args, f.name) for f in fields(GateThresholds) if f.name != "required_slices"}
    values["required_slices"] = tuple(args.required_slices or _DEFAULTS.required_slices)
    return values


def _gate_command(args: argparse.Namespace) -> int:
    return run_gate(
        args.model,
        dsn=args.dsn,
        out=None if args.no_report else args.out,
        thresholds=_thresholds_from_args(args),
        against_champion=args.against_champion,
        champion_spec=args.champion_spec,
        staging_uri=args.staging,
        png=args.png,
    )


def add_gate_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Add the ``gate`` subcommand to an ``argparse`` subparsers object.

    The handler is stored as ``func`` (``args.func(args)`` returns the exit code), as the
    other subcommands of :mod:`feedbackloop.cli` do.
    """
    parser = subparsers.add_parser(
        "gate",
        help="evaluate a model on the golden set and apply the release gate (exit 0 pass, 1 fail, 2 error)",
        description=__doc__.split("\n\n")[0],
    )
    parser.add_argument(
        "--model", required=True, help="model spec JSON file, or a registry alias: champion / challenger"
    )
    parser.add_argument("--dsn", default=None, help=f"registry database DSN (default: ${DSN_ENV})")
    parser.add_argument(
        "--out", default=DEFAULT_OUT, help="folder for report.json / report.html (default %(default)s)"
    )
    parser.add_argument("--no-report", action="store_true", help="print the verdict only, write no files")
    parser.add_argument("--png", action="store_true", help="also write the report's plots as PNG")
    parser.add_argument(
        "--staging",
        default=None,
        help="staging root holding model artifacts (default: the artifact's own folder)",
    )
    compare = parser.add_mutually_exclusive_group()
    compare.add_argument(
        "--against-champion",
        action="store_true",
        help="paired test against the registry's champion (needs the DSN)",
    )
    compare.add_argument(
        "--champion-spec",
        default=None,
        metavar="PATH",
        help="paired test against the model in this spec file",
    )
    _threshold_args(parser)
    parser.set_defaults(func=_gate_command)
    return parser
