-- A session's alarms read by its id (the sessions API, the dashboard's day view): without this
-- index every such read scans the whole outbox, which holds every alarm ever raised (measured:
-- seconds per read with a year of alarms for 1,000 robots).
CREATE INDEX idx_status_job_alarm_session ON status_job_alarm (status_check_id, window_start_ms);
