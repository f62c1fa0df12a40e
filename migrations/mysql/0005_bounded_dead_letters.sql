-- A dead letter keeps at most the first 64 KiB of its body in `body`, with the length in bytes
-- (`body_length`) and the SHA-256 (`body_sha256`, hex) of the whole body, so that a message
-- from outside cannot grow the table by more than that; the janitor deletes letters by age and
-- beyond a count, oldest `last_seen_ms` first (the index).
ALTER TABLE status_job_dead_letter
    ADD COLUMN body_length BIGINT UNSIGNED NOT NULL DEFAULT 0,
    ADD COLUMN body_sha256 CHAR(64) NULL,
    ADD KEY idx_status_job_dead_letter_last_seen (last_seen_ms, id);
UPDATE status_job_dead_letter SET body_length = LENGTH(body), body_sha256 = SHA2(body, 256);

-- Event ids taken in over HTTP compare byte for byte: the default collation ignored case and
-- trailing spaces, so that `ok-1 ` and `OK-1` were taken as duplicates of `ok-1`.
ALTER TABLE status_job_event_id MODIFY external_id VARBINARY(256) NULL;
