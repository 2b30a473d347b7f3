-- Production monitoring state: alert incidents, the human-review queue and contributor stats.
-- See feedbackloop.monitoring / alerts / review / contributors.

-- ------------------------------------------------------------------------------- alerts
-- One row per incident of a detector on a key ('all', or a category for the imbalance
-- detector). An incident opens once; while it stays open, repeats only move last_seen_at
-- and occurrences; when the signal clears it is resolved. The partial unique index makes
-- "at most one open incident per (detector, key)" a database fact, so two racing
-- evaluations cannot both open one (the loser's INSERT ... ON CONFLICT DO NOTHING finds it).
-- *_notified_at record that Slack accepted the message; NULL means "not sent yet", and the
-- next evaluation retries it (Slack down must delay a message, not lose it).
CREATE TABLE IF NOT EXISTS ml.alerts (
    alert_id             bigserial PRIMARY KEY,
    detector             text NOT NULL,
    key                  text NOT NULL DEFAULT 'all',
    status               text NOT NULL CHECK (status IN ('open', 'resolved')),
    metric               text NOT NULL,
    value                double precision,
    threshold            double precision,
    baseline             double precision,
    window_start         timestamptz NOT NULL,
    window_end           timestamptz NOT NULL,
    opened_at            timestamptz NOT NULL,      -- evaluation time (end of the window) that opened it
    last_seen_at         timestamptz NOT NULL,      -- latest evaluation that still saw the signal
    resolved_at          timestamptz,               -- evaluation time that saw it clear
    occurrences          integer NOT NULL DEFAULT 1 CHECK (occurrences >= 1),
    summary              text NOT NULL,
    evidence             jsonb NOT NULL,
    resolution_evidence  jsonb,
    opened_by            text NOT NULL,             -- <dag_id>/<run_id>
    resolved_by          text,
    open_notified_at     timestamptz,
    resolve_notified_at  timestamptz,
    created_at           timestamptz NOT NULL DEFAULT now(),
    updated_at           timestamptz NOT NULL DEFAULT now(),
    CHECK ((status = 'open') = (resolved_at IS NULL)),
    CHECK (resolved_at IS NULL OR resolved_at >= opened_at),
    CHECK (last_seen_at >= opened_at)
);

CREATE UNIQUE INDEX IF NOT EXISTS alerts_one_open_incident
    ON ml.alerts (detector, key) WHERE status = 'open';
CREATE INDEX IF NOT EXISTS alerts_detector_key_idx ON ml.alerts (detector, key, opened_at);

-- ------------------------------------------------------------------------- review queue
-- Low-confidence predictions routed to a human reviewer. The primary key on prediction_id
-- means a prediction is queued at most once, whatever reruns or races happen (inserts use
-- ON CONFLICT DO NOTHING). queue_date is the UTC day the item was queued: daily caps
-- (overall and per reviewer) count rows per queue_date. The app shows a reviewer the
-- rows with status 'pending' and reviewer_id = them, highest priority first.
CREATE TABLE IF NOT EXISTS ml.review_queue (
    prediction_id       text PRIMARY KEY,
    email_id            text NOT NULL,
    owner_user_id       text,                       -- whose email it is: never its reviewer
    model_version       text,
    predicted_category  text,
    confidence          double precision NOT NULL CHECK (confidence >= 0 AND confidence <= 1),
    uncertainty         double precision NOT NULL,
    criticality         double precision NOT NULL,
    problem_factor      double precision NOT NULL,
    problem_areas       text[] NOT NULL DEFAULT '{}',
    priority            double precision NOT NULL,
    reviewer_id         text NOT NULL,
    queue_date          date NOT NULL,
    status              text NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'resolved', 'expired')),
    predicted_at        timestamptz NOT NULL,
    enqueued_at         timestamptz NOT NULL,
    enqueued_by         text NOT NULL,              -- <dag_id>/<run_id>
    resolved_at         timestamptz,
    resolution          text CHECK (resolution IN ('correction', 'action_feedback', 'expired')),
    resolved_by_user    text,
    updated_at          timestamptz NOT NULL DEFAULT now(),
    CHECK (owner_user_id IS NULL OR reviewer_id <> owner_user_id),
    CHECK ((status = 'pending') = (resolved_at IS NULL))
);

CREATE INDEX IF NOT EXISTS review_queue_reviewer_idx ON ml.review_queue (reviewer_id, status, priority DESC);
CREATE INDEX IF NOT EXISTS review_queue_day_idx ON ml.review_queue (queue_date, reviewer_id);
CREATE INDEX IF NOT EXISTS review_queue_pending_idx ON ml.review_queue (status) WHERE status = 'pending';

-- --------------------------------------------------------------------- contributor stats
-- For the app's rewards screen. Rebuilt by feedbackloop.contributors.refresh_contributor_stats
-- in one transaction, so the app never reads a half-written table.
CREATE TABLE IF NOT EXISTS ml.contributor_stats (
    user_id              text PRIMARY KEY,
    accepted_cards       integer NOT NULL CHECK (accepted_cards >= 0),
    free_months          integer NOT NULL CHECK (free_months >= 0),
    cards_to_next_month  integer NOT NULL CHECK (cards_to_next_month BETWEEN 1 AND 10),
    first_feedback_at    timestamptz,
    last_feedback_at     timestamptz,
    week_start           date NOT NULL,             -- the current leaderboard week (Monday, UTC)
    cards_this_week      integer NOT NULL DEFAULT 0,
    weekly_rank          integer,                   -- NULL: no accepted card this week
    impact_version_id    text,
    impact_points        double precision,
    impact_line          text,
    refreshed_at         timestamptz NOT NULL
);

CREATE TABLE IF NOT EXISTS ml.contributor_weekly (
    user_id         text NOT NULL,
    week_start      date NOT NULL,
    accepted_cards  integer NOT NULL CHECK (accepted_cards > 0),
    refreshed_at    timestamptz NOT NULL,
    PRIMARY KEY (week_start, user_id)
);

-- Weekly leaderboard: rank by accepted cards, ties broken by user id (stable order).
CREATE OR REPLACE VIEW ml.contributor_leaderboard AS
SELECT
    week_start,
    row_number() OVER (PARTITION BY week_start ORDER BY accepted_cards DESC, user_id) AS rank,
    user_id,
    accepted_cards
FROM ml.contributor_weekly;
