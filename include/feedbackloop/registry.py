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
    from feedbackloop.golden import golden_version

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
                golden_version(),
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
    if float(traffic_share) not in RAMP_STEPS:
        # Checked here, not only by the table's CHECK constraint, for a message that says what to use.
        raise ValueError(
            f"traffic_share must be one of the ramp steps {RAMP_STEPS} (a canary starts at one of them; "
            f"100% is a promotion), got {traffic_share}"
        )
    with transaction(conn) as cur:
        cur.execute("LOCK TABLE ml.deployments IN SHARE ROW EXCLUSIVE MODE")
        cur.execute("SELECT version_id FROM ml.deployments WHERE alias = 'champion'")
        champion = cur.fetchone()
        if champion is not None and champion[0] == version_id:
            return {"alias": "champion", "version_id": version_id, "traffic_share": None, "changed": False}
        changed = _set_alias(cur, "challenger", version_id, traffic_share, updated_by, reason)
    return {"alias": "challenger", "version_id": version_id, "traffic_share": traffic_share, "changed": changed}


# --------------------------------------------------------------------------------------------
# A/B experiment transitions: ramp, promote, roll back, halt (migration 0004_experiments.sql).
#
# The challenger alias drives ``ml.experiments`` through a trigger (a new challenger version
# opens an experiment, a share change starts a new stage). Each transition below takes the
# same table lock as ``deploy_challenger``, so registry writers are serialised, and is
# idempotent per day: history rows carry (experiment_id, decision_date, alias, action) under a
# unique index, and a call that finds today's row returns ``changed=False`` instead of acting
# twice. ``updated_by`` says who (a user or ``<dag_id>/<run_id>``), ``reason`` why, ``run_id``
# which run; ``created_at`` is when.

RAMP_STEPS: tuple[float, ...] = (0.05, 0.25, 0.50)
"""Allowed challenger shares (also a CHECK constraint); the step after the last is promotion."""

_LIVE = ("running", "halted")


class RegistryError(RuntimeError):
    """A registry transition that the current state does not allow (e.g. no challenger)."""


def _today_utc() -> Any:
    from datetime import UTC, datetime

    return datetime.now(UTC).date()


def _experiment_row(cur: Any, where: str, params: tuple[Any, ...]) -> dict[str, Any] | None:
    cur.execute(
        f"""SELECT experiment_id, champion_version, challenger_version, started_at, current_share,
                   stage_started_at, status, ended_at
            FROM ml.experiments WHERE {where}""",
        params,
    )
    row = cur.fetchone()
    if row is None:
        return None
    keys = (
        "experiment_id",
        "champion_version",
        "challenger_version",
        "started_at",
        "current_share",
        "stage_started_at",
        "status",
        "ended_at",
    )
    out = dict(zip(keys, row, strict=True))
    out["current_share"] = float(out["current_share"])
    return out


def get_live_experiment(conn: Any) -> dict[str, Any] | None:
    """The running or halted experiment (at most one exists), or None."""
    with transaction(conn) as cur:
        return _experiment_row(cur, "status IN ('running', 'halted')", ())


def get_experiment(conn: Any, experiment_id: str) -> dict[str, Any] | None:
    """One experiment by id, whatever its status, or None."""
    with transaction(conn) as cur:
        return _experiment_row(cur, "experiment_id = %s", (experiment_id,))


def serving_config(conn: Any) -> dict[str, Any]:
    """What the app serves: champion, challenger, its share and the experiment id for assignment."""
    with transaction(conn) as cur:
        cur.execute(
            """SELECT champion_version, challenger_version, challenger_share, experiment_id,
                      experiment_status, experiment_started_at
               FROM ml.serving_config"""
        )
        row = cur.fetchone()
    keys = (
        "champion_version",
        "challenger_version",
        "challenger_share",
        "experiment_id",
        "experiment_status",
        "experiment_started_at",
    )
    out = dict(zip(keys, row, strict=True))
    out["challenger_share"] = float(out["challenger_share"])
    return out


def _lock_live(cur: Any) -> tuple[dict[str, Any] | None, dict[str, tuple[str, float]]]:
    cur.execute("LOCK TABLE ml.deployments IN SHARE ROW EXCLUSIVE MODE")
    cur.execute("SELECT alias, version_id, traffic_share FROM ml.deployments")
    aliases = {alias: (version, float(share)) for alias, version, share in cur.fetchall()}
    experiment = _experiment_row(cur, "status IN ('running', 'halted') FOR UPDATE", ())
    return experiment, aliases


def _done_today(
    cur: Any, day: Any, alias: str, action: str, experiment_id: str | None
) -> dict[str, Any] | None:
    sql = """SELECT experiment_id, version_id, traffic_share, previous_version_id, previous_traffic_share
             FROM ml.deployment_history
             WHERE decision_date = %s AND alias = %s AND action = %s AND experiment_id IS NOT NULL"""
    params: tuple[Any, ...] = (day, alias, action)
    if experiment_id is not None:
        sql += " AND experiment_id = %s"
        params += (experiment_id,)
    cur.execute(sql + " ORDER BY id DESC LIMIT 1", params)
    row = cur.fetchone()
    if row is None:
        return None
    return {
        "experiment_id": row[0],
        "version_id": row[1],
        "traffic_share": None if row[2] is None else float(row[2]),
        "previous_version_id": row[3],
        "previous_traffic_share": None if row[4] is None else float(row[4]),
    }


def _append_history(
    cur: Any,
    *,
    alias: str,
    version_id: str | None,
    share: float | None,
    action: str,
    updated_by: str,
    reason: str,
    run_id: str | None,
    experiment_id: str,
    day: Any,
    previous: tuple[str, float] | None,
) -> None:
    cur.execute(
        """INSERT INTO ml.deployment_history
               (alias, version_id, traffic_share, action, updated_by, reason, run_id, experiment_id,
                decision_date, previous_version_id, previous_traffic_share)
           VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)""",
        (
            alias,
            version_id,
            share,
            action,
            updated_by,
            reason,
            run_id,
            experiment_id,
            day,
            previous[0] if previous else None,
            previous[1] if previous else None,
        ),
    )


def _require_who_and_why(updated_by: str, reason: str) -> None:
    if not str(updated_by or "").strip():
        raise ValueError("updated_by (who made the change) is required")
    if not str(reason or "").strip():
        raise ValueError("reason (why the change was made) is required")


def ramp_challenger(
    conn: Any,
    to_share: float,
    *,
    updated_by: str,
    reason: str,
    run_id: str | None = None,
    day: Any = None,
) -> dict[str, Any]:
    """Raise the challenger's traffic share to a later ramp step (5% -> 25% -> 50%).

    At most one ramp per experiment and day: a second call on the same ``day`` returns
    ``changed=False`` with the earlier ramp. Ramping to the current share is a no-op too.

    Args:
        conn: psycopg connection to the feedback DB.
        to_share: one of :data:`RAMP_STEPS`, above the current share.
        updated_by: who asks (a user, or ``<dag_id>/<run_id>``).
        reason: why (e.g. the decision's one-line summary).
        run_id: the Airflow run, when there is one.
        day: the decision date the change belongs to (default: today in UTC).

    Raises:
        ValueError: when ``to_share`` is not a ramp step or below the current share.
        RegistryError: when no experiment is live, or it is halted.
    """
    _require_who_and_why(updated_by, reason)
    target = float(to_share)
    if target not in RAMP_STEPS:
        raise ValueError(f"to_share must be one of the ramp steps {RAMP_STEPS}, got {to_share!r}")
    day = day or _today_utc()
    with transaction(conn) as cur:
        experiment, aliases = _lock_live(cur)
        if experiment is None or "challenger" not in aliases:
            raise RegistryError("no live experiment: there is no challenger to ramp")
        exp_id = experiment["experiment_id"]
        version, share = aliases["challenger"]
        result = {"action": "ramp", "experiment_id": exp_id, "version_id": version, "from_share": share}
        done = _done_today(cur, day, "challenger", "ramp", exp_id)
        if done is not None:
            return {
                **result,
                "from_share": done["previous_traffic_share"],
                "to_share": done["traffic_share"],
                "changed": False,
                "note": f"already ramped on {day}",
            }
        if target == share:
            return {**result, "to_share": share, "changed": False, "note": "already at this share"}
        if experiment["status"] == "halted":
            raise RegistryError(f"experiment {exp_id} is halted; promote or roll it back manually")
        if target < share:
            raise ValueError(f"cannot ramp down from {share} to {target}; roll back instead")
        cur.execute(
            """UPDATE ml.deployments SET traffic_share = %s, updated_at = now(), updated_by = %s, reason = %s
               WHERE alias = 'challenger'""",
            (target, updated_by, reason),
        )
        _append_history(
            cur,
            alias="challenger",
            version_id=version,
            share=target,
            action="ramp",
            updated_by=updated_by,
            reason=reason,
            run_id=run_id,
            experiment_id=exp_id,
            day=day,
            previous=(version, share),
        )
    return {**result, "to_share": target, "changed": True}


def promote_challenger(
    conn: Any,
    *,
    updated_by: str,
    reason: str,
    run_id: str | None = None,
    day: Any = None,
) -> dict[str, Any]:
    """The challenger becomes the champion at 100%; the old champion is retired.

    In one transaction: the experiment is marked ``promoted``, the challenger alias is
    removed, the champion alias moves to the challenger's version (share 1), and the
    history gets a ``promote`` row for each alias plus a ``retire`` row for the old champion.
    Calling it again on the same ``day`` returns ``changed=False``.

    Raises:
        RegistryError: when no experiment is live and none was promoted on ``day``.
    """
    _require_who_and_why(updated_by, reason)
    day = day or _today_utc()
    with transaction(conn) as cur:
        experiment, aliases = _lock_live(cur)
        if experiment is None or "challenger" not in aliases:
            done = _done_today(cur, day, "champion", "promote", None)
            if done is not None:
                return {
                    "action": "promote",
                    "experiment_id": done["experiment_id"],
                    "version_id": done["version_id"],
                    "retired_version_id": done["previous_version_id"],
                    "changed": False,
                    "note": f"already promoted on {day}",
                }
            raise RegistryError("no live experiment: there is no challenger to promote")
        exp_id = experiment["experiment_id"]
        version, share = aliases["challenger"]
        old = aliases.get("champion")
        common = {
            "updated_by": updated_by,
            "reason": reason,
            "run_id": run_id,
            "experiment_id": exp_id,
            "day": day,
        }
        cur.execute(
            "UPDATE ml.experiments SET status = 'promoted', ended_at = now(), updated_at = now() "
            "WHERE experiment_id = %s",
            (exp_id,),
        )
        cur.execute("DELETE FROM ml.deployments WHERE alias = 'challenger'")
        _append_history(
            cur,
            alias="challenger",
            version_id=version,
            share=None,
            action="promote",
            previous=(version, share),
            **common,
        )
        if old is not None:
            _append_history(
                cur, alias="champion", version_id=old[0], share=None, action="retire", previous=old, **common
            )
        cur.execute(
            """INSERT INTO ml.deployments (alias, version_id, traffic_share, updated_by, reason)
               VALUES ('champion', %s, 1, %s, %s)
               ON CONFLICT (alias) DO UPDATE SET version_id = EXCLUDED.version_id,
                   traffic_share = EXCLUDED.traffic_share, updated_at = now(),
                   updated_by = EXCLUDED.updated_by, reason = EXCLUDED.reason""",
            (version, updated_by, reason),
        )
        _append_history(
            cur, alias="champion", version_id=version, share=1.0, action="promote", previous=old, **common
        )
    return {
        "action": "promote",
        "experiment_id": exp_id,
        "version_id": version,
        "retired_version_id": old[0] if old else None,
        "from_share": share,
        "to_share": 1.0,
        "changed": True,
    }


def rollback_challenger(
    conn: Any,
    *,
    updated_by: str,
    reason: str,
    run_id: str | None = None,
    day: Any = None,
) -> dict[str, Any]:
    """Remove the challenger; the champion keeps serving 100% of the traffic.

    The experiment is marked ``rolled_back`` and the history gets a ``rollback`` row.
    Calling it again on the same ``day`` returns ``changed=False``.

    Raises:
        RegistryError: when no experiment is live and none was rolled back on ``day``.
    """
    _require_who_and_why(updated_by, reason)
    day = day or _today_utc()
    with transaction(conn) as cur:
        experiment, aliases = _lock_live(cur)
        if experiment is None or "challenger" not in aliases:
            done = _done_today(cur, day, "challenger", "rollback", None)
            if done is not None:
                return {
                    "action": "rollback",
                    "experiment_id": done["experiment_id"],
                    "version_id": done["version_id"],
                    "changed": False,
                    "note": f"already rolled back on {day}",
                }
            raise RegistryError("no live experiment: there is no challenger to roll back")
        exp_id = experiment["experiment_id"]
        version, share = aliases["challenger"]
        cur.execute(
            "UPDATE ml.experiments SET status = 'rolled_back', ended_at = now(), updated_at = now() "
            "WHERE experiment_id = %s",
            (exp_id,),
        )
        cur.execute("DELETE FROM ml.deployments WHERE alias = 'challenger'")
        _append_history(
            cur,
            alias="challenger",
            version_id=version,
            share=None,
            action="rollback",
            updated_by=updated_by,
            reason=reason,
            run_id=run_id,
            experiment_id=exp_id,
            day=day,
            previous=(version, share),
        )
    return {
        "action": "rollback",
        "experiment_id": exp_id,
        "version_id": version,
        "from_share": share,
        "to_share": 0.0,
        "changed": True,
    }


def halt_experiment(
    conn: Any,
    *,
    updated_by: str,
    reason: str,
    run_id: str | None = None,
    day: Any = None,
) -> dict[str, Any]:
    """Freeze the live experiment (e.g. on a sample-ratio mismatch) until a person decides.

    The challenger keeps its share (its data may be fine; the assignment or logging is
    what is in doubt), no automatic ramp or promotion happens, and the history gets a
    ``halt`` row. Halting a halted experiment changes nothing.

    Raises:
        RegistryError: when no experiment is live.
    """
    _require_who_and_why(updated_by, reason)
    day = day or _today_utc()
    with transaction(conn) as cur:
        experiment, aliases = _lock_live(cur)
        if experiment is None or "challenger" not in aliases:
            raise RegistryError("no live experiment to halt")
        exp_id = experiment["experiment_id"]
        version, share = aliases["challenger"]
        result = {
            "action": "halt",
            "experiment_id": exp_id,
            "version_id": version,
            "from_share": share,
            "to_share": share,
        }
        if experiment["status"] == "halted":
            return {**result, "changed": False, "note": "already halted"}
        cur.execute(
            "UPDATE ml.experiments SET status = 'halted', updated_at = now() WHERE experiment_id = %s",
            (exp_id,),
        )
        _append_history(
            cur,
            alias="challenger",
            version_id=version,
            share=share,
            action="halt",
            updated_by=updated_by,
            reason=reason,
            run_id=run_id,
            experiment_id=exp_id,
            day=day,
            previous=(version, share),
        )
    return {**result, "changed": True}
