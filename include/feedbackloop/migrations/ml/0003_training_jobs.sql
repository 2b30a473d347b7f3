-- Remote training jobs (OpenAI fine-tuning), one row per (DAG, run, method).
--
-- The row is written BEFORE a job is submitted (status 'pending') and the provider's job id
-- right after the create call returns, so a retried or re-run task re-attaches to the job
-- instead of paying for a second one. job_key is also sent as job metadata, which finds
-- the job when a task died between "create" and "record". Writes are UPSERTs.
CREATE TABLE IF NOT EXISTS ml.training_jobs (
    dag_id              text NOT NULL,
    run_id              text NOT NULL,
    method              text NOT NULL CHECK (method IN ('supervised', 'dpo')),
    job_key             text NOT NULL UNIQUE,
    backend             text NOT NULL DEFAULT 'openai',
    base_model          text NOT NULL,
    suffix              text,
    remote_job_id       text UNIQUE,
    training_file_id    text,
    validation_file_id  text,
    status              text NOT NULL CHECK (status IN (
                            'pending', 'blocked', 'refused',
                            'validating_files', 'queued', 'running',
                            'succeeded', 'failed', 'cancelled')),
    fine_tuned_model    text,
    estimated_tokens    bigint,
    n_epochs            integer,
    cost_estimate_usd   numeric(12, 4),
    max_cost_usd        numeric(12, 4),
    trained_tokens      bigint,
    error_code          text,
    error_message       text,
    created_at          timestamptz NOT NULL DEFAULT now(),
    submitted_at        timestamptz,
    finished_at         timestamptz,
    updated_at          timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (dag_id, run_id, method)
);

CREATE INDEX IF NOT EXISTS training_jobs_status_idx ON ml.training_jobs (status, updated_at);
