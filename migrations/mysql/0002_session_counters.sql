-- Two counters kept under the session lock, so that a transition reads neither of them from
-- a growing table:
-- `pending_events`: how many events of the session wait (state 'pending'); with none waiting,
--   a transition skips looking for them.
-- `records`: the highest `status_check_record.order` of the session, i.e. MAX(`order`).
ALTER TABLE status_job_session
    ADD COLUMN pending_events INT UNSIGNED NOT NULL DEFAULT 0,
    ADD COLUMN records INT UNSIGNED NOT NULL DEFAULT 0;
