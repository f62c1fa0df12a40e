//! Housekeeping: keep this instance's poller locks fresh (so a foreign teardown job never takes
//! them, contracts §6 item 10), take over the sessions of instances that stopped keeping theirs,
//! delete Megazord subscriptions of ended sessions (404 counts as gone), and end sessions
//! abandoned for a day as `FAILED`.
//!
//! Only the poller locks are kept (and quiet instances' sessions taken over) while windows wait
//! to be closed: the rest reads every running session, and 100,000 windows ending together are
//! closed faster without it (design 2.21).

use std::collections::{BTreeMap, HashSet};
use std::time::Duration;

use tokio::time::Instant;

use tokio_util::sync::CancellationToken;

use super::context::Context;
use super::error::RuntimeError;
use crate::megazord::{CallRef, Deletion, MegazordClient};
use crate::numeric::count_f64;
use crate::store::StatusCheckId;
use crate::telemetry::names;

/// How often the janitor runs (wall-clock time), when no ended session wakes it sooner.
const EVERY: Duration = Duration::from_secs(60);
/// How often the poller locks are refreshed (wall-clock time); a row written within this time
/// (its window moved) is left as it is, so that none is more than a minute old when the legacy
/// cleanup looks.
const POLLER_EVERY: Duration = Duration::from_secs(30);
/// How many poller rows are refreshed in one transaction.
const POLLER_CHUNK: usize = 500;
/// How long another instance's poller row may go unrefreshed before this one takes its session
/// over. A live instance refreshes every [`POLLER_EVERY`] the rows it has not written for as
/// long, so none of its rows is much more than a minute old; twice that means it stopped.
const QUIET_FOR: Duration = Duration::from_secs(120);
/// How long one round may spend deleting subscriptions at Megazord: a round refreshes the
/// poller locks first, and the next must come in time.
const DELETES_AT_MOST: Duration = Duration::from_secs(20);
/// How long the housekeeping beside the poller locks may be put off while windows are being
/// closed.
const PUT_OFF_AT_MOST: Duration = Duration::from_secs(600);

/// What one round of the janitor does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Round {
    /// Every piece of housekeeping ([`pass`]), the poller locks first.
    Full,
    /// Only the poller locks.
    LocksOnly,
    /// Nothing yet.
    Nothing,
}

/// What the round at `now` does: the whole housekeeping when a minute has passed since the last
/// or a session ended (`woken`), unless windows are being closed (`closing`) and the last was
/// less than [`PUT_OFF_AT_MOST`] ago; else the poller locks when [`POLLER_EVERY`] has passed
/// since they were last refreshed.
fn round(
    now: Instant,
    closing: bool,
    woken: bool,
    last_full: Option<Instant>,
    last_refresh: Option<Instant>,
) -> Round {
    let since = |at: Instant| now.saturating_duration_since(at);
    let full_due = woken || last_full.is_none_or(|at| since(at) >= EVERY);
    let put_off = closing && last_full.is_some_and(|at| since(at) < PUT_OFF_AT_MOST);
    if full_due && !put_off {
        Round::Full
    } else if last_refresh.is_none_or(|at| since(at) >= POLLER_EVERY) {
        Round::LocksOnly
    } else {
        Round::Nothing
    }
}

/// Runs until `shutdown`.
pub async fn run(ctx: Context, shutdown: CancellationToken) {
    let mut closing = ctx.closing();
    let mut last_full: Option<Instant> = None;
    let mut last_refresh: Option<Instant> = None;
    let mut woken = false;
    loop {
        // Read before the match: the watch's guard must not be held across an await.
        let busy = *closing.borrow();
        let done = match round(Instant::now(), busy, woken, last_full, last_refresh) {
            Round::Full => pass(&ctx).await.map(|()| {
                woken = false;
                last_full = Some(Instant::now());
                last_refresh = last_full;
            }),
            // While windows are being closed a wake (a session ended) waits for them, its
            // subscription with it.
            Round::LocksOnly => keep_poller_locks(&ctx)
                .await
                .map(|()| last_refresh = Some(Instant::now())),
            Round::Nothing => Ok(()),
        };
        if let Err(e) = done {
            tracing::warn!(error = %e, "housekeeping failed; trying again");
        }
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = tokio::time::sleep(POLLER_EVERY) => {}
            () = ctx.janitor_woken() => woken = true,
            // A wake put off while windows were closed is taken as soon as they are, not a
            // poller period later: the ended session's subscription goes with it.
            Ok(()) = closing.changed(), if woken => {}
        }
    }
}

/// Refreshes the poller locks this instance holds, then takes over the sessions nobody keeps:
/// both every [`POLLER_EVERY`], also while windows are being closed.
async fn keep_poller_locks(ctx: &Context) -> Result<(), RuntimeError> {
    ctx.store()
        .refresh_poller_locks(&ctx.settings().owner, POLLER_EVERY, POLLER_CHUNK)
        .await?;
    // A failed take-over is tried again by the next round; it holds up no other housekeeping.
    if let Err(e) = take_over_quiet_sessions(ctx).await {
        tracing::warn!(error = %e, "sessions of quiet instances not taken over yet");
    }
    Ok(())
}

/// Takes over the running sessions whose poller rows no instance keeps (their instance stopped,
/// or the legacy cleanup released them), so that their poller locks are kept fresh again and
/// their history replayed here. Each round of [`POLLER_CHUNK`] rows is handed to the scheduler
/// as soon as it is taken, so that a later round that fails loses none of it; a round whose
/// take-over failed is handed over too, since its `COMMIT` may have gone through.
async fn take_over_quiet_sessions(ctx: &Context) -> Result<(), RuntimeError> {
    let store = ctx.store();
    let owner = &ctx.settings().owner;
    let mut from: BTreeMap<String, usize> = BTreeMap::new();
    let mut after = 0;
    let result = loop {
        let quiet = match store
            .quiet_sessions(owner, QUIET_FOR, after, POLLER_CHUNK)
            .await
        {
            Ok(quiet) => quiet,
            Err(e) => break Err(e.into()),
        };
        let (Some(last), more) = (quiet.last(), quiet.len() == POLLER_CHUNK) else {
            break Ok(());
        };
        after = last.status_check_id.get();
        let ids: Vec<StatusCheckId> = quiet.iter().map(|q| q.status_check_id).collect();
        let taken = match store.take_over_sessions(owner, QUIET_FOR, &ids).await {
            Ok(taken) => taken,
            Err(e) => {
                // Its `COMMIT` may have gone through all the same: the scheduler looks each of
                // them up again, and prepares those this instance keeps.
                ctx.prepare_again(ids);
                break Err(e.into());
            }
        };
        let taken_set: HashSet<StatusCheckId> = taken.iter().copied().collect();
        for session in quiet
            .iter()
            .filter(|q| taken_set.contains(&q.status_check_id))
        {
            let holder = session.held_by.as_deref().unwrap_or("none");
            *from.entry(holder.to_string()).or_default() += 1;
        }
        metrics::counter!(names::SESSIONS_TAKEN_OVER).increment(taken.len() as u64);
        ctx.prepare_again(taken);
        if !more {
            break Ok(());
        }
    };
    for (holder, sessions) in from {
        tracing::warn!(from = %holder, sessions, quietForSeconds = QUIET_FOR.as_secs(),
            "took over the sessions of an instance that stopped keeping them; preparing them here");
    }
    result
}

/// One round of housekeeping.
pub async fn pass(ctx: &Context) -> Result<(), RuntimeError> {
    let store = ctx.store();
    let now = ctx.now();
    keep_poller_locks(ctx).await?;
    let running = store.running_session_count().await?;
    metrics::gauge!(names::ACTIVE_SESSIONS).set(count_f64(running));
    let abandoned_before = now
        .checked_sub(ctx.settings().abandoned_after)
        .unwrap_or(now);
    let abandoned = store
        .running_sessions_ended_before(abandoned_before)
        .await?;
    for session in &abandoned {
        tracing::warn!(statusCheckId = session.status_check_id.get(), robotId = session.robot_id.get(),
            end = %session.end, "session abandoned for a day: ended as FAILED");
        store
            .fail_session(
                session.status_check_id,
                "the session was still running a day after its end",
                now,
            )
            .await?;
    }
    // A failed prune waits for the next pass; it holds up no other housekeeping.
    match store
        .prune_dead_letters(ctx.settings().dead_letters, now)
        .await
    {
        Ok(0) => {}
        Ok(deleted) => tracing::info!(deleted, "old dead letters deleted"),
        Err(e) => tracing::warn!(error = %e, "old dead letters not deleted yet"),
    }
    let Some(megazord) = ctx.megazord() else {
        return Ok(());
    };
    // Bounded, so that a slow Megazord never keeps the poller locks from their next refresh;
    // a delete cut short is tried again by the next round.
    match tokio::time::timeout(DELETES_AT_MOST, delete_ended_subscriptions(ctx, megazord)).await {
        Ok(done) => done,
        Err(_) => {
            tracing::warn!(
                seconds = DELETES_AT_MOST.as_secs(),
                "deleting the subscriptions of ended sessions took too long; the rest wait for the next round"
            );
            Ok(())
        }
    }
}

/// Deletes up to 100 subscriptions of ended sessions at Megazord (404 counts as gone).
async fn delete_ended_subscriptions(
    ctx: &Context,
    megazord: &MegazordClient,
) -> Result<(), RuntimeError> {
    let store = ctx.store();
    let now = ctx.now();
    for leftover in store.ended_subscriptions(100).await? {
        let call_ref = CallRef::new();
        match megazord
            .delete_subscription(leftover.robot_id, leftover.subscription_id, &call_ref)
            .await
        {
            Ok(deletion) => {
                tracing::info!(statusCheckId = leftover.status_check_id.get(),
                    subscriptionId = leftover.subscription_id, gone = matches!(deletion, Deletion::AlreadyGone),
                    callRef = %call_ref, "subscription deleted");
                store
                    .forget_subscription(leftover.subscription_id, now)
                    .await?;
            }
            Err(e) => {
                tracing::warn!(subscriptionId = leftover.subscription_id, error = %e,
                    "subscription not deleted yet");
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINUTE: Duration = Duration::from_secs(60);

    #[test]
    fn the_first_round_is_a_whole_one_even_while_windows_close() {
        let now = Instant::now();
        for closing in [false, true] {
            assert_eq!(round(now, closing, false, None, None), Round::Full);
        }
    }

    #[test]
    fn a_whole_round_comes_every_minute_or_when_a_session_ended() {
        let t0 = Instant::now();
        let (last, refreshed) = (Some(t0), Some(t0));
        assert_eq!(
            round(t0 + MINUTE / 4, false, false, last, refreshed),
            Round::Nothing
        );
        assert_eq!(
            round(t0 + MINUTE / 4, false, true, last, refreshed),
            Round::Full
        );
        assert_eq!(
            round(t0 + MINUTE / 2, false, false, last, refreshed),
            Round::LocksOnly
        );
        assert_eq!(
            round(t0 + MINUTE, false, false, last, refreshed),
            Round::Full
        );
    }

    #[test]
    fn while_windows_close_only_the_locks_are_kept_for_ten_minutes_at_most() {
        let t0 = Instant::now();
        let last = Some(t0);
        // A session ended: its subscription waits for the closes.
        assert_eq!(
            round(t0 + MINUTE / 4, true, true, last, last),
            Round::Nothing
        );
        assert_eq!(round(t0 + MINUTE, true, true, last, last), Round::LocksOnly);
        assert_eq!(
            round(t0 + 9 * MINUTE, true, false, last, Some(t0 + 9 * MINUTE)),
            Round::Nothing
        );
        assert_eq!(
            round(t0 + 10 * MINUTE, true, false, last, last),
            Round::Full
        );
    }
}
