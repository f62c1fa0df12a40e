-- The service's own tables. Instants are epoch milliseconds (BIGINT), zones are IANA names.

-- One monitored robot; `version` grows by one on every change.
CREATE TABLE IF NOT EXISTS status_job_rule (
    robot_id             INT UNSIGNED     NOT NULL PRIMARY KEY,
    timezone             VARCHAR(64)      NOT NULL,
    start_time           VARCHAR(8)       NOT NULL,
    end_time             VARCHAR(8)       NOT NULL,
    gap_minutes          INT UNSIGNED     NOT NULL,
    watched_event        VARCHAR(256)     NOT NULL,
    alarm_event          VARCHAR(256)     NOT NULL,
    partial_final_window VARCHAR(16)      NOT NULL,
    enabled              TINYINT(1)       NOT NULL,
    version              BIGINT UNSIGNED  NOT NULL,
    updated_at_ms        BIGINT           NOT NULL
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4;

-- One row per session: the key `(robot_id, local_date)` and the persisted window state.
-- Every transition locks this row first.
CREATE TABLE IF NOT EXISTS status_job_session (
    status_check_id      BIGINT UNSIGNED  NOT NULL PRIMARY KEY,
    robot_id             INT UNSIGNED     NOT NULL,
    local_date           CHAR(10)         NOT NULL,
    session_start_ms     BIGINT           NOT NULL,
    session_end_ms       BIGINT           NOT NULL,
    window_start_ms      BIGINT           NOT NULL,
    window_end_ms        BIGINT           NOT NULL,
    window_gap_minutes   INT UNSIGNED     NOT NULL,
    gap_minutes          INT UNSIGNED     NOT NULL,
    partial_final_window VARCHAR(16)      NOT NULL,
    alarms               INT UNSIGNED     NOT NULL,
    result               VARCHAR(64)      NOT NULL,
    watched_event        VARCHAR(256)     NOT NULL,
    alarm_event          VARCHAR(256)     NOT NULL,
    rule_version         BIGINT UNSIGNED  NOT NULL,
    owner                VARCHAR(256)     NOT NULL,
    created_at_ms        BIGINT           NOT NULL,
    updated_at_ms        BIGINT           NOT NULL,
    UNIQUE KEY uq_status_job_session_robot_date (robot_id, local_date),
    KEY idx_status_job_session_result_deadline (result, window_end_ms)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4;

-- Every incoming event handled per status check, at most once. `state` is what was done with
-- it: observed, late, outside, or pending (after the current deadline, applied once the
-- windows before it have closed).
CREATE TABLE IF NOT EXISTS status_job_event (
    status_check_id      BIGINT UNSIGNED  NOT NULL,
    incoming_event_id    BIGINT UNSIGNED  NOT NULL,
    outgoing_event_id    BIGINT UNSIGNED  NULL,
    occurred_at_ms       BIGINT           NOT NULL,
    state                VARCHAR(16)      NOT NULL,
    created_at_ms        BIGINT           NOT NULL,
    PRIMARY KEY (status_check_id, incoming_event_id),
    KEY idx_status_job_event_pending (status_check_id, state, occurred_at_ms)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4;

-- Alarms to post, one per identity `(robot_id, local_date, window_start_ms)`.
CREATE TABLE IF NOT EXISTS status_job_alarm (
    id                   BIGINT UNSIGNED  NOT NULL AUTO_INCREMENT PRIMARY KEY,
    status_check_id      BIGINT UNSIGNED  NOT NULL,
    robot_id             INT UNSIGNED     NOT NULL,
    local_date           CHAR(10)         NOT NULL,
    window_start_ms      BIGINT           NOT NULL,
    window_end_ms        BIGINT           NOT NULL,
    reference_id         VARCHAR(256)     NOT NULL,
    alarm_event          VARCHAR(256)     NOT NULL,
    state                VARCHAR(16)      NOT NULL,
    attempts             INT UNSIGNED     NOT NULL DEFAULT 0,
    last_error           TEXT             NULL,
    megazord_incoming_id BIGINT UNSIGNED  NULL,
    claimed_by           VARCHAR(256)     NULL,
    claimed_at_ms        BIGINT           NULL,
    created_at_ms        BIGINT           NOT NULL,
    updated_at_ms        BIGINT           NOT NULL,
    sent_at_ms           BIGINT           NULL,
    UNIQUE KEY uq_status_job_alarm_identity (robot_id, local_date, window_start_ms),
    KEY idx_status_job_alarm_state (state, id)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4;

-- Queue messages that could not be used, kept for a person to look at.
CREATE TABLE IF NOT EXISTS status_job_dead_letter (
    id                   BIGINT UNSIGNED  NOT NULL AUTO_INCREMENT PRIMARY KEY,
    body_hash            BIGINT           NOT NULL,
    body                 MEDIUMTEXT       NOT NULL,
    reason               TEXT             NOT NULL,
    first_seen_ms        BIGINT           NOT NULL,
    last_seen_ms         BIGINT           NOT NULL,
    seen_count           INT UNSIGNED     NOT NULL,
    UNIQUE KEY uq_status_job_dead_letter_body (body_hash)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4;

CREATE TABLE IF NOT EXISTS status_job_meta (
    meta_key             VARCHAR(191)     NOT NULL PRIMARY KEY,
    meta_value           TEXT             NOT NULL,
    updated_at_ms        BIGINT           NOT NULL
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4;
