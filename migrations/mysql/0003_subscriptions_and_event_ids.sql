-- Every Megazord subscription a session had, kept after `status_check.subscription_id` is
-- cleared, so that a late queue message for it is still recognised (contracts §6 item 5), and
-- so that the janitor knows which ones are still to be deleted at Megazord.
CREATE TABLE IF NOT EXISTS status_job_subscription (
    subscription_id      BIGINT UNSIGNED  NOT NULL PRIMARY KEY,
    status_check_id      BIGINT UNSIGNED  NOT NULL,
    robot_id             INT UNSIGNED     NOT NULL,
    created_at_ms        BIGINT           NOT NULL,
    deleted_at_ms        BIGINT           NULL,
    KEY idx_status_job_subscription_check (status_check_id),
    KEY idx_status_job_subscription_deleted (deleted_at_ms)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4;

-- Local ids for events taken in over HTTP whose id is not a Megazord incoming id (or that
-- have none): `status_job_event` keys on a number.
CREATE TABLE IF NOT EXISTS status_job_event_id (
    id                   BIGINT UNSIGNED  NOT NULL AUTO_INCREMENT PRIMARY KEY,
    external_id          VARCHAR(256)     NULL,
    UNIQUE KEY uq_status_job_event_id_external (external_id)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4;

-- When a failed alarm post may be tried again: a post that keeps failing backs off instead of
-- being claimed again at once (and ahead of every later alarm).
ALTER TABLE status_job_alarm
    ADD COLUMN retry_at_ms BIGINT NOT NULL DEFAULT 0;
