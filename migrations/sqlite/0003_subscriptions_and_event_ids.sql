-- Same as migrations/mysql/0003_subscriptions_and_event_ids.sql.
CREATE TABLE IF NOT EXISTS status_job_subscription (
    subscription_id      INTEGER NOT NULL PRIMARY KEY,
    status_check_id      INTEGER NOT NULL,
    robot_id             INTEGER NOT NULL,
    created_at_ms        INTEGER NOT NULL,
    deleted_at_ms        INTEGER NULL
);
CREATE INDEX IF NOT EXISTS idx_status_job_subscription_check
    ON status_job_subscription (status_check_id);

CREATE TABLE IF NOT EXISTS status_job_event_id (
    id                   INTEGER PRIMARY KEY AUTOINCREMENT,
    external_id          TEXT NULL UNIQUE
);

ALTER TABLE status_job_alarm ADD COLUMN retry_at_ms INTEGER NOT NULL DEFAULT 0;
