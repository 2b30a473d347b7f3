-- Pipeline-owned state: model versions, deployments (movable aliases) with their audit
-- history, and golden-set evaluation runs.
CREATE TABLE IF NOT EXISTS ml.model_versions (
    version_id           text PRIMARY KEY,
    spec                 jsonb NOT NULL,
    dag_id               text NOT NULL,
    run_id               text NOT NULL,
    data_interval_start  timestamptz,
    data_interval_end    timestamptz,
    report_uri           text,
    gate_passed          boolean,
    created_at           timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE IF NOT EXISTS ml.golden_runs (
    golden_run_id   text PRIMARY KEY,           -- <dag_id>/<run_id>/<version_id>
    version_id      text NOT NULL,
    dag_id          text NOT NULL,
    run_id          text NOT NULL,
    golden_version  text NOT NULL,
    verdict         text NOT NULL CHECK (verdict IN ('pass', 'fail')),
    reasons         jsonb NOT NULL,
    checks          jsonb NOT NULL,
    metrics         jsonb NOT NULL,
    report_uri      text NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now()
);

-- Aliases like MLflow's: at most one champion and one challenger (primary key).
CREATE TABLE IF NOT EXISTS ml.deployments (
    alias          text PRIMARY KEY CHECK (alias IN ('champion', 'challenger')),
    version_id     text NOT NULL REFERENCES ml.model_versions (version_id),
    traffic_share  numeric(5, 4) NOT NULL CHECK (traffic_share > 0 AND traffic_share <= 1),
    updated_at     timestamptz NOT NULL DEFAULT now(),
    updated_by     text NOT NULL,
    reason         text NOT NULL
);

CREATE TABLE IF NOT EXISTS ml.deployment_history (
    id             bigserial PRIMARY KEY,
    alias          text NOT NULL,
    version_id     text,
    traffic_share  numeric(5, 4),
    action         text NOT NULL,
    updated_by     text NOT NULL,
    reason         text NOT NULL,
    created_at     timestamptz NOT NULL DEFAULT now()
);

-- A version may only be deployed when its gate passed.
CREATE OR REPLACE FUNCTION ml.require_passing_gate() RETURNS trigger AS $$
BEGIN
    IF NOT EXISTS (
        SELECT 1 FROM ml.model_versions v WHERE v.version_id = NEW.version_id AND v.gate_passed
    ) THEN
        RAISE EXCEPTION 'model version % has no passing gate report and cannot become %',
            NEW.version_id, NEW.alias USING ERRCODE = 'check_violation';
    END IF;
    RETURN NEW;
END;
$$ LANGUAGE plpgsql;

DROP TRIGGER IF EXISTS deployments_require_gate ON ml.deployments;
CREATE TRIGGER deployments_require_gate
    BEFORE INSERT OR UPDATE ON ml.deployments
    FOR EACH ROW EXECUTE FUNCTION ml.require_passing_gate();
