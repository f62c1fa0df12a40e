//! What every runtime task shares: the store, the clock, the clients and the wake-up signals.

use std::collections::HashSet;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use jiff::{SignedDuration, Timestamp};
use tokio::sync::{Notify, watch};

use super::handoff::Handoff;
use super::watchdog::Liveness;
use crate::clock::Clock;
use crate::megazord::MegazordClient;
use crate::store::{DeadLetterRetention, StatusCheckId, StatusCheckRefs, Store};

/// Shared by the scheduler, the closer, the dispatcher, the janitor, the queue consumer and the
/// HTTP routes. Cheap to clone.
#[derive(Clone)]
pub struct Context {
    inner: Arc<Inner>,
}

struct Inner {
    store: Store,
    clock: Clock,
    settings: RuntimeSettings,
    megazord: Option<MegazordClient>,
    alarm_poster: Option<MegazordClient>,
    closer: Notify,
    dispatcher: Notify,
    handed: Notify,
    closing: watch::Sender<bool>,
    scheduler: Notify,
    janitor: Notify,
    /// Sessions the janitor took over, for the scheduler to prepare.
    taken_over: Mutex<HashSet<StatusCheckId>>,
    handoff: Handoff,
    liveness: Liveness,
}

/// How the runtime behaves; filled from the config file.
#[derive(Debug, Clone)]
pub struct RuntimeSettings {
    /// This instance's owner id (`azi-3-status-jobs:<instance>`), held in poller `lock_id`s.
    pub owner: String,
    /// How long after a deadline a window is closed (semantics §6).
    pub grace: SignedDuration,
    /// The script columns and template of `status_check` rows.
    pub refs: StatusCheckRefs,
    /// The queue suffix subscriptions ask Megazord to send to.
    pub queue_suffix: Option<String>,
    /// Where alarms go when there is no Megazord: a webhook that gets the alarm as JSON.
    pub alarm_webhook: Option<String>,
    /// How long a claimed alarm stays with its claimer before another may post it.
    pub alarm_lease: SignedDuration,
    /// Running sessions whose end lies this far in the past are ended as `FAILED`.
    pub abandoned_after: SignedDuration,
    /// How many windows the closer closes at once (each with its own history read).
    pub close_concurrency: usize,
    /// How many alarms are posted at once.
    pub dispatch_concurrency: usize,
    /// How many sessions are started and prepared at once.
    pub prepare_concurrency: usize,
    /// A session whose windows could not be closed for this long (service time) is ended as
    /// `FAILED`, when Megazord refused it for good or other sessions were closed meanwhile.
    pub failing_session_limit: SignedDuration,
    /// `/ready` answers 503 once a window is overdue by more than this (wall-clock time).
    pub ready_overdue_bound: Duration,
    /// How long and how many dead letters are kept.
    pub dead_letters: DeadLetterRetention,
}

impl Context {
    /// A context over `store`, `clock` and, when configured, Megazord.
    pub fn new(
        store: Store,
        clock: Clock,
        settings: RuntimeSettings,
        megazord: Option<MegazordClient>,
    ) -> Self {
        // An alarm post is never retried inside one call: when an answer is lost the alarm may
        // be stored all the same, so the next attempt must first look it up (the dispatcher
        // does, on the next claim).
        let alarm_poster = megazord.as_ref().and_then(|client| {
            let mut settings = client.settings().clone();
            settings.max_attempts = 1;
            MegazordClient::new(settings).ok()
        });
        Context {
            inner: Arc::new(Inner {
                store,
                clock,
                settings,
                megazord,
                alarm_poster,
                closer: Notify::new(),
                dispatcher: Notify::new(),
                handed: Notify::new(),
                closing: watch::Sender::new(false),
                scheduler: Notify::new(),
                janitor: Notify::new(),
                taken_over: Mutex::new(HashSet::new()),
                handoff: Handoff::default(),
                liveness: Liveness::default(),
            }),
        }
    }

    /// The durable store.
    pub fn store(&self) -> &Store {
        &self.inner.store
    }

    /// Service time.
    pub fn clock(&self) -> &Clock {
        &self.inner.clock
    }

    /// The current service time.
    pub fn now(&self) -> Timestamp {
        self.inner.clock.now()
    }

    /// The runtime settings.
    pub fn settings(&self) -> &RuntimeSettings {
        &self.inner.settings
    }

    /// Megazord, when the service talks to it (not in the embedded default).
    pub fn megazord(&self) -> Option<&MegazordClient> {
        self.inner.megazord.as_ref()
    }

    /// The Megazord client alarms are posted with: one request per call, no retry.
    pub fn alarm_poster(&self) -> Option<&MegazordClient> {
        self.inner.alarm_poster.as_ref()
    }

    /// Tells the closer that a deadline may have changed.
    pub fn wake_closer(&self) {
        self.inner.closer.notify_one();
    }

    /// Waits for [`Context::wake_closer`].
    pub async fn closer_woken(&self) {
        self.inner.closer.notified().await;
    }

    /// Tells the dispatcher that an alarm is waiting in the store, for it to claim.
    pub fn wake_dispatcher(&self) {
        self.inner.dispatcher.notify_one();
    }

    /// Tells the dispatcher that alarms wait in the [`Context::handoff`] queue: unlike
    /// [`Context::wake_dispatcher`], no reason to look at the store.
    pub fn hand_over(&self) {
        self.inner.handed.notify_one();
    }

    /// Waits for [`Context::hand_over`].
    pub async fn handed_over(&self) {
        self.inner.handed.notified().await;
    }

    /// Says whether the closer has windows to read or close (due, being read, or waiting
    /// for their close): while it has, the dispatcher leaves marking posted alarms sent for
    /// later, so that the bookkeeping does not take the database from the alarms still due.
    pub fn set_closing(&self, busy: bool) {
        self.inner.closing.send_if_modified(|was| {
            let changed = *was != busy;
            *was = busy;
            changed
        });
    }

    /// Follows [`Context::set_closing`].
    pub fn closing(&self) -> watch::Receiver<bool> {
        self.inner.closing.subscribe()
    }

    /// The alarms the closer claimed for the dispatcher as it closed their windows.
    pub fn handoff(&self) -> &Handoff {
        &self.inner.handoff
    }

    /// Waits for [`Context::wake_dispatcher`].
    pub async fn dispatcher_woken(&self) {
        self.inner.dispatcher.notified().await;
    }

    /// Tells the scheduler that rules may have changed.
    pub fn wake_scheduler(&self) {
        self.inner.scheduler.notify_one();
    }

    /// Waits for [`Context::wake_scheduler`].
    pub async fn scheduler_woken(&self) {
        self.inner.scheduler.notified().await;
    }

    /// Tells the janitor that a session ended (its subscription can go).
    pub fn wake_janitor(&self) {
        self.inner.janitor.notify_one();
    }

    /// Waits for [`Context::wake_janitor`].
    pub async fn janitor_woken(&self) {
        self.inner.janitor.notified().await;
    }

    /// Tells the scheduler that this instance took over `sessions` from an instance that went
    /// quiet: it prepares them (subscription, history) as its own.
    pub fn prepare_again(&self, sessions: impl IntoIterator<Item = StatusCheckId>) {
        self.inner
            .taken_over
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .extend(sessions);
        self.wake_scheduler();
    }

    /// The sessions handed to [`Context::prepare_again`] since the last call.
    pub fn taken_over(&self) -> HashSet<StatusCheckId> {
        std::mem::take(
            &mut *self
                .inner
                .taken_over
                .lock()
                .unwrap_or_else(PoisonError::into_inner),
        )
    }

    /// What the tasks report about themselves and what the watchdog found.
    pub fn liveness(&self) -> &Liveness {
        &self.inner.liveness
    }
}
