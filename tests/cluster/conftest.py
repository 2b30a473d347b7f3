"""On a failing cluster test, attach the tail of every cluster process's log to the report."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    report = yield
    # The ``cluster`` fixture keeps the running cluster's state folder in the module's CLUSTER_STATE.
    state = getattr(getattr(item, "module", None), "CLUSTER_STATE", {}).get("state")
    if report.failed and state is not None and "cluster" in getattr(item, "fixturenames", ()):
        from feedbackloop.cluster import load_state, log_tail

        data = load_state(state) or {}
        parts = []
        for name, record in sorted(data.get("services", {}).items()):
            parts.append(f"----- {name} ({record['log']})\n{log_tail(record['log'], 25)}")
        # The newest task logs (the failing task is usually among them).
        task_logs = sorted(
            Path(state, "airflow", "logs").rglob("attempt=*.log"), key=lambda p: p.stat().st_mtime
        )
        for path in task_logs[-3:]:
            parts.append(f"----- task log {path}\n{log_tail(path, 30)}")
        report.sections.append(("cluster logs (tails)", "\n".join(parts)))
    return report
