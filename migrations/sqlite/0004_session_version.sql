-- A version on every session row, moved on by each transition that changes the row. A
-- transition decided on a copy of the row kept from an earlier one writes
-- `version = CASE WHEN version = <its copy's> THEN <next> ELSE 0 END`: on a copy gone stale
-- the check refuses the statement and the transition runs again from a fresh read.
ALTER TABLE status_job_session ADD COLUMN version INTEGER NOT NULL DEFAULT 1
    CONSTRAINT ck_status_job_session_version CHECK (version > 0);
