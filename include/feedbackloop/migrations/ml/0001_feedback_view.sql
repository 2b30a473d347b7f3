-- The one place that adapts the app's tables to the pipeline's feedback record
-- (feedbackloop.contracts.FEEDBACK_COLUMNS). A team with another app schema rewrites this
-- view and nothing else.
--
-- One row per (prediction, category correction): a prediction with feedback is a row; a
-- correction submitted twice by a buggy client yields two rows with the same feedback_id,
-- which validation quarantines as duplicate_feedback_id (the first one is kept).
-- correction_id / action_feedback_id are exposed for a total, stable extraction order.
-- feedback_at is when the user gave the feedback: the correction's time, else the action
-- feedback's time. Extraction filters on it with a half-open interval [start, end).
CREATE SCHEMA IF NOT EXISTS ml;

CREATE OR REPLACE VIEW ml.feedback_records AS
SELECT
    p.prediction_id                                   AS feedback_id,
    p.prediction_id                                   AS prediction_id,
    p.email_id                                        AS email_id,
    p.user_id                                         AS user_id,
    p.model_version                                   AS model_version,
    p.variant                                         AS variant,
    e.sender                                          AS sender,
    e.subject                                         AS subject,
    e.body                                            AS body,
    p.category                                        AS predicted_category,
    p.confidence                                      AS confidence,
    p.actions                                         AS predicted_actions,
    p.latency_ms                                      AS latency_ms,
    p.predicted_at                                    AS predicted_at,
    c.corrected_category                              AS corrected_category,
    af.missed_actions                                 AS missed_actions,
    af.unnecessary_actions                            AS unnecessary_actions,
    af.note                                           AS note,
    EXISTS (
        SELECT 1 FROM app.engagement_events ev
        WHERE ev.prediction_id = p.prediction_id AND ev.event_type = 'action_taken'
    )                                                 AS user_took_action,
    COALESCE(c.created_at, af.created_at)             AS feedback_at,
    c.correction_id                                   AS correction_id,
    af.action_feedback_id                             AS action_feedback_id
FROM app.predictions p
LEFT JOIN app.category_corrections c ON c.prediction_id = p.prediction_id
LEFT JOIN app.action_feedback af ON af.prediction_id = p.prediction_id
LEFT JOIN app.emails e ON e.email_id = p.email_id
WHERE c.correction_id IS NOT NULL OR af.action_feedback_id IS NOT NULL;
