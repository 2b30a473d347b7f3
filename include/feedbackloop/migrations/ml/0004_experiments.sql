-- A/B experiments between the champion and the challenger, their daily decisions, and the
-- audit columns of the deployment history. See feedbackloop.experiment and
-- docs/experiments.md for the statistics and the decision rules.

-- --------------------------------------------------------------------------- invariants
-- The champion serves everyone the challenger does not: its share is always 1. The
-- challenger ramps 5% -> 25% -> 50%; the 100% step is the promotion (it becomes the
-- champion). Shares are numeric(5, 4), so these comparisons are exact.
ALTER TABLE ml.deployments
    ADD CONSTRAINT deployments_champion_share CHECK (alias <> 'champion' OR traffic_share = 1);
ALTER TABLE ml.deployments
    ADD CONSTRAINT deployments_challenger_ramp_step
    CHECK (alias <> 'challenger' OR traffic_share IN (0.05, 0.25, 0.50));

-- Champion and challenger are two different models (an A/B test of a model against
-- itself would measure nothing and confuse the assignment).
CREATE OR REPLACE FUNCTION ml.require_distinct_aliases() RETURNS trigger AS $$
BEGIN
    IF EXISTS (
        SELECT 1 FROM ml.deployments d
        WHERE d.alias <> NEW.alias AND d.version_id = NEW.version_id
    ) THEN
        RAISE EXCEPTION 'model version % is already deployed under another alias and cannot also become %',
            NEW.version_id, NEW.alias USING ERRCODE = 'check_violation';
    END IF;
    RETURN NEW;
END;
$$ LANGUAGE plpgsql;

DROP TRIGGER IF EXISTS deployments_distinct_aliases ON ml.deployments;
CREATE TRIGGER deployments_distinct_aliases
    BEFORE INSERT OR UPDATE ON ml.deployments
    FOR EACH ROW EXECUTE FUNCTION ml.require_distinct_aliases();

-- --------------------------------------------------------------------- audit history
-- Who (updated_by), when (created_at) and why (reason) exist already; add which run, which
-- experiment and decision day, and what the alias pointed at before.
ALTER TABLE ml.deployment_history
    ADD COLUMN IF NOT EXISTS run_id text,
    ADD COLUMN IF NOT EXISTS experiment_id text,
    ADD COLUMN IF NOT EXISTS decision_date date,
    ADD COLUMN IF NOT EXISTS previous_version_id text,
    ADD COLUMN IF NOT EXISTS previous_traffic_share numeric(5, 4);

-- One change of each kind per alias, experiment and day: a retried or racing evaluation
-- cannot ramp twice on the same day.
CREATE UNIQUE INDEX IF NOT EXISTS deployment_history_once_per_day
    ON ml.deployment_history (experiment_id, decision_date, alias, action)
    WHERE experiment_id IS NOT NULL;

-- --------------------------------------------------------------------------- experiments
-- One experiment per stint of a challenger. The experiment id is part of the users'
-- assignment hash (feedbackloop.assignment), so the app reads it with the share.
CREATE TABLE IF NOT EXISTS ml.experiments (
    experiment_id       text PRIMARY KEY,
    champion_version    text REFERENCES ml.model_versions (version_id),  -- NULL: the app's built-in model
    challenger_version  text NOT NULL REFERENCES ml.model_versions (version_id),
    started_at          timestamptz NOT NULL,   -- when the challenger went live
    current_share       numeric(5, 4) NOT NULL CHECK (current_share IN (0.05, 0.25, 0.50)),
    stage_started_at    timestamptz NOT NULL,   -- when current_share took effect
    status              text NOT NULL CHECK (status IN
                            ('running', 'halted', 'promoted', 'rolled_back', 'superseded', 'aborted')),
    ended_at            timestamptz,
    updated_at          timestamptz NOT NULL DEFAULT now(),
    CHECK ((status IN ('running', 'halted')) = (ended_at IS NULL)),
    CHECK (stage_started_at >= started_at),
    CHECK (champion_version IS DISTINCT FROM challenger_version)
);

-- At most one live experiment (running or halted) at a time.
CREATE UNIQUE INDEX IF NOT EXISTS experiments_one_live
    ON ml.experiments ((true)) WHERE status IN ('running', 'halted');

-- The challenger alias drives the experiment: a new challenger version opens a new
-- experiment (superseding a live one), a share change starts a new stage, and removing
-- the alias outside the registry functions aborts it. Registry functions set the final
-- status (promoted / rolled_back) before they remove the alias.
CREATE OR REPLACE FUNCTION ml.track_experiment() RETURNS trigger AS $$
DECLARE
    live ml.experiments%ROWTYPE;
    n integer;
BEGIN
    IF TG_OP = 'DELETE' THEN
        IF OLD.alias = 'challenger' THEN
            UPDATE ml.experiments SET status = 'aborted', ended_at = now(), updated_at = now()
            WHERE status IN ('running', 'halted') AND challenger_version = OLD.version_id;
        END IF;
        RETURN OLD;
    END IF;
    IF NEW.alias <> 'challenger' THEN
        RETURN NEW;
    END IF;
    SELECT * INTO live FROM ml.experiments WHERE status IN ('running', 'halted') FOR UPDATE;
    IF FOUND AND live.challenger_version = NEW.version_id THEN
        IF live.current_share <> NEW.traffic_share THEN
            UPDATE ml.experiments
            SET current_share = NEW.traffic_share, stage_started_at = now(), updated_at = now()
            WHERE experiment_id = live.experiment_id;
        END IF;
        RETURN NEW;
    END IF;
    IF FOUND THEN
        UPDATE ml.experiments SET status = 'superseded', ended_at = now(), updated_at = now()
        WHERE experiment_id = live.experiment_id;
    END IF;
    SELECT count(*) + 1 INTO n FROM ml.experiments WHERE challenger_version = NEW.version_id;
    INSERT INTO ml.experiments (experiment_id, champion_version, challenger_version, started_at,
                                current_share, stage_started_at, status)
    VALUES (
        'ab-' || NEW.version_id || '-' || n,
        (SELECT version_id FROM ml.deployments WHERE alias = 'champion'),
        NEW.version_id, now(), NEW.traffic_share, now(), 'running'
    );
    RETURN NEW;
END;
$$ LANGUAGE plpgsql;

DROP TRIGGER IF EXISTS deployments_track_experiment ON ml.deployments;
CREATE TRIGGER deployments_track_experiment
    AFTER INSERT OR UPDATE OR DELETE ON ml.deployments
    FOR EACH ROW EXECUTE FUNCTION ml.track_experiment();

-- ---------------------------------------------------------------------------- decisions
-- One decision per experiment and day: evaluations racing on the same day insert with
-- ON CONFLICT DO NOTHING and read the winner's row back. A manual override replaces the
-- day's automatic decision and keeps it in `superseded`.
CREATE TABLE IF NOT EXISTS ml.experiment_decisions (
    decision_id     bigserial PRIMARY KEY,
    experiment_id   text NOT NULL REFERENCES ml.experiments (experiment_id),
    decision_date   date NOT NULL,
    outcome         text NOT NULL CHECK (outcome IN ('continue', 'ramp', 'promote', 'rollback', 'halt')),
    source          text NOT NULL CHECK (source IN ('auto', 'manual')),
    from_share      numeric(5, 4) NOT NULL,
    to_share        numeric(5, 4),
    reason          text NOT NULL,
    reasons         jsonb NOT NULL DEFAULT '[]'::jsonb,
    statistics      jsonb NOT NULL,
    policy          jsonb NOT NULL,
    decided_by      text NOT NULL,
    run_id          text,
    registry_change jsonb,
    superseded      jsonb,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT experiment_decisions_one_per_day UNIQUE (experiment_id, decision_date),
    CHECK (source = 'auto' OR length(btrim(reason)) > 0)
);

-- ------------------------------------------------------------------------------ serving
-- The one place the app reads what to serve to whom: always exactly one row.
CREATE OR REPLACE VIEW ml.serving_config AS
SELECT
    champion.version_id             AS champion_version,
    challenger.version_id           AS challenger_version,
    COALESCE(challenger.traffic_share, 0)::numeric(5, 4) AS challenger_share,
    e.experiment_id                 AS experiment_id,
    e.status                        AS experiment_status,
    e.started_at                    AS experiment_started_at
FROM (SELECT 1) AS one
LEFT JOIN ml.deployments champion ON champion.alias = 'champion'
LEFT JOIN ml.deployments challenger ON challenger.alias = 'challenger'
LEFT JOIN ml.experiments e
       ON e.challenger_version = challenger.version_id AND e.status IN ('running', 'halted');
