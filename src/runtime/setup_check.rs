//! What the service needs from the services around it, checked at start and then every hour
//! (contracts §6 items 17 and 19): that Megazord knows the provider the alarms are posted as
//! and every event the rules watch and raise (else every post and subscription is a 404), and
//! that each rule's zone is the one `robot_settings` gives the robot (else its hours are off).
//! Both are read from the shared database, where it has those tables. A missing provider or
//! schema makes `/ready` answer 503 until it is there; a zone that differs is logged. Each is
//! one or two queries whatever the number of rules: the catalogue check runs before the
//! service answers at all, the zone check once it runs.

use std::time::Duration;

use super::context::Context;
use super::error::RuntimeError;

/// How often the checks run again (wall clock).
pub const EVERY: Duration = Duration::from_secs(3600);

/// Checks Megazord's catalogue; returns what makes the service unable to do its work, if
/// anything.
pub async fn check(ctx: &Context) -> Result<Option<String>, RuntimeError> {
    let Some(megazord) = ctx.megazord() else {
        return Ok(None);
    };
    let events = ctx.store().enabled_rule_events().await?;
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
    Ok(problem)
}

/// Logs every enabled rule whose zone differs from the robot's in `robot_settings`.
pub async fn check_zones(ctx: &Context) -> Result<(), RuntimeError> {
    if ctx.megazord().is_none() {
        return Ok(());
    }
    for difference in ctx.store().rule_zone_differences().await? {
        tracing::warn!(robotId = difference.robot_id.get(), ruleZone = %difference.rule_zone,
            robotSettingsZone = %difference.robot_zone,
            "the rule's time zone differs from the robot's in robot_settings; the rule's is used");
    }
    Ok(())
}
