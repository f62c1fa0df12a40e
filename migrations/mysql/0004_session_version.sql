-- A version on every session row, moved on by each transition that changes the row. A
-- transition decided on a copy of the row kept from an earlier one writes
-- `version = CASE WHEN version = <its copy's> THEN <next> ELSE 0 END`: on a copy gone stale
-- the check below refuses the statement, the server runs nothing after it, and the transition
-- runs again from a locked read.
ALTER TABLE status_job_session
    ADD COLUMN version BIGINT UNSIGNED NOT NULL DEFAULT 1,
    ADD CONSTRAINT ck_status_job_session_version CHECK (version > 0);
