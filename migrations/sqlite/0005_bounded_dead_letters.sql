-- Same as migrations/mysql/0005_bounded_dead_letters.sql, except that letters kept before keep
-- an unknown hash (NULL): SQLite has no SHA-256 of its own. Event ids already compare byte for
-- byte here (TEXT keys use the BINARY collation).
ALTER TABLE status_job_dead_letter ADD COLUMN body_length INTEGER NOT NULL DEFAULT 0;
ALTER TABLE status_job_dead_letter ADD COLUMN body_sha256 TEXT NULL;
UPDATE status_job_dead_letter SET body_length = length(CAST(body AS BLOB));
CREATE INDEX IF NOT EXISTS idx_status_job_dead_letter_last_seen
    ON status_job_dead_letter (last_seen_ms, id);
