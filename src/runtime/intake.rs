//! Taking in one watched event, from the queue, the HTTP ingest or Megazord's history: find the
//! sessions it belongs to (starting one that is due but not yet started) and apply it to each.

use jiff::Timestamp;

use super::context::Context;
use crate::domain::{EventClass, RobotId, Session};
use crate::store::{ApplyOutcome, EventInput, StartOutcome, StoreError, StoredRule};
use crate::telemetry::names;

/// One watched event as a source delivers it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WatchedEvent {
    /// The robot.
    pub robot_id: RobotId,
    /// Megazord's `incoming_event.id` (or the local id of an event ingested over HTTP).
    pub incoming_event_id: u64,
    /// Megazord's `outgoing_event.id` when it came through a subscription.
    pub outgoing_event_id: Option<u64>,
    /// The event name; `None` means the rule's watched event.
    pub event_name: Option<String>,
    /// When it happened.
    pub occurred_at: Timestamp,
}

/// What taking an event in did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IntakeOutcome {
    /// Applied to its sessions; `duplicate` when every one of them had it already.
    Applied {
        /// Every session had seen it before.
        duplicate: bool,
        /// How each session classified it (empty for a duplicate).
        classes: Vec<EventClass>,
    },
    /// The robot has no enabled rule.
    NoRule,
    /// Not the rule's watched event.
    OtherEvent,
    /// It lies in no session of the rule (before the first, between sessions, or in one not
    /// yet due).
    NoSession,
}

impl IntakeOutcome {
    /// Whether nothing new was written.
    pub fn is_duplicate(&self) -> bool {
        matches!(
            self,
            IntakeOutcome::Applied {
                duplicate: true,
                ..
            }
        )
    }
}

impl Context {
    /// Takes in `event`: clamps an instant that lies in the future by more than the grace to
    /// the service clock (spec §6), starts its session if that is due and not yet started, and
    /// applies it to every session that contains it.
    pub async fn take_event(&self, event: WatchedEvent) -> Result<IntakeOutcome, StoreError> {
        let Some(stored) = self.store().rule(event.robot_id).await? else {
            metrics::counter!(names::EVENTS, "outcome" => "no_rule").increment(1);
            return Ok(IntakeOutcome::NoRule);
        };
        if !stored.rule.enabled {
            metrics::counter!(names::EVENTS, "outcome" => "no_rule").increment(1);
            return Ok(IntakeOutcome::NoRule);
        }
        if event
            .event_name
            .as_deref()
            .is_some_and(|name| name != stored.rule.watched_event)
        {
            metrics::counter!(names::EVENTS, "outcome" => "other_event").increment(1);
            return Ok(IntakeOutcome::OtherEvent);
        }
        let now = self.now();
        let mut occurred_at = event.occurred_at;
        if let Ok(limit) = now.checked_add(self.settings().grace)
            && occurred_at > limit
        {
            tracing::warn!(
                robotId = event.robot_id,
                eventId = event.incoming_event_id,
                occurredAt = %occurred_at,
                now = %now,
                "event lies in the future beyond the grace: taken as happening now"
            );
            occurred_at = now;
        }
        let input = EventInput {
            incoming_event_id: event.incoming_event_id,
            outgoing_event_id: event.outgoing_event_id,
            occurred_at,
        };
        let mut classes = Vec::new();
        let mut seen = 0;
        for session in Session::containing(&stored.rule, occurred_at) {
            let id = match self
                .store()
                .session_id(session.robot_id, session.date)
                .await?
            {
                Some(id) => id,
                // A session that ended without being started is not evaluated after the fact.
                None if session.end <= now => continue,
                None => self.start_session(&stored, session, now).await?,
            };
            seen += 1;
            match self.store().apply_event(id, input, now).await? {
                ApplyOutcome::Applied(class) => {
                    tracing::debug!(
                        robotId = event.robot_id,
                        statusCheckId = id,
                        eventId = event.incoming_event_id,
                        occurredAt = %occurred_at,
                        class = ?class,
                        "event taken in"
                    );
                    metrics::counter!(names::EVENTS, "outcome" => class_name(class)).increment(1);
                    classes.push(class);
                }
                ApplyOutcome::Duplicate => {
                    metrics::counter!(names::EVENTS, "outcome" => "duplicate").increment(1);
                }
                ApplyOutcome::NoSession => {}
            }
        }
        if seen == 0 {
            metrics::counter!(names::EVENTS, "outcome" => "no_session").increment(1);
            return Ok(IntakeOutcome::NoSession);
        }
        if !classes.is_empty() {
            self.wake_closer();
        }
        Ok(IntakeOutcome::Applied {
            duplicate: classes.is_empty(),
            classes,
        })
    }

    /// Starts `session` (the caller found no `status_check` for it) and returns its
    /// `status_check.id`; safe when another instance starts it at the same moment.
    pub(crate) async fn start_session(
        &self,
        stored: &StoredRule,
        session: Session,
        now: Timestamp,
    ) -> Result<u64, StoreError> {
        let outcome = self
            .store()
            .start_session(
                stored,
                session,
                &self.settings().owner,
                self.settings().refs,
                now,
            )
            .await?;
        if let StartOutcome::Created(id) = outcome {
            tracing::info!(
                robotId = session.robot_id,
                statusCheckId = id,
                date = %session.date,
                start = %session.start,
                end = %session.end,
                "session started"
            );
            metrics::counter!(names::SESSIONS_STARTED, "outcome" => "created").increment(1);
            // The scheduler subscribes it (an event may have started it before the scheduler).
            self.wake_scheduler();
        }
        self.wake_closer();
        Ok(outcome.status_check_id())
    }
}

fn class_name(class: EventClass) -> &'static str {
    match class {
        EventClass::Observed => "observed",
        EventClass::Late => "late",
        EventClass::Outside => "outside",
        EventClass::Ahead => "ahead",
    }
}
