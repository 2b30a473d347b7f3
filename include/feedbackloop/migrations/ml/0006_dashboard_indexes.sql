-- Read models and indexes of the model-quality dashboard (feedbackloop.dashboard_data).
--
-- The dashboard's trends cover up to 90 days; at production volume that is millions of
-- predictions, too many to join with their feedback on every page view. So the pipeline
-- keeps per-hour and per-day summaries here (a few thousand rows for 90 days) and the
-- dashboard answers from them. refresh_summary() recomputes whole UTC days (DELETE + INSERT
-- in one transaction, so a reader never sees a half-written day); ensure_summary()
-- recomputes the last 7 days (feedback arrives days after its prediction) once the summary
-- is older than 10 minutes, which the dashboard plugin triggers in the background. Every
-- column is an additive count or sum, except the latency percentiles, which are exact per
-- day and never combined across days.
--
-- App tables are owned by the app team. Every query the dashboard runs on them is served by
-- indexes the app tables already have (predictions_predicted_at_idx for time windows,
-- category_corrections_created_idx for the latest corrections, the *_prediction_idx lookups
-- and the primary keys; plans checked by benchmarks/dashboard_api.py on 1M predictions), so
-- the dashboard asks for no new index there. (A covering predicted_at index was measured
-- and the planner did not use it for the refresh: not recommended.)

-- Predictions by model per UTC hour, and per UTC day by true category and by confidence
-- bin (by predicted_at). Narrow tables rather than one cross product: each panel reads a
-- few hundred to a few thousand rows for 90 days, whatever the traffic. The model table is
-- hourly so A/B arm counts start at the stage's exact start: only its first and last partial
-- hours come from the app tables.
-- A prediction is "corrected" when a user corrected its category to another category; its
-- true category is that correction, else the predicted category.
CREATE TABLE IF NOT EXISTS ml.dashboard_model_hourly (
    hour            timestamptz NOT NULL,  -- start of the UTC hour
    model_version   text NOT NULL,         -- '' when the app logged none
    variant         text NOT NULL,         -- 'champion' | 'challenger' | '' when none
    predictions     bigint NOT NULL,
    corrected       bigint NOT NULL,
    with_feedback   bigint NOT NULL,       -- with any category feedback or action feedback
    PRIMARY KEY (hour, model_version, variant),
    CHECK (corrected <= predictions AND with_feedback <= predictions)
);

CREATE TABLE IF NOT EXISTS ml.dashboard_category_daily (
    day             date NOT NULL,
    category        text NOT NULL,      -- true category ('' when none)
    predictions     bigint NOT NULL,
    corrected       bigint NOT NULL,
    PRIMARY KEY (day, category),
    CHECK (corrected <= predictions)
);

CREATE TABLE IF NOT EXISTS ml.dashboard_confidence_daily (
    day             date NOT NULL,
    confidence_bin  smallint NOT NULL,  -- k in 0..14 for [k/15, (k+1)/15), the last bin closed
                                        -- (evaluation.ECE_BINS); -1: missing or outside [0, 1]
    predictions     bigint NOT NULL,
    corrected       bigint NOT NULL,
    confidence_sum  double precision NOT NULL,  -- over the bin's valid confidences
    PRIMARY KEY (day, confidence_bin),
    CHECK (corrected <= predictions)
);

-- Latency of one UTC day's predictions (positive, finite latency_ms only).
CREATE TABLE IF NOT EXISTS ml.dashboard_latency_daily (
    day       date PRIMARY KEY,
    n         bigint NOT NULL,
    p50_ms    double precision,
    p95_ms    double precision,
    p99_ms    double precision,
    mean_ms   double precision
);

-- Feedback given on one UTC day (by the feedback's created_at).
CREATE TABLE IF NOT EXISTS ml.dashboard_feedback_daily (
    day                  date PRIMARY KEY,
    corrections          bigint NOT NULL,   -- category feedback naming another category
    confirmations        bigint NOT NULL,   -- category feedback confirming the prediction
    action_feedback      bigint NOT NULL,   -- action feedback rows
    missed_actions       bigint NOT NULL,   -- actions users said were missing
    unnecessary_actions  bigint NOT NULL    -- actions users said were not needed
);

-- When the summaries were last recomputed, and over which days (a single row).
CREATE TABLE IF NOT EXISTS ml.dashboard_refresh (
    singleton        boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    refreshed_at     timestamptz NOT NULL,
    refreshed_from   date,                  -- NULL: from the first day (a full rebuild)
    full_refresh_at  timestamptz
);

-- "Latest gate reports": newest golden-set runs first (the table grows by a run a night).
CREATE INDEX IF NOT EXISTS golden_runs_created_idx ON ml.golden_runs (created_at DESC);

-- "Resolved / expired in the last 7 days" of the review queue, which keeps every item it
-- ever held (the pending and per-day lookups have indexes in 0005_monitoring.sql). Guarded:
-- the queue belongs to the monitoring migration.
DO $$
BEGIN
    IF to_regclass('ml.review_queue') IS NOT NULL THEN
        CREATE INDEX IF NOT EXISTS review_queue_resolved_idx
            ON ml.review_queue (resolved_at) WHERE resolved_at IS NOT NULL;
    END IF;
END
$$;
