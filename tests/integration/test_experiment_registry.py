"""The A/B experiment against a real PostgreSQL: registry transitions, audit rows, database
invariants, once-per-day decisions under concurrency, and a whole experiment end to end.

Each test gets a fresh database with the app tables and every ``ml`` migration applied
(``pg_dsn`` in tests/conftest.py).
"""

from __future__ import annotations

import json
import random
import threading
import time as _time
from datetime import UTC, date, datetime, timedelta

import psycopg
import pytest

from feedbackloop import db, registry
from feedbackloop.assignment import assign
from feedbackloop.experiment import Override, Policy, evaluate_experiment

DAY = date(2026, 12, 1)
RUN = "scheduled__2026-12-01T06:00:00+00:00"
BOT = f"experiment_evaluation/{RUN}"


@pytest.fixture
def conn(pg_dsn):
    with db.connect(pg_dsn) as c:
        yield c


def _version(conn, version_id: str, passed: bool = True) -> None:
    with db.transaction(conn) as cur:
        cur.execute(
            """INSERT INTO ml.model_versions (version_id, spec, dag_id, run_id, gate_passed)
               VALUES (%s, %s::jsonb, 'feedback_retraining', %s, %s)""",
            (version_id, json.dumps({"version_id": version_id}), f"run-{version_id}", passed),
        )


def _champion(conn, version_id: str) -> None:
    _version(conn, version_id)
    with db.transaction(conn) as cur:
        cur.execute(
            """INSERT INTO ml.deployments (alias, version_id, traffic_share, updated_by, reason)
               VALUES ('champion', %s, 1, 'seed', 'initial champion')""",
            (version_id,),
        )


def _challenger(conn, version_id: str, share: float = 0.05) -> dict:
    _version(conn, version_id)
    registry.deploy_challenger(
        conn, version_id, share, updated_by="feedback_retraining/run", reason="passed gate"
    )
    return registry.get_live_experiment(conn)


def _rows(conn, sql: str, *params) -> list[tuple]:
    with db.transaction(conn) as cur:
        cur.execute(sql, params)
        return cur.fetchall()


def _history(conn) -> list[tuple]:
    return _rows(
        conn,
        """SELECT alias, version_id, traffic_share::float8, action, updated_by, reason, run_id, experiment_id,
                  decision_date, previous_version_id, previous_traffic_share::float8
           FROM ml.deployment_history WHERE experiment_id IS NOT NULL ORDER BY id""",
    )


def _aliases(conn) -> dict[str, tuple[str, float]]:
    return {
        a: (v, float(s))
        for a, v, s in _rows(conn, "SELECT alias, version_id, traffic_share FROM ml.deployments")
    }


# --------------------------------------------------------------------------- transitions


def test_deploying_a_challenger_opens_an_experiment_the_app_can_read(conn):
    _champion(conn, "v0")
    experiment = _challenger(conn, "v1")
    assert experiment["experiment_id"] == "ab-v1-1"
    assert experiment["status"] == "running"
    assert experiment["champion_version"] == "v0"
    assert experiment["current_share"] == 0.05
    assert experiment["stage_started_at"] == experiment["started_at"]
    config = registry.serving_config(conn)
    assert config["champion_version"] == "v0"
    assert config["challenger_version"] == "v1"
    assert config["challenger_share"] == 0.05
    assert config["experiment_id"] == "ab-v1-1"


def test_ramp_then_promote_moves_the_aliases_and_writes_the_audit_history(conn):
    _champion(conn, "v0")
    exp_id = _challenger(conn, "v1")["experiment_id"]
    day1, day2, day3 = DAY, DAY + timedelta(days=1), DAY + timedelta(days=2)

    first = registry.ramp_challenger(conn, 0.25, updated_by=BOT, reason="no harm at 5%", run_id=RUN, day=day1)
    assert first["changed"] is True and (first["from_share"], first["to_share"]) == (0.05, 0.25)
    stage_start = registry.get_live_experiment(conn)["stage_started_at"]
    assert registry.get_live_experiment(conn)["current_share"] == 0.25

    # A second ramp on the same day does nothing, whatever it asks for.
    again = registry.ramp_challenger(conn, 0.5, updated_by=BOT, reason="retry", run_id=RUN, day=day1)
    assert again["changed"] is False and again["to_share"] == 0.25
    assert _aliases(conn)["challenger"] == ("v1", 0.25)

    registry.ramp_challenger(conn, 0.5, updated_by=BOT, reason="no harm at 25%", run_id=RUN, day=day2)
    assert registry.get_live_experiment(conn)["stage_started_at"] >= stage_start

    promoted = registry.promote_challenger(
        conn, updated_by=BOT, reason="significant win", run_id=RUN, day=day3
    )
    assert promoted["changed"] is True
    assert promoted["version_id"] == "v1" and promoted["retired_version_id"] == "v0"
    assert _aliases(conn) == {"champion": ("v1", 1.0)}
    assert registry.get_experiment(conn, exp_id)["status"] == "promoted"
    assert registry.get_experiment(conn, exp_id)["ended_at"] is not None
    config = registry.serving_config(conn)
    assert (config["champion_version"], config["challenger_version"], config["challenger_share"]) == (
        "v1",
        None,
        0,
    )

    assert _history(conn) == [
        ("challenger", "v1", 0.25, "ramp", BOT, "no harm at 5%", RUN, exp_id, day1, "v1", 0.05),
        ("challenger", "v1", 0.5, "ramp", BOT, "no harm at 25%", RUN, exp_id, day2, "v1", 0.25),
        ("challenger", "v1", None, "promote", BOT, "significant win", RUN, exp_id, day3, "v1", 0.5),
        ("champion", "v0", None, "retire", BOT, "significant win", RUN, exp_id, day3, "v0", 1.0),
        ("champion", "v1", 1.0, "promote", BOT, "significant win", RUN, exp_id, day3, "v0", 1.0),
    ]
    (created,) = _rows(conn, "SELECT bool_and(created_at IS NOT NULL) FROM ml.deployment_history")[0]
    assert created

    # Idempotent per day: the same promotion again is a no-op; on another day it is an error.
    again = registry.promote_challenger(conn, updated_by=BOT, reason="retry", run_id=RUN, day=day3)
    assert again["changed"] is False and again["version_id"] == "v1"
    assert len(_history(conn)) == 5
    with pytest.raises(registry.RegistryError, match="no challenger to promote"):
        registry.promote_challenger(conn, updated_by=BOT, reason="late", day=day3 + timedelta(days=1))


def test_first_promotion_without_a_previous_champion_retires_nothing(conn):
    _challenger(conn, "v1")
    result = registry.promote_challenger(conn, updated_by="alice", reason="first model", day=DAY)
    assert result["retired_version_id"] is None
    assert _aliases(conn) == {"champion": ("v1", 1.0)}
    assert [r[3] for r in _history(conn)] == ["promote", "promote"]


def test_rollback_removes_the_challenger_and_the_champion_keeps_everything(conn):
    _champion(conn, "v0")
    exp_id = _challenger(conn, "v1")["experiment_id"]
    registry.ramp_challenger(conn, 0.25, updated_by=BOT, reason="ramp", day=DAY)
    result = registry.rollback_challenger(conn, updated_by=BOT, reason="accuracy worse", run_id=RUN, day=DAY)
    assert result == {
        "action": "rollback",
        "experiment_id": exp_id,
        "version_id": "v1",
        "from_share": 0.25,
        "to_share": 0.0,
        "changed": True,
    }
    assert _aliases(conn) == {"champion": ("v0", 1.0)}
    assert registry.get_experiment(conn, exp_id)["status"] == "rolled_back"
    assert registry.serving_config(conn)["experiment_id"] is None
    assert _history(conn)[-1] == (
        "challenger",
        "v1",
        None,
        "rollback",
        BOT,
        "accuracy worse",
        RUN,
        exp_id,
        DAY,
        "v1",
        0.25,
    )
    assert registry.rollback_challenger(conn, updated_by=BOT, reason="retry", day=DAY)["changed"] is False
    with pytest.raises(registry.RegistryError, match="no challenger to roll back"):
        registry.rollback_challenger(conn, updated_by=BOT, reason="again", day=DAY + timedelta(days=1))


def test_halt_freezes_the_experiment_but_keeps_serving_the_challenger(conn):
    _champion(conn, "v0")
    exp_id = _challenger(conn, "v1")["experiment_id"]
    assert registry.halt_experiment(conn, updated_by=BOT, reason="SRM", day=DAY)["changed"] is True
    assert registry.halt_experiment(conn, updated_by=BOT, reason="SRM", day=DAY)["changed"] is False
    assert registry.get_live_experiment(conn)["status"] == "halted"
    assert registry.serving_config(conn)["challenger_share"] == 0.05
    with pytest.raises(registry.RegistryError, match="halted"):
        registry.ramp_challenger(conn, 0.25, updated_by=BOT, reason="ramp", day=DAY + timedelta(days=1))
    assert registry.rollback_challenger(conn, updated_by="alice", reason="bad logging", day=DAY)["changed"]
    assert registry.get_experiment(conn, exp_id)["status"] == "rolled_back"


def test_a_new_challenger_supersedes_the_live_experiment(conn):
    _champion(conn, "v0")
    first = _challenger(conn, "v1")["experiment_id"]
    second = _challenger(conn, "v2")["experiment_id"]
    assert (first, second) == ("ab-v1-1", "ab-v2-1")
    assert registry.get_experiment(conn, first)["status"] == "superseded"
    registry.rollback_challenger(conn, updated_by=BOT, reason="worse", day=DAY)
    registry.deploy_challenger(conn, "v1", 0.05, updated_by="alice", reason="retry v1")
    assert registry.get_live_experiment(conn)["experiment_id"] == "ab-v1-2"


@pytest.mark.parametrize(
    ("to_share", "message"),
    [
        pytest.param(0.1, "ramp steps", id="not-a-step"),
        pytest.param(1.0, "ramp steps", id="100-percent-is-promotion"),
        pytest.param(0.0, "ramp steps", id="zero"),
    ],
)
def test_ramp_rejects_shares_outside_the_steps(conn, to_share, message):
    _champion(conn, "v0")
    _challenger(conn, "v1")
    with pytest.raises(ValueError, match=message):
        registry.ramp_challenger(conn, to_share, updated_by=BOT, reason="x", day=DAY)


def test_ramp_down_and_transitions_without_who_or_why_are_refused(conn):
    _champion(conn, "v0")
    _challenger(conn, "v1", 0.25)
    with pytest.raises(ValueError, match="roll back instead"):
        registry.ramp_challenger(conn, 0.05, updated_by=BOT, reason="x", day=DAY)
    with pytest.raises(ValueError, match="reason"):
        registry.rollback_challenger(conn, updated_by=BOT, reason="  ", day=DAY)
    with pytest.raises(ValueError, match="updated_by"):
        registry.promote_challenger(conn, updated_by="", reason="x", day=DAY)


def test_transitions_without_an_experiment_are_errors(conn):
    _champion(conn, "v0")
    with pytest.raises(registry.RegistryError):
        registry.ramp_challenger(conn, 0.25, updated_by=BOT, reason="x", day=DAY)
    with pytest.raises(registry.RegistryError):
        registry.halt_experiment(conn, updated_by=BOT, reason="x", day=DAY)
    assert registry.get_live_experiment(conn) is None
    assert registry.serving_config(conn)["challenger_share"] == 0.0


# ---------------------------------------------------------------------------- invariants


@pytest.mark.parametrize(
    ("sql", "error"),
    [
        pytest.param(
            "UPDATE ml.deployments SET traffic_share = 0.10 WHERE alias = 'challenger'",
            psycopg.errors.CheckViolation,
            id="challenger-share-off-the-ramp",
        ),
        pytest.param(
            "UPDATE ml.deployments SET traffic_share = 1 WHERE alias = 'challenger'",
            psycopg.errors.CheckViolation,
            id="challenger-at-100-percent",
        ),
        pytest.param(
            "UPDATE ml.deployments SET traffic_share = 0.5 WHERE alias = 'champion'",
            psycopg.errors.CheckViolation,
            id="champion-share-below-1",
        ),
        pytest.param(
            "UPDATE ml.deployments SET version_id = 'v0' WHERE alias = 'challenger'",
            psycopg.errors.CheckViolation,
            id="challenger-same-as-champion",
        ),
        pytest.param(
            "UPDATE ml.deployments SET version_id = 'failed' WHERE alias = 'challenger'",
            psycopg.errors.CheckViolation,
            id="version-without-passing-gate",
        ),
        pytest.param(
            "INSERT INTO ml.deployments (alias, version_id, traffic_share, updated_by, reason) "
            "VALUES ('challenger', 'v2', 0.05, 'x', 'y')",
            psycopg.errors.UniqueViolation,
            id="second-challenger",
        ),
        pytest.param(
            "INSERT INTO ml.experiments (experiment_id, challenger_version, started_at, current_share, "
            "stage_started_at, status) VALUES ('ab-v2-1', 'v2', now(), 0.05, now(), 'running')",
            psycopg.errors.UniqueViolation,
            id="second-live-experiment",
        ),
        pytest.param(
            "UPDATE ml.experiments SET status = 'promoted'",
            psycopg.errors.CheckViolation,
            id="ended-experiment-without-end-time",
        ),
        pytest.param(
            "INSERT INTO ml.experiment_decisions (experiment_id, decision_date, outcome, source, from_share, "
            "reason, statistics, policy, decided_by) "
            "VALUES ('ab-v1-1', '2026-12-01', 'ship-it', 'auto', 0.05, 'x', '{}', '{}', 'x')",
            psycopg.errors.CheckViolation,
            id="unknown-outcome",
        ),
        pytest.param(
            "INSERT INTO ml.experiment_decisions (experiment_id, decision_date, outcome, source, from_share, "
            "reason, statistics, policy, decided_by) "
            "VALUES ('ab-v1-1', '2026-12-01', 'promote', 'manual', 0.05, ' ', '{}', '{}', 'alice')",
            psycopg.errors.CheckViolation,
            id="override-without-reason",
        ),
        pytest.param(
            "INSERT INTO ml.deployment_history (alias, version_id, action, updated_by, reason, experiment_id, "
            "decision_date) VALUES ('challenger', 'v1', 'ramp', 'x', 'y', 'ab-v1-1', '2026-12-01'), "
            "('challenger', 'v1', 'ramp', 'x', 'y', 'ab-v1-1', '2026-12-01')",
            psycopg.errors.UniqueViolation,
            id="two-ramps-on-one-day",
        ),
    ],
)
def test_the_database_enforces_the_invariants(conn, sql, error):
    _champion(conn, "v0")
    _challenger(conn, "v1")
    _version(conn, "v2")
    _version(conn, "failed", passed=False)
    with pytest.raises(error), db.transaction(conn) as cur:
        cur.execute(sql)
    # The failed statement changed nothing.
    assert _aliases(conn) == {"champion": ("v0", 1.0), "challenger": ("v1", 0.05)}


def test_one_decision_per_experiment_and_day_in_the_database(conn):
    _champion(conn, "v0")
    _challenger(conn, "v1")
    insert = (
        "INSERT INTO ml.experiment_decisions (experiment_id, decision_date, outcome, source, from_share, reason, "
        "statistics, policy, decided_by) VALUES ('ab-v1-1', %s, 'continue', 'auto', 0.05, 'x', '{}', '{}', 'x')"
    )
    with db.transaction(conn) as cur:
        cur.execute(insert, (DAY,))
    with pytest.raises(psycopg.errors.UniqueViolation), db.transaction(conn) as cur:
        cur.execute(insert, (DAY,))


# ----------------------------------------------------------------- synthetic app traffic


def _copy_traffic(conn, predictions, corrections, events) -> None:
    with conn.cursor() as cur:
        with cur.copy(
            "COPY app.predictions (prediction_id, email_id, user_id, model_version, variant, category, "
            "confidence, latency_ms, predicted_at) FROM STDIN"
        ) as cp:
            for row in predictions:
                cp.write_row(row)
        with cur.copy(
            "COPY app.category_corrections (correction_id, prediction_id, user_id, corrected_category, created_at) "
            "FROM STDIN"
        ) as cp:
            for row in corrections:
                cp.write_row(row)
        with cur.copy(
            "COPY app.engagement_events (event_id, prediction_id, user_id, event_type, created_at) FROM STDIN"
        ) as cp:
            for row in events:
                cp.write_row(row)
    conn.commit()


def _day_of_traffic(
    conn,
    rng: random.Random,
    *,
    experiment: dict,
    champion: str,
    start: datetime,
    users: int,
    accuracy: dict[str, float],
    engagement: float = 0.3,
    share: float | None = None,
    tag: str = "",
) -> None:
    """One day of predictions from ``users`` distinct users, assigned like the app would."""
    share = experiment["current_share"] if share is None else share
    predictions, corrections, events = [], [], []
    pool = rng.sample(range(200_000), users)
    for i, u in enumerate(pool):
        user = f"user-{u}"
        variant = assign(experiment["experiment_id"], user, share)
        version = experiment["challenger_version"] if variant == "challenger" else champion
        pid = f"p-{tag}-{start:%Y%m%d}-{i}"
        at = start + timedelta(seconds=rng.uniform(0, 86_000))
        latency = rng.lognormvariate(5.0, 0.3)
        predictions.append((pid, f"e-{pid}", user, version, variant, "bills", 0.9, latency, at))
        if rng.random() > accuracy[variant]:
            corrections.append((f"c-{pid}", pid, user, "finance", at + timedelta(seconds=60)))
        if rng.random() < engagement:
            events.append((f"ev-{pid}", pid, user, "action_taken", at + timedelta(seconds=30)))
    _copy_traffic(conn, predictions, corrections, events)


def _backdate_experiment(conn, experiment_id: str, started_at: datetime) -> None:
    with db.transaction(conn) as cur:
        cur.execute(
            "UPDATE ml.experiments SET started_at = %s, stage_started_at = %s WHERE experiment_id = %s",
            (started_at, started_at, experiment_id),
        )


def _decisions(conn) -> list[tuple]:
    return _rows(
        conn,
        "SELECT decision_date, outcome, source, from_share::float8, to_share::float8 FROM ml.experiment_decisions "
        "ORDER BY decision_date",
    )


# ------------------------------------------------------------------ evaluation, per day


def _ready_to_ramp(conn, *, users: int = 6000, accuracy=None) -> tuple[dict, datetime]:
    """A 5% experiment live for 8 days with enough data for a ramp under a small-sample policy."""
    _champion(conn, "v0")
    experiment = _challenger(conn, "v1")
    start = datetime(2026, 11, 22, tzinfo=UTC)
    _backdate_experiment(conn, experiment["experiment_id"], start)
    experiment = registry.get_live_experiment(conn)
    rng = random.Random(7)
    for d in range(8):
        _day_of_traffic(
            conn,
            rng,
            experiment=experiment,
            champion="v0",
            start=start + timedelta(days=d),
            users=users // 8,
            accuracy=accuracy or {"champion": 0.9, "challenger": 0.96},
            tag="r",
        )
    return experiment, start + timedelta(days=8)


SMALL = Policy(min_samples_per_arm=30)


def test_evaluation_records_one_decision_per_day_and_applies_it_once(conn):
    experiment, as_of = _ready_to_ramp(conn)
    first = evaluate_experiment(conn, DAY, RUN, updated_by=BOT, as_of=as_of, policy=SMALL)
    assert first.recorded is True
    assert (first.outcome, first.from_share, first.to_share) == ("ramp", 0.05, 0.25)
    assert first.registry_change["changed"] is True
    assert first.statistics["challenger"]["predictions"] >= 30
    assert first.statistics["srm"]["mismatch"] is False
    assert _aliases(conn)["challenger"] == ("v1", 0.25)

    # A retry of the same run (or a second trigger) on the same day reads the decision back.
    again = evaluate_experiment(conn, DAY, RUN + "-retry", updated_by=BOT, as_of=as_of, policy=SMALL)
    assert again.recorded is False
    assert (again.outcome, again.to_share, again.run_id) == ("ramp", 0.25, RUN)
    assert _aliases(conn)["challenger"] == ("v1", 0.25)
    assert len(_decisions(conn)) == 1
    assert [h[3] for h in _history(conn)] == ["ramp"]

    (stored,) = _rows(conn, "SELECT statistics, policy, reason, decided_by FROM ml.experiment_decisions")
    assert stored[0]["accuracy"]["method"] in ("chi2", "fisher")
    assert stored[1]["min_samples_per_arm"] == 30
    assert stored[2] == first.reason and stored[3] == BOT
    summary = first.to_summary()
    assert json.loads(json.dumps(summary)) == summary


def test_racing_evaluations_on_the_same_day_produce_one_decision_and_one_change(conn, pg_dsn):
    experiment, as_of = _ready_to_ramp(conn)
    # Hold the registry's table lock so the first evaluation to insert its decision has to
    # wait inside its transaction; the second then blocks on the in-flight decision row.
    blocker = db.connect(pg_dsn)
    blocker.execute("LOCK TABLE ml.deployments IN SHARE ROW EXCLUSIVE MODE")
    results: list = []
    errors: list = []

    def run(name: str) -> None:
        try:
            with db.connect(pg_dsn) as c:
                results.append(evaluate_experiment(c, DAY, name, updated_by=name, as_of=as_of, policy=SMALL))
        except Exception as exc:  # noqa: BLE001 - reported by the assertion below
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(f"run-{i}",)) for i in (1, 2)]
    for t in threads:
        t.start()
    deadline = _time.monotonic() + 20
    waiting = 0
    while _time.monotonic() < deadline:
        (waiting,) = _rows(
            conn,
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'",
        )[0]
        if waiting >= 2:
            break
        _time.sleep(0.05)
    assert waiting == 2, "both evaluations should be blocked inside their transactions"
    blocker.rollback()
    blocker.close()
    for t in threads:
        t.join(30)
    assert errors == []
    assert sorted(r.recorded for r in results) == [False, True]
    assert {(r.outcome, r.to_share, r.run_id) for r in results} == {
        next((r.outcome, r.to_share, r.run_id) for r in results if r.recorded)
    }
    assert len(_decisions(conn)) == 1
    assert [(h[3], h[2]) for h in _history(conn)] == [("ramp", 0.25)]
    assert _aliases(conn)["challenger"] == ("v1", 0.25)


def test_a_manual_override_replaces_the_days_automatic_decision(conn):
    experiment, as_of = _ready_to_ramp(conn)
    auto = evaluate_experiment(conn, DAY, RUN, updated_by=BOT, as_of=as_of, policy=SMALL)
    assert auto.outcome == "ramp"
    override = Override("force_rollback", "support tickets about wrong folders", requested_by="alice")
    manual = evaluate_experiment(conn, DAY, "manual__1", override, updated_by="x", as_of=as_of, policy=SMALL)
    assert manual.recorded is True
    assert (manual.outcome, manual.source, manual.decided_by) == ("rollback", "manual", "alice")
    assert "support tickets" in manual.reason
    assert _aliases(conn) == {"champion": ("v0", 1.0)}
    (superseded,) = _rows(conn, "SELECT superseded FROM ml.experiment_decisions")[0]
    assert (superseded["outcome"], superseded["source"], superseded["run_id"]) == ("ramp", "auto", RUN)
    history = _history(conn)
    assert [(h[3], h[4], h[6]) for h in history] == [("ramp", BOT, RUN), ("rollback", "alice", "manual__1")]
    assert "support tickets" in history[-1][5]

    # The same override again (a retry) returns the recorded decision; a contradicting one fails.
    assert evaluate_experiment(conn, DAY, "manual__1", override, as_of=as_of).recorded is False
    with pytest.raises(registry.RegistryError, match="nothing to promote"):
        evaluate_experiment(conn, DAY, "manual__2", Override("force_promote", "why not", "bob"), as_of=as_of)


def test_force_promote_on_a_fresh_experiment(conn):
    _champion(conn, "v0")
    _challenger(conn, "v1")
    result = evaluate_experiment(
        conn,
        DAY,
        "manual__1",
        Override("force_promote", "hotfix model", "alice"),
        as_of=datetime(2026, 12, 5, tzinfo=UTC),
    )
    assert (result.outcome, result.source, result.to_share) == ("promote", "manual", 1.0)
    assert _aliases(conn) == {"champion": ("v1", 1.0)}


@pytest.mark.parametrize(
    ("action", "reason"),
    [
        pytest.param("force_promote", "", id="no-reason"),
        pytest.param("force_rollback", "   ", id="blank-reason"),
        pytest.param("force_ramp", "x", id="unknown-action"),
    ],
)
def test_invalid_overrides_are_rejected(action, reason):
    with pytest.raises(ValueError):
        Override(action, reason, "alice")


def test_no_live_experiment_is_reported_not_recorded(conn):
    _champion(conn, "v0")
    result = evaluate_experiment(conn, DAY, RUN)
    assert (result.outcome, result.experiment_id, result.recorded) == ("none", None, False)
    assert _decisions(conn) == []
    with pytest.raises(registry.RegistryError, match="no live experiment"):
        evaluate_experiment(conn, DAY, RUN, Override("force_rollback", "x", "alice"))


def test_sample_ratio_mismatch_halts_and_stays_halted_until_a_person_decides(conn):
    _champion(conn, "v0")
    experiment = _challenger(conn, "v1")
    start = datetime(2026, 11, 22, tzinfo=UTC)
    _backdate_experiment(conn, experiment["experiment_id"], start)
    experiment = registry.get_live_experiment(conn)
    rng = random.Random(3)
    for d in range(3):  # the app assigns 10% although the registry says 5%
        _day_of_traffic(
            conn,
            rng,
            experiment=experiment,
            champion="v0",
            start=start + timedelta(days=d),
            users=2000,
            share=0.10,
            accuracy={"champion": 0.9, "challenger": 0.9},
            tag="srm",
        )
    as_of = start + timedelta(days=3)
    halted = evaluate_experiment(conn, DAY, RUN, updated_by=BOT, as_of=as_of)
    assert halted.outcome == "halt" and halted.alert
    assert "sample-ratio mismatch" in halted.reason
    assert halted.statistics["srm"]["p_value"] < 0.001
    assert registry.get_live_experiment(conn)["status"] == "halted"
    assert _aliases(conn)["challenger"] == ("v1", 0.05)  # frozen, not removed

    next_day = evaluate_experiment(conn, DAY + timedelta(days=1), RUN, updated_by=BOT, as_of=as_of)
    assert next_day.outcome == "halt" and "waiting for a manual" in next_day.reason
    assert next_day.registry_change["changed"] is False
    resolved = evaluate_experiment(
        conn,
        DAY + timedelta(days=1),
        "manual__x",
        Override("force_rollback", "assignment bug in app 4.2", "carol"),
        as_of=as_of,
    )
    assert resolved.outcome == "rollback"
    assert [h[3] for h in _history(conn)] == ["halt", "rollback"]


# ------------------------------------------------------------------------- end to end


def test_a_truly_better_challenger_ramps_and_is_promoted_through_the_database(conn):
    """Day by day: the app's traffic follows the registry's share, the evaluation decides."""
    _champion(conn, "v0")
    experiment = _challenger(conn, "v1")
    exp_id = experiment["experiment_id"]
    start = datetime(2026, 11, 1, tzinfo=UTC)
    _backdate_experiment(conn, exp_id, start)
    rng = random.Random(11)
    outcomes = []
    for d in range(20):
        experiment = registry.get_live_experiment(conn)
        if experiment is None:
            break
        _day_of_traffic(
            conn,
            rng,
            experiment=experiment,
            champion="v0",
            start=start + timedelta(days=d),
            users=4000,
            accuracy={"champion": 0.90, "challenger": 0.94},
            tag="e2e",
        )
        as_of = start + timedelta(days=d + 1)
        result = evaluate_experiment(conn, date(2026, 11, 2) + timedelta(days=d), f"run-{d}", as_of=as_of)
        outcomes.append(result.outcome)
        print(
            f"day {d:2d} look {result.statistics['look']:2d} at {result.from_share:.0%}: {result.outcome}: {result.reason}"
        )
        if result.outcome == "ramp":
            # The ramp took effect at the simulated evaluation time, not the wall clock's.
            with db.transaction(conn) as cur:
                cur.execute(
                    "UPDATE ml.experiments SET stage_started_at = %s WHERE experiment_id = %s",
                    (as_of, exp_id),
                )
    assert outcomes[:6] == ["continue"] * 6  # fewer than 7 days live
    assert outcomes.count("ramp") == 2
    assert outcomes[-1] == "promote"
    assert "rollback" not in outcomes and "halt" not in outcomes
    assert _aliases(conn) == {"champion": ("v1", 1.0)}
    assert registry.get_experiment(conn, exp_id)["status"] == "promoted"
    ramps = [(d[3], d[4]) for d in _decisions(conn) if d[1] == "ramp"]
    assert ramps == [(0.05, 0.25), (0.25, 0.5)]
    (stats,) = _rows(conn, "SELECT statistics FROM ml.experiment_decisions WHERE outcome = 'promote'")[0]
    assert stats["accuracy"]["challenger_rate"] > stats["accuracy"]["champion_rate"]
    assert stats["accuracy"]["z"] >= stats["efficacy_boundary"]
    assert stats["srm"]["mismatch"] is False
