-- Why a session ended as FAILED (the service could not monitor it), for whoever reads the
-- session later; the shared `status_check` table has no place for it.
ALTER TABLE status_job_session ADD COLUMN failure_reason VARCHAR(500) NULL;
