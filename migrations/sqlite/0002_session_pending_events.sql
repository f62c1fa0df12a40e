-- How many events of the session wait (state 'pending'): the common transition, with none
-- waiting, then skips looking for them.
ALTER TABLE status_job_session ADD COLUMN pending_events INTEGER NOT NULL DEFAULT 0;

-- Only waiting events need finding by time; indexing just those keeps every other event
-- insert to the table's own b-trees.
DROP INDEX IF EXISTS idx_status_job_event_pending;
CREATE INDEX IF NOT EXISTS idx_status_job_event_pending
    ON status_job_event (status_check_id, occurred_at_ms, incoming_event_id)
    WHERE state = 'pending';
