"""The figures of RELIABILITY.md, from a run of tests/reliability.

    python benchmarks/reliability_report.py              # run tests/reliability, print the figures
    python benchmarks/reliability_report.py --security   # only the security files (bad input,
                                                         # secrets, PII, SQL, DB role): ~1.5 min
    python benchmarks/reliability_report.py --from DIR   # print what an earlier run wrote to DIR
    python benchmarks/reliability_report.py --write      # and replace the generated blocks of
                                                         # RELIABILITY.md

The tests write their counts as they pass (only verified figures are reported):
``security_summary.json`` (tests/reliability/security_support.py) and
``reliability_summary.json`` (the fault-injection suite, tests/reliability/fault_figures.py),
into ``--out`` (default: a temporary folder). Exit status: pytest's.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
SECURITY_FILES = [
    "tests/reliability/test_bad_input.py",
    "tests/reliability/test_secrets.py",
    "tests/reliability/test_pii_scan.py",
    "tests/reliability/test_sql_injection.py",
    "tests/reliability/test_db_role.py",
]
SECURITY_JSON, FAULTS_JSON = "security_summary.json", "reliability_summary.json"
BLOCKS = {"security": "security-figures", "faults": "fault-figures"}


def run_tests(out: Path, security_only: bool) -> tuple[int, str, float]:
    env = {
        **os.environ,
        "FEEDBACKLOOP_SECURITY_SUMMARY": str(out / SECURITY_JSON),
        "FEEDBACKLOOP_RELIABILITY_SUMMARY": str(out / FAULTS_JSON),
    }
    targets = SECURITY_FILES if security_only else ["tests/reliability"]
    cmd = [sys.executable, "-m", "pytest", *targets, "-q", "-p", "no:cacheprovider"]
    started = time.monotonic()
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, check=False)
    elapsed = time.monotonic() - started
    tail = [line for line in proc.stdout.splitlines() if re.search(r"\d+ (passed|failed|error)", line)]
    return proc.returncode, (tail[-1].strip("= ") if tail else proc.stdout[-2000:]), elapsed


def _load(path: Path) -> dict[str, Any] | None:
    return json.loads(path.read_text()) if path.exists() else None


def _kinds(cases: dict[str, Any]) -> str:
    counts: dict[str, int] = {}
    for case in cases:
        kind = case.split(":", 1)[0]
        counts[kind] = counts.get(kind, 0) + 1
    names = {
        "form": "trigger form",
        "run-creation": "run creation",
        "task": "tasks",
        "interval": "interval",
        "file": "golden/taxonomy files",
        "model-answer": "model answers",
        "config": "configuration",
    }
    return ", ".join(f"{names.get(k, k)} {n}" for k, n in counts.items())


def security_markdown(s: dict[str, Any]) -> str:
    bad = s.get("bad_input", {})
    sec = s.get("secrets", {})
    pii = s.get("pii", {})
    sql = s.get("sql_injection", {})
    role = s.get("db_role", {})
    scanner = s.get("scanner_self_test", {})
    recall = pii.get("recall_per_type", {})
    rows = [
        (
            "Bad inputs tried (each refused with its expected message)",
            f"{bad.get('tried', 'n/a')} ({_kinds(bad.get('cases', {}))})",
        ),
        (
            "Secrets planted / connections / runs",
            f"{sec.get('secrets_planted', 'n/a')} / {len(sec.get('connections', []))} / {sec.get('runs', 'n/a')}",
        ),
        (
            "Sources scanned for secrets (bytes)",
            f"{sec.get('sources_scanned', 'n/a')} ({sec.get('bytes_scanned', 0) / 1e6:.1f} MB): "
            + ", ".join(f"{k} {v}" for k, v in sorted(sec.get("sources_by_kind", {}).items())),
        ),
        ("Secret hits", sec.get("hits", "n/a")),
        (
            "Scanner self-test: planted secrets found",
            f"{scanner.get('tried', 'n/a')} of {scanner.get('tried', 'n/a')}",
        ),
        (
            "PII values planted (rows) / sources scanned",
            f"{pii.get('planted_values', 'n/a')} ({pii.get('planted_rows', 'n/a')}) / {pii.get('sources_scanned', 'n/a')}"
            f" (training files, {pii.get('fewshot_prompts', 0)} few-shot prompt, {pii.get('model_requests', 0)} model"
            f" requests, {pii.get('slack_payloads', 0)} Slack payloads)",
        ),
        ("Raw PII hits", pii.get("hits", "n/a")),
        (
            "Redaction recall on the labelled corpus",
            f"{pii.get('recall_overall', 'n/a')} overall, precision {pii.get('precision_overall', 'n/a')} "
            f"({pii.get('corpus_spans', 'n/a')} spans in {pii.get('corpus_lines', 'n/a')} lines; "
            + ", ".join(f"{t} {v}" for t, v in recall.items())
            + ")",
        ),
        (
            "SQL payloads / hostile rows / fields compared byte for byte",
            f"{sql.get('payloads', 'n/a')} / {sql.get('hostile_feedback_rows', 'n/a')} / "
            f"{sql.get('hostile_fields_checked_byte_for_byte', 'n/a')}",
        ),
        (
            "Direct calls / dashboard requests with payloads",
            f"{sql.get('direct_calls_with_payloads', 'n/a')} / {sql.get('dashboard_requests_with_payloads', 'n/a')}",
        ),
        (
            "Rows in the interval / extracted / lost",
            f"{sql.get('rows_in_interval', 'n/a')} / {sql.get('rows_extracted', 'n/a')} / {sql.get('rows_lost', 'n/a')}",
        ),
        (
            "DB role: privileges checked / forbidden statements refused",
            f"{role.get('privileges_checked', 'n/a')} / {role.get('forbidden_statements_refused', 'n/a')}",
        ),
        (
            "DB role: full retraining run / app rows changed",
            f"{role.get('dag_run_as_role', 'n/a')} ({role.get('tasks_succeeded_as_role', 'n/a')} tasks) / "
            f"{role.get('app_rows_changed', 'n/a')}",
        ),
    ]
    lines = ["| figure | value |", "|---|---|"]
    lines += [f"| {name} | {value} |" for name, value in rows]
    return "\n".join(lines)


def faults_markdown(f: dict[str, Any]) -> str:
    keys = (
        "scenarios",
        "faults_injected",
        "runs_survived",
        "runs_failed_cleanly",
        "runs_ended_as_expected",
        "tasks_retried",
        "duplicates_found",
        "rows_lost",
        "partial_artifacts_visible",
    )
    lines = ["| figure | value |", "|---|---|"]
    lines += [f"| {k.replace('_', ' ')} | {f.get(k, 'n/a')} |" for k in keys]
    return "\n".join(lines)


def replace_block(text: str, name: str, body: str) -> str:
    begin, end = f"<!-- {name}:begin -->", f"<!-- {name}:end -->"
    if begin not in text or end not in text:
        raise SystemExit(f"RELIABILITY.md has no {begin} ... {end} block")
    head, rest = text.split(begin, 1)
    _, tail = rest.split(end, 1)
    return f"{head}{begin}\n{body}\n{end}{tail}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--security", action="store_true", help="run only the security test files")
    parser.add_argument("--from", dest="source", type=Path, help="read the JSON files of an earlier run")
    parser.add_argument("--out", type=Path, help="where the tests write their JSON (default: a temp folder)")
    parser.add_argument("--write", action="store_true", help="update the generated blocks of RELIABILITY.md")
    args = parser.parse_args(argv)

    status, header = 0, "figures read from an earlier run"
    if args.source is not None:
        out = args.source
    else:
        out = args.out or Path(tempfile.mkdtemp(prefix="reliability-report-"))
        out.mkdir(parents=True, exist_ok=True)
        status, outcome, elapsed = run_tests(out, args.security)
        when = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
        header = (
            f"run {when}: `pytest {'(security files)' if args.security else 'tests/reliability'}`: "
            f"{outcome}, wall {elapsed:.0f} s"
        )
    security, faults = _load(out / SECURITY_JSON), _load(out / FAULTS_JSON)
    blocks: dict[str, str] = {}
    if security:
        blocks["security"] = f"_{header}_\n\n" + security_markdown(security)
    if faults:
        blocks["faults"] = f"_{header}_\n\n" + faults_markdown(faults)
    for name, body in blocks.items():
        print(f"## {name}\n\n{body}\n")
    if not blocks:
        print(f"no figures in {out}", file=sys.stderr)
        return status or 1
    if args.write:
        path = ROOT / "RELIABILITY.md"
        text = path.read_text(encoding="utf-8")
        for name, body in blocks.items():
            text = replace_block(text, BLOCKS[name], body)
        path.write_text(text, encoding="utf-8")
        print(f"updated {path} ({', '.join(blocks)})")
    return status


if __name__ == "__main__":
    raise SystemExit(main())
