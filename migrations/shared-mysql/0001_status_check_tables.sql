-- Bootstrap of the shared `status_check*` tables for a database that has none (development,
-- tests, demos). Column types, keys and index names follow the production schema owned by the
-- `typ-e` migrations; foreign keys to tables this service does not own (robot_account,
-- event_subscription, script_step, script_version, incoming_event, outgoing_event) are left out.
-- Never run against production: there these tables already exist and belong to `typ-e`.

CREATE TABLE IF NOT EXISTS status_check_description (
    id          INT UNSIGNED  NOT NULL AUTO_INCREMENT,
    name        VARCHAR(256)  NOT NULL,
    description VARCHAR(1024) NOT NULL,
    created_at  DATETIME      NOT NULL DEFAULT CURRENT_TIMESTAMP,
    PRIMARY KEY (id),
    UNIQUE KEY status_check_description_name (name),
    KEY idx_status_check_template_name_version_desc (name)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4;

CREATE TABLE IF NOT EXISTS status_check_template (
    id                        INT UNSIGNED      NOT NULL AUTO_INCREMENT,
    template_description_id   INT UNSIGNED      NOT NULL,
    past_event_dependencies   VARCHAR(512)      NOT NULL,
    future_event_dependencies VARCHAR(512)      NOT NULL,
    version                   SMALLINT UNSIGNED NOT NULL DEFAULT 1,
    is_active                 TINYINT(1)        NOT NULL DEFAULT 1,
    poll_until_end            TINYINT(1)        NOT NULL DEFAULT 0,
    created_at                DATETIME          NOT NULL DEFAULT CURRENT_TIMESTAMP,
    PRIMARY KEY (id),
    UNIQUE KEY status_check_template_name_version (template_description_id, version),
    KEY idx_status_check_template_name_version_desc (template_description_id, version DESC),
    CONSTRAINT status_check_template_ibfk_1 FOREIGN KEY (template_description_id)
        REFERENCES status_check_description (id) ON DELETE CASCADE
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4;

CREATE TABLE IF NOT EXISTS status_check_template_detail (
    template_id    INT UNSIGNED  NOT NULL,
    phase          VARCHAR(64)   NOT NULL,
    raw_expression VARCHAR(1024) NOT NULL,
    output         VARCHAR(16)   NOT NULL,
    UNIQUE KEY status_check_template_unique_phase_output (template_id, phase, output),
    CONSTRAINT status_check_template_detail_ibfk_1 FOREIGN KEY (template_id)
        REFERENCES status_check_template (id) ON DELETE CASCADE
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4;

CREATE TABLE IF NOT EXISTS status_check (
    id                       BIGINT UNSIGNED NOT NULL AUTO_INCREMENT,
    robot_id                 INT UNSIGNED    NOT NULL,
    status_check_template_id INT UNSIGNED    NOT NULL,
    phase                    VARCHAR(64)     NOT NULL,
    subscription_id          BIGINT UNSIGNED NULL,
    result                   VARCHAR(64)     NULL,
    step_id                  BIGINT UNSIGNED NOT NULL,
    next_step_id             BIGINT UNSIGNED NULL,
    script_version_id        BIGINT UNSIGNED NOT NULL,
    scheduled_id             BIGINT UNSIGNED NOT NULL,
    -- The explicit default keeps a server with explicit_defaults_for_timestamp=OFF from adding
    -- ON UPDATE CURRENT_TIMESTAMP to the first TIMESTAMP column.
    planned_at               TIMESTAMP       NOT NULL DEFAULT CURRENT_TIMESTAMP,
    created_at               TIMESTAMP       NULL DEFAULT CURRENT_TIMESTAMP,
    updated_at               TIMESTAMP       NULL DEFAULT CURRENT_TIMESTAMP,
    PRIMARY KEY (id),
    KEY fk_status_check_robot_id (robot_id),
    KEY fk_status_check_template_id (status_check_template_id),
    KEY fk_status_check_subscription_id (subscription_id),
    KEY fk_status_check_step_id (step_id),
    KEY fk_status_check_next_step_id (next_step_id),
    KEY fk_status_check_script_version_id (script_version_id),
    KEY idx_status_check_result_template_robot_id (robot_id, status_check_template_id, result),
    CONSTRAINT fk_status_check_template_id FOREIGN KEY (status_check_template_id)
        REFERENCES status_check_template (id)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4;

CREATE TABLE IF NOT EXISTS status_check_poller (
    status_check_id BIGINT UNSIGNED NOT NULL,
    since           TIMESTAMP       NULL DEFAULT NULL,
    `until`         TIMESTAMP       NULL DEFAULT NULL,
    lock_id         VARCHAR(256)    NULL,
    created_at      TIMESTAMP       NULL DEFAULT CURRENT_TIMESTAMP,
    updated_at      TIMESTAMP       NULL DEFAULT CURRENT_TIMESTAMP,
    PRIMARY KEY (status_check_id),
    KEY idx_status_check_poller_until (`until`),
    KEY idx_status_check_poller_lock_id (lock_id),
    KEY idx_status_check_poller_updated_at (updated_at),
    CONSTRAINT status_check_poller_ibfk_1 FOREIGN KEY (status_check_id)
        REFERENCES status_check (id) ON DELETE CASCADE
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4;

CREATE TABLE IF NOT EXISTS status_check_record (
    id                BIGINT UNSIGNED NOT NULL AUTO_INCREMENT,
    status_check_id   BIGINT UNSIGNED NOT NULL,
    incoming_event_id BIGINT UNSIGNED NULL,
    outgoing_event_id BIGINT UNSIGNED NULL,
    event_name        VARCHAR(256)    NOT NULL,
    `order`           INT UNSIGNED    NOT NULL,
    phase             VARCHAR(64)     NOT NULL,
    result            VARCHAR(64)     NOT NULL,
    created_at        TIMESTAMP       NULL DEFAULT CURRENT_TIMESTAMP,
    PRIMARY KEY (id, phase),
    KEY fk_status_check_record_check_id (status_check_id),
    KEY fk_status_check_record_incoming_event_id (incoming_event_id),
    KEY fk_status_check_record_outgoing_event_id (outgoing_event_id),
    CONSTRAINT fk_status_check_record_check_id FOREIGN KEY (status_check_id)
        REFERENCES status_check (id) ON DELETE CASCADE
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4;
