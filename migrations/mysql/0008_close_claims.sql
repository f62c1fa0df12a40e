-- Which instance closes a session's due window, and until when (service time): several
-- instances share the due windows through these claims instead of each reading and closing
-- every one. A claim whose time has passed (its instance died) is anybody's to take.
ALTER TABLE status_job_session
    ADD COLUMN closer VARCHAR(256) NULL,
    ADD COLUMN closer_until_ms BIGINT NULL;
