-- The service's own tables. Instants are epoch milliseconds (INTEGER), zones are IANA names.
-- Same shape as migrations/mysql/0001_service_tables.sql.

-- One monitored robot; `version` grows by one on every change.
CREATE TABLE IF NOT EXISTS status_job_rule (
    robot_id             INTEGER NOT NULL PRIMARY KEY,
    timezone             TEXT    NOT NULL,
    start_time           TEXT    NOT NULL,
    end_time             TEXT    NOT NULL,
    gap_minutes          INTEGER NOT NULL,
    watched_event        TEXT    NOT NULL,
    alarm_event          TEXT    NOT NULL,
    partial_final_window TEXT    NOT NULL,
    enabled              INTEGER NOT NULL,
    version              INTEGER NOT NULL,
    updated_at_ms        INTEGER NOT NULL
);

-- One row per session: the key `(robot_id, local_date)` and the persisted window state.
CREATE TABLE IF NOT EXISTS status_job_session (
    status_check_id      INTEGER NOT NULL PRIMARY KEY,
    robot_id             INTEGER NOT NULL,
    local_date           TEXT    NOT NULL,
    session_start_ms     INTEGER NOT NULL,
    session_end_ms       INTEGER NOT NULL,
    window_start_ms      INTEGER NOT NULL,
    window_end_ms        INTEGER NOT NULL,
    window_gap_minutes   INTEGER NOT NULL,
    gap_minutes          INTEGER NOT NULL,
    partial_final_window TEXT    NOT NULL,
    alarms               INTEGER NOT NULL,
    result               TEXT    NOT NULL,
    watched_event        TEXT    NOT NULL,
    alarm_event          TEXT    NOT NULL,
    rule_version         INTEGER NOT NULL,
    owner                TEXT    NOT NULL,
    created_at_ms        INTEGER NOT NULL,
    updated_at_ms        INTEGER NOT NULL,
    UNIQUE (robot_id, local_date)
);
CREATE INDEX IF NOT EXISTS idx_status_job_session_result_deadline
    ON status_job_session (result, window_end_ms);

-- Every incoming event handled per status check, at most once (observed, late, outside, pending).
CREATE TABLE IF NOT EXISTS status_job_event (
    status_check_id      INTEGER NOT NULL,
    incoming_event_id    INTEGER NOT NULL,
    outgoing_event_id    INTEGER NULL,
    occurred_at_ms       INTEGER NOT NULL,
    state                TEXT    NOT NULL,
    created_at_ms        INTEGER NOT NULL,
    PRIMARY KEY (status_check_id, incoming_event_id)
);
CREATE INDEX IF NOT EXISTS idx_status_job_event_pending
    ON status_job_event (status_check_id, state, occurred_at_ms);

-- Alarms to post, one per identity `(robot_id, local_date, window_start_ms)`.
CREATE TABLE IF NOT EXISTS status_job_alarm (
    id                   INTEGER PRIMARY KEY AUTOINCREMENT,
    status_check_id      INTEGER NOT NULL,
    robot_id             INTEGER NOT NULL,
    local_date           TEXT    NOT NULL,
    window_start_ms      INTEGER NOT NULL,
    window_end_ms        INTEGER NOT NULL,
    reference_id         TEXT    NOT NULL,
    alarm_event          TEXT    NOT NULL,
    state                TEXT    NOT NULL,
    attempts             INTEGER NOT NULL DEFAULT 0,
    last_error           TEXT    NULL,
    megazord_incoming_id INTEGER NULL,
    claimed_by           TEXT    NULL,
    claimed_at_ms        INTEGER NULL,
    created_at_ms        INTEGER NOT NULL,
    updated_at_ms        INTEGER NOT NULL,
    sent_at_ms           INTEGER NULL,
    UNIQUE (robot_id, local_date, window_start_ms)
);
CREATE INDEX IF NOT EXISTS idx_status_job_alarm_state ON status_job_alarm (state, id);

-- Queue messages that could not be used, kept for a person to look at.
CREATE TABLE IF NOT EXISTS status_job_dead_letter (
    id                   INTEGER PRIMARY KEY AUTOINCREMENT,
    body_hash            INTEGER NOT NULL UNIQUE,
    body                 TEXT    NOT NULL,
    reason               TEXT    NOT NULL,
    first_seen_ms        INTEGER NOT NULL,
    last_seen_ms         INTEGER NOT NULL,
    seen_count           INTEGER NOT NULL
);

CREATE TABLE IF NOT EXISTS status_job_meta (
    meta_key             TEXT    NOT NULL PRIMARY KEY,
    meta_value           TEXT    NOT NULL,
    updated_at_ms        INTEGER NOT NULL
);
