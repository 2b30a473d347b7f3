"""Figures of the fault-injection scenarios, collected while they run (for RELIABILITY.md).

A plain module (not the conftest): test modules and the conftest import it under the same
name, so they share one list. The conftest writes :func:`summary` to
``<pytest basetemp>/reliability_summary.json`` (and ``$FEEDBACKLOOP_RELIABILITY_SUMMARY``)
and prints it at the end of the session.
"""

from __future__ import annotations

from typing import Any

_RECORDS: list[dict[str, Any]] = []


def record(
    scenario: str,
    *,
    test: str,
    faults_injected: int,
    run_state: str,
    expected_state: str,
    retried_tasks: dict[str, int] | None = None,
    duplicates: int = 0,
    rows_lost: int = 0,
    partial_visible: int = 0,
    notifications: int | None = None,
    remote_jobs: int | None = None,
    detail: dict[str, Any] | None = None,
) -> None:
    """Note one scenario's figures (call after its assertions passed, so only what was
    verified is reported)."""
    _RECORDS.append(
        {
            "scenario": scenario,
            "test": test,
            "faults_injected": int(faults_injected),
            "run_state": run_state,
            "expected_state": expected_state,
            "survived": run_state == "success",
            "ended_as_expected": run_state == expected_state,
            "retried_tasks": retried_tasks or {},
            "duplicates_found": int(duplicates),
            "rows_lost": int(rows_lost),
            "partial_artifacts_visible": int(partial_visible),
            "notifications_delivered": notifications,
            "remote_jobs_created": remote_jobs,
            **({"detail": detail} if detail else {}),
        }
    )


def records() -> list[dict[str, Any]]:
    return list(_RECORDS)


def summary() -> dict[str, Any]:
    """Totals over the recorded scenarios, plus the records themselves."""
    return {
        "scenarios": len(_RECORDS),
        "faults_injected": sum(r["faults_injected"] for r in _RECORDS),
        "runs_survived": sum(r["survived"] for r in _RECORDS),
        "runs_failed_cleanly": sum(not r["survived"] and r["ended_as_expected"] for r in _RECORDS),
        "runs_ended_as_expected": sum(r["ended_as_expected"] for r in _RECORDS),
        "tasks_retried": sum(sum(r["retried_tasks"].values()) for r in _RECORDS),
        "duplicates_found": sum(r["duplicates_found"] for r in _RECORDS),
        "rows_lost": sum(r["rows_lost"] for r in _RECORDS),
        "partial_artifacts_visible": sum(r["partial_artifacts_visible"] for r in _RECORDS),
        "records": list(_RECORDS),
    }
