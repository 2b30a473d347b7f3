"""The dashboard's data functions against a real PostgreSQL, checked against ground truth.

One database per module is seeded once with generator data (12 weeks, malformed rows
included) and every ml table the dashboard reads; each panel is then compared with numbers
recomputed here in Python from the generator's own rows. Tests that change the schema or
the data use their own fresh database (``pg_dsn``).
"""

from __future__ import annotations

import json
import math
import threading
import uuid
from collections import Counter, defaultdict
from datetime import UTC, date, datetime, time, timedelta, timezone

import numpy as np
import psycopg
import pytest
from tests.dashboard_seed import PII_SUBJECT, load_generated, put_pii_subject, seed_all

from feedbackloop import dashboard_data as dd
from feedbackloop import db
from feedbackloop.synth import CHALLENGER_VERSION, CHAMPION_VERSION

START = datetime(2026, 8, 3, tzinfo=UTC)
END = datetime(2026, 10, 26, tzinfo=UTC)
AS_OF_DAY = date(2026, 10, 25)
AS_OF = dd.as_of_datetime(AS_OF_DAY)
STAGE_START = datetime(2026, 10, 12, 15, 30, tzinfo=UTC)


@pytest.fixture(scope="module")
def seeded(pg_server, tmp_path_factory):
    """A database seeded once for the module; dropped afterwards."""
    name = f"t_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(pg_server.dsn(), autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    dsn = pg_server.dsn(name)
    with db.connect(dsn) as conn:
        db.create_app_tables(conn)
        db.migrate(conn)
        seeded = seed_all(
            conn,
            n_feedback=3000,
            seed=11,
            start=START,
            end=END,
            as_of=AS_OF,
            stage_started_at=STAGE_START,
            report_dir=tmp_path_factory.mktemp("staging"),
        )
        truth = _truth(seeded.items)
        newest = max(
            (r for r in truth["corrections"] if r["to_other"] and r["created_at"] <= AS_OF),
            key=lambda r: (r["created_at"], r["correction_id"]),
        )
        put_pii_subject(conn, newest["prediction_id"])
        dd.refresh_summary(conn)
    yield {"dsn": dsn, "seeded": seeded, "truth": truth}
    with psycopg.connect(pg_server.dsn(), autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def conn(seeded):
    with db.connect(seeded["dsn"]) as c:
        yield c


# ------------------------------------------------------------------------- ground truth


def _valid_conf(c):
    return c is not None and 0 <= c <= 1


def _truth(items):
    """Per-prediction facts and feedback rows recomputed from the generator's items."""
    predictions, corrections, actions = [], [], []
    for item in items:
        p = item.predictions[0]
        pid, version, variant, category, conf, latency, predicted_at = (
            p[0],
            p[3],
            p[4],
            p[5],
            p[6],
            p[8],
            p[9],
        )
        to_other = [c for c in item.category_corrections if c[3] is not None and c[3] != category]
        corrected_to = max(to_other, key=lambda c: (c[4], c[0]))[3] if to_other else None
        predictions.append(
            {
                "prediction_id": pid,
                "day": predicted_at.astimezone(UTC).date(),
                "predicted_at": predicted_at,
                "version": version or "",
                "variant": variant or "",
                "category": corrected_to or category or "",
                "conf": conf,
                "bin": min(math.floor(conf * dd.CONFIDENCE_BINS), dd.CONFIDENCE_BINS - 1)
                if _valid_conf(conf)
                else -1,
                "corrected": corrected_to is not None,
                "latency": latency,
            }
        )
        for c in item.category_corrections:
            corrections.append(
                {
                    "correction_id": c[0],
                    "prediction_id": pid,
                    "created_at": c[4],
                    "day": c[4].astimezone(UTC).date(),
                    "confirm": c[3] is not None and c[3] == category,
                    "to_other": c[3] is not None and c[3] != category,
                    "predicted": category,
                    "corrected": c[3],
                }
            )
        for a in item.action_feedback:
            actions.append(
                {
                    "day": a[6].astimezone(UTC).date(),
                    "missed": len(a[3] or []),
                    "unnecessary": len(a[4] or []),
                }
            )
    return {"predictions": predictions, "corrections": corrections, "actions": actions}


def _in_window(day, days, last=AS_OF_DAY):
    return last - timedelta(days=days - 1) <= day <= last


# -------------------------------------------------------------------- pure functions


@pytest.mark.parametrize(
    ("days", "as_of", "first", "last"),
    [
        pytest.param(7, date(2026, 10, 25), date(2026, 10, 19), date(2026, 10, 25), id="7-days-date"),
        pytest.param(
            30,
            datetime(2026, 10, 25, 23, 59, tzinfo=UTC),
            date(2026, 9, 26),
            date(2026, 10, 25),
            id="30-days-utc",
        ),
        pytest.param(
            90,
            datetime(2026, 10, 26, 4, 0, tzinfo=timezone(timedelta(hours=5))),
            date(2026, 7, 28),
            date(2026, 10, 25),
            id="90-days-other-zone-is-converted-to-utc",
        ),
    ],
)
def test_window_covers_whole_utc_days_ending_today(days, as_of, first, last):
    w = dd.window(days, as_of)
    assert (w.first_day, w.last_day, len(w.day_list())) == (first, last, days)
    assert w.start == datetime.combine(first, time.min, tzinfo=UTC)
    assert w.end == datetime.combine(last + timedelta(days=1), time.min, tzinfo=UTC)


@pytest.mark.parametrize(
    ("days", "as_of"),
    [
        pytest.param(14, None, id="not-an-offered-window"),
        pytest.param(0, None, id="zero"),
        pytest.param(True, None, id="bool"),
        pytest.param("30", None, id="string"),
        pytest.param(30, datetime(2026, 10, 25, 12, 0), id="naive-datetime"),
        pytest.param(30, "2026-10-25", id="string-as-of"),
    ],
)
def test_window_rejects_bad_input(days, as_of):
    with pytest.raises(ValueError):
        dd.window(days, as_of)


@pytest.mark.parametrize(
    ("as_of", "expected"),
    [
        pytest.param(
            datetime(2026, 10, 25, 5, 59, tzinfo=UTC), datetime(2026, 10, 25, 6, 0, tzinfo=UTC), id="before-6"
        ),
        pytest.param(
            datetime(2026, 10, 25, 6, 0, tzinfo=UTC), datetime(2026, 10, 26, 6, 0, tzinfo=UTC), id="at-6"
        ),
        pytest.param(
            datetime(2026, 12, 31, 22, 0, tzinfo=UTC), datetime(2027, 1, 1, 6, 0, tzinfo=UTC), id="year-end"
        ),
    ],
)
def test_next_decision_is_the_next_daily_evaluation(as_of, expected):
    assert dd.next_decision_at(as_of) == expected


def test_next_decision_rejects_bad_hour():
    with pytest.raises(ValueError):
        dd.next_decision_at(AS_OF, hour_utc=24)


@pytest.mark.parametrize(
    ("uri", "expected"),
    [
        pytest.param("file:///s/run/report.json", "file:///s/run/report.html", id="file"),
        pytest.param("s3://b/p/run/report.json", "s3://b/p/run/report.html", id="s3"),
        pytest.param("s3://b/p/run/metrics.json", None, id="not-a-report"),
        pytest.param(None, None, id="none"),
    ],
)
def test_report_html_uri(uri, expected):
    assert dd.report_html_uri(uri) == expected


# ------------------------------------------------------------------------ panels (truth)


@pytest.mark.parametrize("days", [7, 30, 90])
def test_accuracy_per_version_matches_ground_truth(conn, seeded, days):
    truth = seeded["truth"]["predictions"]
    panel = dd.accuracy_trend(conn, days, AS_OF_DAY)
    assert panel["available"] and not panel["empty"]
    by_version = {v["model_version"]: v for v in panel["versions"]}
    assert set(by_version) == {CHAMPION_VERSION, CHALLENGER_VERSION}
    for version, entry in by_version.items():
        for n in dd.WINDOW_DAYS:
            rows = [r for r in truth if r["version"] == version and _in_window(r["day"], n)]
            stats = entry["windows"][str(n)]
            assert (stats["predictions"], stats["corrected"]) == (
                len(rows),
                sum(r["corrected"] for r in rows),
            )
            assert stats["ci_low"] <= stats["accuracy"] <= stats["ci_high"]
        series_truth = defaultdict(lambda: [0, 0])
        for r in truth:
            if r["version"] == version and _in_window(r["day"], days):
                series_truth[r["day"].isoformat()][0] += 1
                series_truth[r["day"].isoformat()][1] += r["corrected"]
        assert {p["day"]: [p["predictions"], p["corrected"]] for p in entry["series"]} == dict(series_truth)
    # Most predictions first: the champion serves 80% of users.
    assert panel["versions"][0]["model_version"] == CHAMPION_VERSION
    assert sum(p["predictions"] for p in panel["overall"]) == sum(
        1 for r in truth if _in_window(r["day"], days)
    )


def test_category_heatmap_matches_ground_truth(conn, seeded):
    panel = dd.category_accuracy(conn, 90, AS_OF_DAY)
    cells = Counter()
    wrong = Counter()
    for r in seeded["truth"]["predictions"]:
        if _in_window(r["day"], 90) and r["category"]:
            week = (r["day"] - timedelta(days=r["day"].weekday())).isoformat()
            cells[(r["category"], week)] += 1
            wrong[(r["category"], week)] += r["corrected"]
    got = {(c["category"], c["week"]): (c["predictions"], c["corrected"]) for c in panel["cells"]}
    assert got == {k: (n, wrong[k]) for k, n in cells.items()}
    assert panel["weeks"] == sorted({w for _, w in cells})
    order = [(c["low_sample"], c["accuracy"]) for c in panel["categories"]]
    assert order == sorted(order), "worst category first, too-rare ones last"
    assert any(c["low_sample"] for c in panel["categories"]), "malformed rows add rare unknown categories"
    assert all(c["low_sample"] == (c["predictions"] < dd.MIN_CELL_PREDICTIONS) for c in panel["cells"])


@pytest.mark.parametrize("days", [30, 90])
def test_reliability_diagram_matches_ground_truth(conn, seeded, days):
    rows = [r for r in seeded["truth"]["predictions"] if _in_window(r["day"], days)]
    panel = dd.reliability(conn, days, AS_OF_DAY)
    valid = [r for r in rows if r["bin"] >= 0]
    assert panel["invalid_confidence"] == len(rows) - len(valid) > 0  # malformed rows exist
    assert panel["predictions"] == len(valid)
    ece = 0.0
    for b in panel["bins"]:
        members = [r for r in valid if r["bin"] == b["bin"]]
        acc = sum(not r["corrected"] for r in members) / len(members)
        conf = sum(r["conf"] for r in members) / len(members)
        assert b["predictions"] == len(members)
        assert b["accuracy"] == pytest.approx(acc, abs=1e-6)
        assert b["mean_confidence"] == pytest.approx(conf, abs=1e-6)
        assert b["lower"] == pytest.approx(b["bin"] / 15, abs=1e-6)
        ece += len(members) * abs(acc - conf)
    assert {b["bin"] for b in panel["bins"]} == {r["bin"] for r in valid}
    assert panel["ece"] == pytest.approx(ece / len(valid), abs=1e-6)


def test_latency_percentiles_match_ground_truth(conn, seeded):
    panel = dd.latency_trend(conn, 30, AS_OF_DAY)
    by_day = defaultdict(list)
    for r in seeded["truth"]["predictions"]:
        lat = r["latency"]
        if _in_window(r["day"], 30) and lat is not None and lat > 0 and math.isfinite(lat):
            by_day[r["day"].isoformat()].append(lat)
    assert [p["day"] for p in panel["days"]] == sorted(by_day)
    for p in panel["days"]:
        values = np.array(by_day[p["day"]])
        assert p["n"] == len(values)
        for key, q in (("p50_ms", 50), ("p95_ms", 95), ("p99_ms", 99)):
            assert p[key] == pytest.approx(round(float(np.percentile(values, q)), 2), abs=0.011)
    assert panel["slo_ms"] == 500.0
    assert panel["days_over_slo"] == [p["day"] for p in panel["days"] if p["p95_ms"] >= 500]


def test_feedback_volume_matches_ground_truth_and_fills_every_day(conn, seeded):
    truth = seeded["truth"]
    panel = dd.feedback_volume(conn, 30, AS_OF_DAY)
    assert len(panel["days"]) == 30
    for p in panel["days"]:
        day = date.fromisoformat(p["day"])
        corr = [c for c in truth["corrections"] if c["day"] == day]
        acts = [a for a in truth["actions"] if a["day"] == day]
        assert p["confirmations"] == sum(c["confirm"] for c in corr)
        assert p["corrections"] == len(corr) - p["confirmations"]
        assert p["action_feedback"] == len(acts)
        assert p["missed_actions"] == sum(a["missed"] for a in acts)
        assert p["unnecessary_actions"] == sum(a["unnecessary"] for a in acts)
        assert p["total"] == p["corrections"] + p["confirmations"] + p["action_feedback"]
    assert panel["totals"]["total"] == sum(p["total"] for p in panel["days"])


def test_misclassifications_are_the_latest_corrections_with_pii_redacted(conn, seeded):
    panel = dd.misclassifications(conn, 7, limit=15, as_of=AS_OF_DAY)
    w = dd.window(7, AS_OF_DAY)
    expected = sorted(
        (
            c
            for c in seeded["truth"]["corrections"]
            if c["to_other"] and w.start <= c["created_at"] <= w.as_of
        ),
        key=lambda c: (c["created_at"], c["correction_id"]),
        reverse=True,
    )[:15]
    assert [r["prediction_id"] for r in panel["rows"]] == [c["prediction_id"] for c in expected]
    assert all(r["predicted_category"] != r["corrected_category"] for r in panel["rows"])
    first = panel["rows"][0]["subject"]
    assert "jane.doe@example.org" not in first and "7946" not in first
    assert "[EMAIL]" in first and "[PHONE]" in first
    assert "jane.doe" not in json.dumps(panel)
    assert first.startswith("Invoice for") and PII_SUBJECT.split(",")[0] != first.split(",")[0]


@pytest.mark.parametrize("limit", [0, 201])
def test_misclassifications_reject_bad_limit(conn, limit):
    with pytest.raises(ValueError):
        dd.misclassifications(conn, 7, limit=limit, as_of=AS_OF_DAY)


# ------------------------------------------------------------------- ml-side panels


def test_deployments_list_champion_then_challenger(conn):
    panel = dd.deployments(conn)
    assert [(d["alias"], d["version_id"], d["traffic_share"]) for d in panel["deployments"]] == [
        ("champion", CHAMPION_VERSION, 1.0),
        ("challenger", CHALLENGER_VERSION, 0.05),
    ]
    assert all(d["gate_passed"] for d in panel["deployments"])


def test_experiment_status_counts_the_stage_exactly(conn, seeded):
    panel = dd.experiment_status(conn, AS_OF_DAY)
    exp = panel["experiment"]
    assert exp["experiment_id"] == seeded["seeded"].experiment_id
    assert exp["traffic_share"] == 0.05 and exp["status"] == "running"
    for arm in ("champion", "challenger"):
        rows = [
            r
            for r in seeded["truth"]["predictions"]
            if r["predicted_at"] >= STAGE_START
            and r["day"] <= AS_OF_DAY
            and r["variant"] == arm
            and (arm == "champion" or r["version"] == CHALLENGER_VERSION)
        ]
        assert panel["arms"][arm]["predictions"] == len(rows) > 0
        assert panel["arms"][arm]["corrected"] == sum(r["corrected"] for r in rows)
    assert 0.0 <= panel["prob_beat_champion"]["accuracy"] <= 1.0
    decision = panel["latest_decision"]
    assert decision["decision_date"] == AS_OF_DAY.isoformat()
    assert decision["outcome"] in ("continue", "ramp", "promote", "rollback", "halt")
    assert 0.0 <= decision["prob_beat_champion"]["accuracy"] <= 1.0
    assert panel["prob_beat_champion"]["engagement"] == decision["prob_beat_champion"]["engagement"]
    assert panel["next_decision_at"] == "2026-10-26T06:00:00+00:00"
    assert panel["earliest_progress_at"] == (STAGE_START + timedelta(days=7)).isoformat()
    assert panel["stage_horizon_at"] == (STAGE_START + timedelta(days=14)).isoformat()
    assert panel["samples_ready"] == (min(a["predictions"] for a in panel["arms"].values()) >= 1000)


def test_alerts_review_queue_and_gate_reports(conn, seeded):
    alerts = dd.open_alerts(conn, as_of=AS_OF)
    assert [a["detector"] for a in alerts["alerts"]] == ["latency_p95", "accuracy_drop"]
    assert (alerts["open_count"], alerts["resolved_last_7_days"]) == (2, 1)
    queue = dd.review_queue(conn, AS_OF)
    assert not queue["empty"] and queue["pending"] == 30 and queue["reviewers_with_pending"] == 3
    assert sum(c["pending"] for c in queue["top_categories"]) <= queue["pending"]
    gates = dd.gate_reports(conn, limit=5)
    assert [r["golden_run_id"] for r in gates["reports"]] == seeded["seeded"].golden_run_ids
    first = gates["reports"][0]
    assert first["verdict"] == "pass" and first["report_html_uri"].endswith("/report.html")
    assert dd.gate_report_uri(conn, first["golden_run_id"]) == first["report_html_uri"]
    assert dd.gate_report_uri(conn, "' OR 1=1 --") is None


def test_dashboard_is_json_safe_and_deterministic(conn):
    first = dd.dashboard(conn, 30, AS_OF_DAY)
    again = dd.dashboard(conn, 30, AS_OF_DAY)
    text = json.dumps(first, sort_keys=True, allow_nan=False)
    assert text == json.dumps(again, sort_keys=True, allow_nan=False)
    assert set(first["panels"]) == set(dd.PANELS)
    assert all(p["available"] and not p["empty"] for p in first["panels"].values())


# --------------------------------------------------------------- refresh and schema


def _summary_rows(conn):
    out = {}
    with db.transaction(conn) as cur:
        for table in dd._SUMMARY_TABLES:
            cur.execute(f"SELECT * FROM {table} ORDER BY 1, 2, 3")
            out[table] = cur.fetchall()
    return out


def test_refresh_is_idempotent_and_ensure_summary_catches_late_feedback(pg_dsn):
    now = datetime.now(UTC)
    with db.connect(pg_dsn) as conn:
        load_generated(conn, 400, 5, now - timedelta(days=20), now)
        assert dd.ensure_summary(conn)["status"] == "built"
        built = _summary_rows(conn)
        assert dd.refresh_summary(conn)["rows"]["ml.dashboard_model_hourly"] == len(
            built["ml.dashboard_model_hourly"]
        )
        assert _summary_rows(conn) == built, "a full rebuild of the same data gives the same rows"
        assert dd.ensure_summary(conn)["status"] == "fresh"
        # Late corrections: one to a recent prediction, one to a prediction older than the lookback.
        with db.transaction(conn) as cur:
            picks = {}
            for label, lo, hi in (("recent", 2, 4), ("old", 15, 18)):
                cur.execute(
                    """SELECT p.prediction_id, p.category, (p.predicted_at AT TIME ZONE 'UTC')::date FROM app.predictions p
                       WHERE p.predicted_at BETWEEN now() - %s * interval '1 day' AND now() - %s * interval '1 day'
                         AND p.category = 'promotion'
                         AND NOT EXISTS (SELECT 1 FROM app.category_corrections c WHERE c.prediction_id = p.prediction_id)
                       ORDER BY p.prediction_id LIMIT 1""",
                    (hi, lo),
                )
                picks[label] = cur.fetchone()
                cur.execute(
                    """INSERT INTO app.category_corrections (correction_id, prediction_id, user_id, corrected_category, created_at)
                       VALUES (%s, %s, 'u-late', 'phishing', now())""",
                    (f"cor-late-{label}", picks[label][0]),
                )
            cur.execute(
                "UPDATE ml.dashboard_refresh SET refreshed_at = refreshed_at - interval '11 minutes' RETURNING refreshed_at"
            )
            previous = cur.fetchone()[0]

        def corrected_on(day):
            with db.transaction(conn) as cur:
                cur.execute(
                    "SELECT sum(corrected) FROM ml.dashboard_model_hourly WHERE (hour AT TIME ZONE 'UTC')::date = %s",
                    (day,),
                )
                return int(cur.fetchone()[0])

        before = {k: corrected_on(v[2]) for k, v in picks.items()}
        result = dd.ensure_summary(conn)
        assert result["status"] == "refreshed"
        assert result["since"] == (previous - dd.DEFAULT_LOOKBACK).astimezone(UTC).date().isoformat()
        assert corrected_on(picks["recent"][2]) == before["recent"] + 1
        assert corrected_on(picks["old"][2]) == before["old"], (
            "older than the lookback: waits for a full rebuild"
        )
        dd.refresh_summary(conn)
        assert corrected_on(picks["old"][2]) == before["old"] + 1


def test_ensure_summary_does_not_wait_for_a_concurrent_refresh(pg_dsn):
    with db.connect(pg_dsn) as conn:
        load_generated(conn, 50, 3, datetime.now(UTC) - timedelta(days=3), datetime.now(UTC))
        dd.refresh_summary(conn)
        with db.transaction(conn) as cur:
            cur.execute("UPDATE ml.dashboard_refresh SET refreshed_at = now() - interval '1 hour'")
        holding, release = threading.Event(), threading.Event()

        def hold_lock():
            with db.connect(pg_dsn) as other, db.transaction(other) as cur:
                cur.execute("SELECT pg_advisory_xact_lock(%s)", (dd._REFRESH_LOCK,))
                holding.set()
                release.wait(10)

        t = threading.Thread(target=hold_lock)
        t.start()
        try:
            assert holding.wait(10)
            assert dd.ensure_summary(conn)["status"] == "busy"
        finally:
            release.set()
            t.join()
        assert dd.ensure_summary(conn)["status"] == "refreshed"


@pytest.mark.parametrize(
    ("kwargs", "func"),
    [
        pytest.param({"max_age": timedelta(seconds=-1)}, dd.ensure_summary, id="negative-max-age"),
        pytest.param({"lookback": timedelta(days=-1)}, dd.ensure_summary, id="negative-lookback"),
        pytest.param(
            {"since": date(2026, 10, 2), "until": date(2026, 10, 1)},
            dd.refresh_summary,
            id="since-after-until",
        ),
    ],
)
def test_refresh_rejects_bad_arguments(pg_dsn, kwargs, func):
    with db.connect(pg_dsn) as conn, pytest.raises(ValueError):
        func(conn, **kwargs)


def test_missing_tables_give_explicit_unavailable_panels(pg_dsn):
    with db.connect(pg_dsn) as conn:
        load_generated(conn, 60, 4, datetime.now(UTC) - timedelta(days=5), datetime.now(UTC))
        with db.transaction(conn) as cur:
            cur.execute(
                "DROP TABLE ml.alerts, ml.review_queue, ml.experiment_decisions, ml.dashboard_category_daily"
            )
        assert dd.ensure_summary(conn)["status"] == "missing"
        data = dd.dashboard(conn, 7)
        panels = data["panels"]
        for name, table in (
            ("alerts", "ml.alerts"),
            ("review_queue", "ml.review_queue"),
            ("category_accuracy", "ml.dashboard_category_daily"),
        ):
            assert panels[name]["available"] is False and panels[name]["empty"] is True
            assert table in panels[name]["reason"]
        assert panels["experiment"]["available"] and panels["experiment"]["decisions_available"] is False
        assert panels["misclassifications"]["available"] and not panels["misclassifications"]["empty"]
        assert panels["accuracy"]["available"] and panels["accuracy"]["empty"], "never refreshed: no rows yet"
        json.dumps(data, allow_nan=False)


def test_empty_database_gives_empty_states(pg_dsn):
    with db.connect(pg_dsn) as conn:
        assert dd.ensure_summary(conn)["status"] == "built"
        panels = dd.dashboard(conn, 90)["panels"]
    assert all(p["available"] and p["empty"] for p in panels.values())
    assert panels["experiment"]["experiment"] is None and panels["feedback_volume"]["totals"]["total"] == 0
