"""Model registry in the ``ml`` schema: versions, gate runs and deployment aliases.

Deployments are movable aliases (``champion``, ``challenger``) like MLflow's, one row each
(the primary key enforces "at most one"), with every change appended to
``ml.deployment_history``. A database trigger refuses to point an alias at a version whose
gate did not pass. All writes are UPSERTs keyed by run, so retries never duplicate rows.
"""

from __future__ import annotations

import json
from typing import Any

from feedbackloop.db import transaction


def _json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, default=str)


def record_gate(
    conn: Any,
    spec: dict[str, Any],
    run: dict[str, str],
    decision: Any,
    metrics: dict[str, Any],
    report_uri: str,
) -> None:
    """Record the model version and its golden-set run with the gate's verdict and evidence."""
    from feedbackloop.golden import default_taxonomy

    checks = [c if isinstance(c, dict) else c.__dict__ for c in decision.checks]
    with transaction(conn) as cur:
        cur.execute(
            """INSERT INTO ml.model_versions
                   (version_id, spec, dag_id, run_id, data_interval_start, data_interval_end,
                    report_uri, gate_passed)
               VALUES (%s, %s::jsonb, %s, %s, %s, %s, %s, %s)
               ON CONFLICT (version_id) DO UPDATE SET
                   spec = EXCLUDED.spec, report_uri = EXCLUDED.report_uri,
                   gate_passed = EXCLUDED.gate_passed""",
            (
                spec["version_id"],
                _json(spec),
                run["dag_id"],
                run["run_id"],
                run.get("data_interval_start"),
                run.get("data_interval_end"),
                report_uri,
                bool(decision.passed),
            ),
        )
        cur.execute(
            """INSERT INTO ml.golden_runs
                   (golden_run_id, version_id, dag_id, run_id, golden_version, verdict,
                    reasons, checks, metrics, report_uri)
               VALUES (%s, %s, %s, %s, %s, %s, %s::jsonb, %s::jsonb, %s::jsonb, %s)
               ON CONFLICT (golden_run_id) DO UPDATE SET
                   verdict = EXCLUDED.verdict, reasons = EXCLUDED.reasons,
                   checks = EXCLUDED.checks, metrics = EXCLUDED.metrics,
                   report_uri = EXCLUDED.report_uri, created_at = now()""",
            (
                f"{run['dag_id']}/{run['run_id']}/{spec['version_id']}",
                spec["version_id"],
                run["dag_id"],
                run["run_id"],
                f"taxonomy-v{default_taxonomy().version}",
                "pass" if decision.passed else "fail",
                _json(list(decision.reasons)),
                _json(checks),
                _json(metrics),
                report_uri,
            ),
        )


def get_alias(conn: Any, alias: str) -> dict[str, Any] | None:
    """The deployment behind an alias with its model spec, or None."""
    with transaction(conn) as cur:
        cur.execute(
            """SELECT d.alias, d.version_id, d.traffic_share, d.updated_at, d.updated_by, d.reason, v.spec
               FROM ml.deployments d JOIN ml.model_versions v USING (version_id)
               WHERE d.alias = %s""",
            (alias,),
        )
        row = cur.fetchone()
    if row is None:
        return None
    keys = ("alias", "version_id", "traffic_share", "updated_at", "updated_by", "reason", "spec")
    out = dict(zip(keys, row, strict=True))
    out["traffic_share"] = float(out["traffic_share"])
    return out


def _set_alias(cur: Any, alias: str, version_id: str, share: float, updated_by: str, reason: str) -> bool:
    cur.execute(
        "SELECT version_id, traffic_share FROM ml.deployments WHERE alias = %s FOR UPDATE", (alias,)
    )
    current = cur.fetchone()
    if current is not None and current[0] == version_id and float(current[1]) == float(share):
        return False  # already so: idempotent, no history entry
    cur.execute(
        """INSERT INTO ml.deployments (alias, version_id, traffic_share, updated_by, reason)
           VALUES (%s, %s, %s, %s, %s)
           ON CONFLICT (alias) DO UPDATE SET version_id = EXCLUDED.version_id,
               traffic_share = EXCLUDED.traffic_share, updated_at = now(),
               updated_by = EXCLUDED.updated_by, reason = EXCLUDED.reason""",
        (alias, version_id, share, updated_by, reason),
    )
    cur.execute(
        """INSERT INTO ml.deployment_history (alias, version_id, traffic_share, action, updated_by, reason)
           VALUES (%s, %s, %s, %s, %s, %s)""",
        (alias, version_id, share, "set", updated_by, reason),
    )
    return True


def deploy_challenger(
    conn: Any, version_id: str, traffic_share: float, updated_by: str, reason: str
) -> dict[str, Any]:
    """Make ``version_id`` the challenger at ``traffic_share`` (a canary, e.g. 0.05).

    Always a canary, also when no champion is registered yet: the rest of the traffic then
    stays on the model the app already serves, and the A/B evaluation decides promotion.
    Idempotent: deploying the same version at the same share again changes nothing.
    """
    if not 0 < traffic_share <= 1:
        raise ValueError(f"traffic_share must be in (0, 1], got {traffic_share}")
    with transaction(conn) as cur:
        cur.execute("LOCK TABLE ml.deployments IN SHARE ROW EXCLUSIVE MODE")
        cur.execute("SELECT version_id FROM ml.deployments WHERE alias = 'champion'")
        champion = cur.fetchone()
        if champion is not None and champion[0] == version_id:
            return {"alias": "champion", "version_id": version_id, "traffic_share": None, "changed": False}
        changed = _set_alias(cur, "challenger", version_id, traffic_share, updated_by, reason)
    return {"alias": "challenger", "version_id": version_id, "traffic_share": traffic_share, "changed": changed}
