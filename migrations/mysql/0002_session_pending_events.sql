-- How many events of the session wait (state 'pending'): the common transition, with none
-- waiting, then skips looking for them.
ALTER TABLE status_job_session ADD COLUMN pending_events INT UNSIGNED NOT NULL DEFAULT 0;
