-- The pipeline's database role, least privilege: feedbackloop_pipeline.
--
-- What the DAGs (every task that opens the `feedback_db` connection) and the dashboard need,
-- and nothing more:
--   * the app's tables: SELECT only (the five tables ml.feedback_records and the monitors read);
--   * schema ml: USAGE, and SELECT / INSERT / UPDATE / DELETE on its tables, USAGE on its
--     sequences (registry, gate runs, deployments, experiments, alerts, review queue, ...);
--   * no CREATE anywhere (not on the database, not on schema ml, app or public), no TRUNCATE,
--     no ownership: it cannot drop or alter a table, cannot write the app's tables, and
--     cannot rewrite the migration history (ml.schema_migrations is read-only to it).
--
-- How to apply, as the role that owns schema ml (the one that runs the migrations: a DBA or
-- a dedicated owner role; never the pipeline role itself):
--
--   python -m feedbackloop.cli migrate --dsn "postgresql://<owner>@<host>/<db>"
--   psql "postgresql://<owner>@<host>/<db>" -f include/feedbackloop/migrations/roles/pipeline_role.sql
--   psql ... -c "ALTER ROLE feedbackloop_pipeline PASSWORD '<from your secret store>'"   # or \password
--
-- then point the Airflow connection `feedback_db` at login `feedbackloop_pipeline` with that
-- password. Re-run this file after adding a migration that creates objects as another role
-- (the default privileges below cover new ml tables created by the role running this file).
-- Idempotent. Adapt the GRANT SELECT list when your app's schema differs (like the view
-- ml.feedback_records). feedbackloop.db.apply_pipeline_role() runs this file; the tests run
-- every DAG as this role (tests/conftest.py, tests/reliability/test_db_role.py).

DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'feedbackloop_pipeline') THEN
        CREATE ROLE feedbackloop_pipeline LOGIN
            NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS NOINHERIT;
    END IF;
END
$$;

-- Connect to this database (PUBLIC usually has CONNECT already; explicit for locked-down servers).
DO $$
BEGIN
    EXECUTE format('GRANT CONNECT ON DATABASE %I TO feedbackloop_pipeline', current_database());
END
$$;

-- The app's tables: read only.
GRANT USAGE ON SCHEMA app TO feedbackloop_pipeline;
GRANT SELECT ON app.emails, app.predictions, app.category_corrections, app.action_feedback,
    app.engagement_events TO feedbackloop_pipeline;

-- The pipeline's own schema: read and write rows, create nothing.
GRANT USAGE ON SCHEMA ml TO feedbackloop_pipeline;
GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA ml TO feedbackloop_pipeline;
GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA ml TO feedbackloop_pipeline;
REVOKE INSERT, UPDATE, DELETE ON ml.schema_migrations FROM feedbackloop_pipeline;
ALTER DEFAULT PRIVILEGES IN SCHEMA ml
    GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO feedbackloop_pipeline;
ALTER DEFAULT PRIVILEGES IN SCHEMA ml GRANT USAGE, SELECT ON SEQUENCES TO feedbackloop_pipeline;

-- Schema public: nothing to grant. PostgreSQL 15+ gives PUBLIC no CREATE there; on an older
-- server run `REVOKE CREATE ON SCHEMA public FROM PUBLIC` (a server-wide decision).
