//! What the service needs from the services around it, checked at start and then every hour
//! (contracts §6 items 17 and 19): that Megazord knows the provider the alarms are posted as
//! and every event the rules watch and raise (else every post and subscription is a 404), and
//! that each rule's zone is the one `robot_settings` gives the robot (else its hours are off).
//! Both are read from the shared database, where it has those tables. A missing provider or
//! schema makes `/ready` answer 503 until it is there; a zone that differs is logged.

use std::collections::BTreeSet;
use std::time::Duration;

use super::context::Context;
use super::error::RuntimeError;

/// How often the checks run again (wall clock).
pub const EVERY: Duration = Duration::from_secs(3600);

/// Runs the checks; returns what makes the service unable to do its work, if anything.
pub async fn check(ctx: &Context) -> Result<Option<String>, RuntimeError> {
    let Some(megazord) = ctx.megazord() else {
        return Ok(None);
    };
    let rules: Vec<_> = ctx
        .store()
        .rules()
        .await?
        .into_iter()
        .filter(|r| r.rule.enabled)
        .collect();
    let events: BTreeSet<String> = rules
        .iter()
        .flat_map(|r| [r.rule.watched_event.clone(), r.rule.alarm_event.clone()])
        .collect();
    let events: Vec<String> = events.into_iter().collect();
    let provider = &megazord.settings().provider_name;
    let problem = match ctx
        .store()
        .megazord_catalogue_gaps(provider, &events)
        .await?
    {
        Some(gaps) if !gaps.is_empty() => Some(gaps.to_string()),
        Some(_) => None,
        None => {
            tracing::debug!("the database has no event_provider / event_schema tables to check");
            None
        }
    };
    if let Some(problem) = &problem {
        tracing::error!(problem = %problem, provider = %provider,
            "megazord is missing what alarms and subscriptions need: they will be refused");
    }
    for stored in &rules {
        let rule = &stored.rule;
        if let Some(zone) = ctx.store().robot_zone(rule.robot_id).await?
            && zone != rule.timezone_name()
        {
            tracing::warn!(robotId = rule.robot_id, ruleZone = rule.timezone_name(),
                robotSettingsZone = %zone,
                "the rule's time zone differs from the robot's in robot_settings; the rule's is used");
        }
    }
    Ok(problem)
}
