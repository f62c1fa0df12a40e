-- Which instance closes a session's due window, and until when (service time): several
-- instances share the due windows through these claims instead of each reading and closing
-- every one. A claim whose time has passed (its instance died) is anybody's to take.
ALTER TABLE status_job_session ADD COLUMN closer TEXT NULL;
ALTER TABLE status_job_session ADD COLUMN closer_until_ms INTEGER NULL;
