-- Why a session ended as FAILED (the service could not monitor it), for whoever reads the
-- session later; the shared `status_check` table has no place for it.
ALTER TABLE status_job_session ADD COLUMN failure_reason VARCHAR(500) NULL;

-- When a rule was created or last enabled, in service time: a session already running then is
-- watched from that instant, not from its start (nobody was watching before). NULL for rules
-- stored before this column existed.
ALTER TABLE status_job_rule ADD COLUMN watching_since_ms BIGINT NULL;
