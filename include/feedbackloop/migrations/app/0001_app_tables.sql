-- App-owned tables (the production email app writes them; the pipeline only reads).
-- The demo and the tests create them with this file; a real deployment already has them
-- and adapts the view ml.feedback_records instead.
CREATE SCHEMA IF NOT EXISTS app;

CREATE TABLE IF NOT EXISTS app.emails (
    email_id     text PRIMARY KEY,
    user_id      text,
    sender       text,
    subject      text,
    body         bytea,          -- raw bytes as received; may be invalid UTF-8
    received_at  timestamptz NOT NULL
);

CREATE TABLE IF NOT EXISTS app.predictions (
    prediction_id  text PRIMARY KEY,
    email_id       text NOT NULL,
    user_id        text,
    model_version  text,
    variant        text,          -- 'champion' | 'challenger'
    category       text,
    confidence     double precision,
    actions        text[],
    latency_ms     double precision,
    predicted_at   timestamptz NOT NULL
);
CREATE INDEX IF NOT EXISTS predictions_predicted_at_idx ON app.predictions (predicted_at);

CREATE TABLE IF NOT EXISTS app.category_corrections (
    correction_id       text PRIMARY KEY,
    prediction_id       text NOT NULL,
    user_id             text,
    corrected_category  text,
    created_at          timestamptz NOT NULL
);
CREATE INDEX IF NOT EXISTS category_corrections_prediction_idx ON app.category_corrections (prediction_id);
CREATE INDEX IF NOT EXISTS category_corrections_created_idx ON app.category_corrections (created_at);

CREATE TABLE IF NOT EXISTS app.action_feedback (
    action_feedback_id   text PRIMARY KEY,
    prediction_id        text NOT NULL,
    user_id              text,
    missed_actions       text[],
    unnecessary_actions  text[],
    note                 text,
    created_at           timestamptz NOT NULL
);
CREATE INDEX IF NOT EXISTS action_feedback_prediction_idx ON app.action_feedback (prediction_id);
CREATE INDEX IF NOT EXISTS action_feedback_created_idx ON app.action_feedback (created_at);

CREATE TABLE IF NOT EXISTS app.engagement_events (
    event_id       text PRIMARY KEY,
    prediction_id  text NOT NULL,
    user_id        text,
    event_type     text NOT NULL,  -- 'opened' | 'action_taken' | 'dismissed'
    created_at     timestamptz NOT NULL
);
CREATE INDEX IF NOT EXISTS engagement_events_prediction_idx ON app.engagement_events (prediction_id);
