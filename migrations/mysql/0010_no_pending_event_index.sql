-- An event's pending state is looked up only for a session that has pending events (its
-- `pending_events` counter), by `status_check_id`: the primary key's first column finds the
-- session's events, a day's worth at most. The index on `(status_check_id, state,
-- occurred_at_ms)` cost every event taken in one more index entry to write (measured: about
-- a thirtieth of MariaDB's work on an ingested event) and served no read the key does not.
ALTER TABLE status_job_event DROP INDEX idx_status_job_event_pending;
