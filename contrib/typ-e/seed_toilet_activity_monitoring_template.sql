-- Seeds the status-check template used by azi3-status-jobs (toilet activity monitoring):
-- description TOILET_ACTIVITY_MONITORING, template version 1 and its two detail rows.
-- Idempotent: every statement upserts on the table's unique key, so running it again leaves the
-- same rows. `is_active` is set only when the template is first created, so that a template an
-- operator deactivated stays deactivated. The detail expressions are never evaluated: the
-- service decides the outcome itself and writes it to status_check.result.

INSERT INTO status_check_description (name, description)
VALUES (
    'TOILET_ACTIVITY_MONITORING',
    'Toilet activity monitoring by azi3-status-jobs: an alarm for every gap without TOILET_ACTIVITY during the daily window'
)
ON DUPLICATE KEY UPDATE description = VALUES(description);

INSERT INTO status_check_template
    (template_description_id, past_event_dependencies, future_event_dependencies, version, is_active, poll_until_end)
SELECT d.id, '[]', '[{"eventName":"TOILET_ACTIVITY"}]', 1, 1, 1
FROM status_check_description d
WHERE d.name = 'TOILET_ACTIVITY_MONITORING'
ON DUPLICATE KEY UPDATE
    past_event_dependencies = VALUES(past_event_dependencies),
    future_event_dependencies = VALUES(future_event_dependencies),
    poll_until_end = VALUES(poll_until_end);

INSERT INTO status_check_template_detail (template_id, phase, raw_expression, output)
SELECT t.id, 'FUTURE', '<no-op: evaluated by azi-3-status-jobs>', o.output
FROM status_check_template t
JOIN status_check_description d ON d.id = t.template_description_id
JOIN (SELECT 'SUCCESS' AS output UNION ALL SELECT 'ALARM_RAISED') o
WHERE d.name = 'TOILET_ACTIVITY_MONITORING' AND t.version = 1
ON DUPLICATE KEY UPDATE raw_expression = VALUES(raw_expression);
