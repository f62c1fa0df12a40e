-- Two counters kept under the session lock, so that a transition reads neither of them from
-- a growing table:
-- `pending_events`: how many events of the session wait (state 'pending'); with none waiting,
--   a transition skips looking for them.
-- `records`: the highest `status_check_record.order` of the session, i.e. MAX(`order`).
ALTER TABLE status_job_session ADD COLUMN pending_events INTEGER NOT NULL DEFAULT 0;
ALTER TABLE status_job_session ADD COLUMN records INTEGER NOT NULL DEFAULT 0;

-- Only waiting events need finding by time; indexing just those keeps every other event
-- insert to the table's own b-trees.
DROP INDEX IF EXISTS idx_status_job_event_pending;
CREATE INDEX IF NOT EXISTS idx_status_job_event_pending
    ON status_job_event (status_check_id, occurred_at_ms, incoming_event_id)
    WHERE state = 'pending';
