-- The shared `status_check*` tables on an embedded SQLite database: the columns of the
-- production MySQL schema (contracts §4) in SQLite types. TIMESTAMP columns hold UTC text
-- `YYYY-MM-DD HH:MM:SS`, as CURRENT_TIMESTAMP writes it. `status_check_record` keeps `phase`
-- as a plain column because SQLite can only auto-increment a single-column primary key.

CREATE TABLE IF NOT EXISTS status_check_description (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    name        TEXT    NOT NULL,
    description TEXT    NOT NULL,
    created_at  DATETIME NOT NULL DEFAULT CURRENT_TIMESTAMP,
    CONSTRAINT status_check_description_name UNIQUE (name)
);

CREATE TABLE IF NOT EXISTS status_check_template (
    id                        INTEGER PRIMARY KEY AUTOINCREMENT,
    template_description_id   INTEGER NOT NULL
        REFERENCES status_check_description (id) ON DELETE CASCADE,
    past_event_dependencies   TEXT    NOT NULL,
    future_event_dependencies TEXT    NOT NULL,
    version                   INTEGER NOT NULL DEFAULT 1,
    is_active                 INTEGER NOT NULL DEFAULT 1,
    poll_until_end            INTEGER NOT NULL DEFAULT 0,
    created_at                DATETIME NOT NULL DEFAULT CURRENT_TIMESTAMP,
    CONSTRAINT status_check_template_name_version UNIQUE (template_description_id, version)
);

CREATE TABLE IF NOT EXISTS status_check_template_detail (
    template_id    INTEGER NOT NULL REFERENCES status_check_template (id) ON DELETE CASCADE,
    phase          TEXT    NOT NULL,
    raw_expression TEXT    NOT NULL,
    output         TEXT    NOT NULL,
    CONSTRAINT status_check_template_unique_phase_output UNIQUE (template_id, phase, output)
);

CREATE TABLE IF NOT EXISTS status_check (
    id                       INTEGER PRIMARY KEY AUTOINCREMENT,
    robot_id                 INTEGER NOT NULL,
    status_check_template_id INTEGER NOT NULL REFERENCES status_check_template (id),
    phase                    TEXT    NOT NULL,
    subscription_id          INTEGER NULL,
    result                   TEXT    NULL,
    step_id                  INTEGER NOT NULL,
    next_step_id             INTEGER NULL,
    script_version_id        INTEGER NOT NULL,
    scheduled_id             INTEGER NOT NULL,
    planned_at               TIMESTAMP NOT NULL,
    created_at               TIMESTAMP NULL DEFAULT CURRENT_TIMESTAMP,
    updated_at               TIMESTAMP NULL DEFAULT CURRENT_TIMESTAMP
);
CREATE INDEX IF NOT EXISTS idx_status_check_result_template_robot_id
    ON status_check (robot_id, status_check_template_id, result);
CREATE INDEX IF NOT EXISTS fk_status_check_subscription_id ON status_check (subscription_id);

CREATE TABLE IF NOT EXISTS status_check_poller (
    status_check_id INTEGER NOT NULL PRIMARY KEY REFERENCES status_check (id) ON DELETE CASCADE,
    since           TIMESTAMP NULL,
    "until"         TIMESTAMP NULL,
    lock_id         TEXT    NULL,
    created_at      TIMESTAMP NULL DEFAULT CURRENT_TIMESTAMP,
    updated_at      TIMESTAMP NULL DEFAULT CURRENT_TIMESTAMP
);
CREATE INDEX IF NOT EXISTS idx_status_check_poller_until ON status_check_poller ("until");
CREATE INDEX IF NOT EXISTS idx_status_check_poller_lock_id ON status_check_poller (lock_id);
CREATE INDEX IF NOT EXISTS idx_status_check_poller_updated_at ON status_check_poller (updated_at);

CREATE TABLE IF NOT EXISTS status_check_record (
    id                INTEGER PRIMARY KEY AUTOINCREMENT,
    status_check_id   INTEGER NOT NULL REFERENCES status_check (id) ON DELETE CASCADE,
    incoming_event_id INTEGER NULL,
    outgoing_event_id INTEGER NULL,
    event_name        TEXT    NOT NULL,
    "order"           INTEGER NOT NULL,
    phase             TEXT    NOT NULL,
    result            TEXT    NOT NULL,
    created_at        TIMESTAMP NULL DEFAULT CURRENT_TIMESTAMP
);
CREATE INDEX IF NOT EXISTS fk_status_check_record_check_id ON status_check_record (status_check_id);
