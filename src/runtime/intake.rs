//! Taking in one watched event, from the queue, the HTTP ingest or Megazord's history: find the
//! sessions it belongs to (starting one that is due but not yet started) and apply it to each.

use jiff::Timestamp;

use super::context::Context;
use crate::domain::{EventClass, RobotId, Session};
use crate::store::{
    ApplyOutcome, EventIdSource, IntakeFound, IntakeRequest, SessionStep, StartOutcome,
    StatusCheckId, StoreError, StoredRule,
};
use crate::telemetry::names;

/// One watched event as a source delivers it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WatchedEvent {
    /// The robot.
    pub robot_id: RobotId,
    /// Megazord's `incoming_event.id` (or, for an event ingested over HTTP, the number its id
    /// hashes to, or a local id when it had none).
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
    /// the service clock (semantics §6), starts its session if that is due and not yet started, and
    /// applies it to every session that contains it; all in one transaction, shared with the
    /// events taken in at about the same time (group commit), and answered once it committed.
    pub async fn take_event(&self, event: WatchedEvent) -> Result<IntakeOutcome, StoreError> {
        let robot_id = event.robot_id;
        self.take_in(
            robot_id,
            EventIdSource::Known(event.incoming_event_id),
            event,
        )
        .await
    }

    /// As [`Context::take_event`] for an event posted over HTTP, whose numeric id is had
    /// from the id it was posted with (see [`crate::store::Store::event_id`]) in the same
    /// transaction.
    pub async fn take_posted_event(
        &self,
        robot_id: RobotId,
        external_id: Option<String>,
        event_name: String,
        occurred_at: Timestamp,
    ) -> Result<IntakeOutcome, StoreError> {
        let event = WatchedEvent {
            robot_id,
            incoming_event_id: 0,
            outgoing_event_id: None,
            event_name: Some(event_name),
            occurred_at,
        };
        self.take_in(robot_id, EventIdSource::External(external_id), event)
            .await
    }

    async fn take_in(
        &self,
        robot_id: RobotId,
        event_id: EventIdSource,
        event: WatchedEvent,
    ) -> Result<IntakeOutcome, StoreError> {
        let now = self.now();
        let settings = self.settings();
        let record = self
            .store()
            .take_in(IntakeRequest {
                robot_id,
                event_id,
                outgoing_event_id: event.outgoing_event_id,
                event_name: event.event_name,
                occurred_at: event.occurred_at,
                now,
                grace: settings.grace,
                owner: settings.owner.clone(),
                refs: settings.refs,
            })
            .await?;
        let steps = match record.found {
            IntakeFound::NoRule => {
                metrics::counter!(names::EVENTS, "outcome" => "no_rule").increment(1);
                return Ok(IntakeOutcome::NoRule);
            }
            IntakeFound::OtherEvent => {
                metrics::counter!(names::EVENTS, "outcome" => "other_event").increment(1);
                return Ok(IntakeOutcome::OtherEvent);
            }
            IntakeFound::Sessions(steps) => steps,
        };
        if record.clamped {
            tracing::warn!(
                robotId = robot_id.get(),
                eventId = record.incoming_event_id,
                occurredAt = %event.occurred_at,
                now = %now,
                "event lies in the future beyond the grace: taken as happening now"
            );
        }
        let mut classes = Vec::new();
        for step in &steps {
            if step.start_attempted {
                self.session_started(step);
            }
            match step.applied {
                ApplyOutcome::Applied(class) => {
                    tracing::debug!(
                        robotId = robot_id.get(),
                        statusCheckId = step.status_check_id.get(),
                        eventId = record.incoming_event_id,
                        occurredAt = %record.occurred_at,
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
        if steps.is_empty() {
            metrics::counter!(names::EVENTS, "outcome" => "no_session").increment(1);
            return Ok(IntakeOutcome::NoSession);
        }
        // An event moves its session's deadline later (a window restarts at an event inside
        // it), so the closer's next look is still early enough, unless the window restarted
        // with a gap shorter than its own. Waking the closer for every event had it look at
        // the store once per event under a flood of them.
        if steps.iter().any(|s| s.deadline_earlier) {
            self.wake_closer();
        }
        Ok(IntakeOutcome::Applied {
            duplicate: classes.is_empty(),
            classes,
        })
    }

    /// What starting a session is followed by, once it committed.
    fn session_started(&self, step: &SessionStep) {
        if step.started {
            self.announce_started(step.session, step.status_check_id);
        }
        self.wake_closer();
    }

    /// Logs and counts a session this instance created, and has the scheduler subscribe it (an
    /// event may have started it before the scheduler did).
    fn announce_started(&self, session: Session, status_check_id: StatusCheckId) {
        tracing::info!(
            robotId = session.robot_id.get(),
            statusCheckId = status_check_id.get(),
            date = %session.date,
            start = %session.start,
            end = %session.end,
            "session started"
        );
        metrics::counter!(names::SESSIONS_STARTED, "outcome" => "created").increment(1);
        self.wake_scheduler();
    }

    /// Starts several sessions (the caller found no `status_check` for any of them) and returns
    /// what became of each, in the order of `starts`: one transaction for all of them (each on
    /// its own should one fail); safe when another instance starts them at the same moment.
    pub(crate) async fn start_sessions(
        &self,
        starts: &[(StoredRule, Session)],
        now: Timestamp,
    ) -> Vec<Result<StartOutcome, StoreError>> {
        let outcomes = self
            .store()
            .start_sessions(starts, &self.settings().owner, self.settings().refs, now)
            .await;
        for ((_, session), outcome) in starts.iter().zip(&outcomes) {
            if let Ok(StartOutcome::Created(id)) = outcome {
                self.announce_started(*session, *id);
            }
        }
        if !starts.is_empty() {
            self.wake_closer();
        }
        outcomes
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
