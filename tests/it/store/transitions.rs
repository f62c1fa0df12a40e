//! The outcome of every store transition, on SQLite and on MariaDB.

use super::support::{TestDb, refs, rule, snapshot, started, ts};
use azi3_status_jobs::domain::RobotId;
use azi3_status_jobs::domain::{EventClass, SessionResult, evaluate};
use azi3_status_jobs::megazord::MegazordEventId;
use azi3_status_jobs::store::{
    ApplyOutcome, Arg, CloseOutcome, EndOutcome, EventInput, StartOutcome, StatusCheckId, Store,
};
use jiff::civil::date;
use jiff::{SignedDuration, Timestamp};
use std::time::Duration;

fn event(id: u64, at: &str) -> EventInput {
    EventInput {
        incoming_event_id: id,
        outgoing_event_id: Some(id + 10_000),
        occurred_at: ts(at),
    }
}

/// Drives a session the way the live service does when every event arrives on time: before
/// each event, closes every window whose deadline is before it; at the end, closes the rest.
async fn drive(store: &Store, id: StatusCheckId, events: &[EventInput]) {
    for e in events {
        close_until(store, id, Some(e.occurred_at)).await;
        store.apply_event(id, *e, e.occurred_at).await.unwrap();
    }
    close_until(store, id, None).await;
}

async fn close_until(store: &Store, id: StatusCheckId, before: Option<Timestamp>) {
    loop {
        let view = store.session(id).await.unwrap().unwrap();
        let Some(deadline) = view.state.deadline() else {
            return;
        };
        if before.is_some_and(|t| deadline >= t) {
            return;
        }
        store.close_window(id, deadline, deadline).await.unwrap();
    }
}

#[tokio::test]
async fn start_session_creates_the_shared_rows_once() {
    for db in TestDb::both().await {
        let r = rule("08:00", "20:00", "2h");
        let (id, session) = started(&db.store, &r, date(2025, 3, 30)).await;
        let stored = db.store.rule(RobotId::new(7)).await.unwrap().unwrap();
        let again = db
            .store
            .start_session(
                &stored,
                session,
                "other-instance",
                refs(&db.store).await,
                ts("2025-03-30T06:00:00Z"),
            )
            .await
            .unwrap();
        assert_eq!(again, StartOutcome::Existing(id), "{}", db.name);
        let view = db.store.session(id).await.unwrap().unwrap();
        assert_eq!(
            (view.phase.as_str(), view.result.as_str()),
            ("FUTURE", "PENDING")
        );
        assert_eq!(
            view.poller,
            Some((
                ts("2025-03-30T06:00:00Z"),
                ts("2025-03-30T08:00:00Z"),
                Some("azi3-status-jobs:test".into())
            ))
        );
        assert!(view.records.is_empty());
        let query = format!(
            "SELECT robot_id, status_check_template_id, step_id, script_version_id, scheduled_id, {} \
             FROM status_check WHERE id = {id}",
            db.store.dialect().epoch_seconds("planned_at")
        );
        let rows = db.store.select_sql(&[&query]).await.unwrap().remove(0);
        let row: Vec<i64> = rows[0]
            .iter()
            .map(|column| column.as_deref().unwrap().parse().unwrap())
            .collect();
        assert_eq!(row[0], 7);
        assert_eq!(row[1], i64::from(refs(&db.store).await.template_id));
        assert_eq!((row[2], row[3], row[4]), (901, 77, 0));
        assert_eq!(row[5], session.start.as_second());
        db.finish().await;
    }
}

#[tokio::test]
async fn worked_example_gives_the_spec_alarms_records_and_result() {
    for db in TestDb::both().await {
        let r = rule("08:00", "20:00", "2h");
        let (id, session) = started(&db.store, &r, date(2025, 3, 30)).await;
        let events = [
            event(1, "2025-03-30T07:10:00Z"),
            event(2, "2025-03-30T07:40:00Z"),
            event(3, "2025-03-30T11:00:00Z"),
        ];
        drive(&db.store, id, &events).await;
        let expected = evaluate(
            &r,
            session,
            &events.iter().map(|e| e.occurred_at).collect::<Vec<_>>(),
        );
        let alarms = db.store.alarms_of(id).await.unwrap();
        let refs_stored: Vec<_> = alarms.iter().map(|a| a.reference_id.clone()).collect();
        let refs_core: Vec<_> = expected.alarms.iter().map(|a| a.reference_id()).collect();
        assert_eq!(refs_stored, refs_core, "{}", db.name);
        assert_eq!(refs_stored.len(), 4);
        let view = db.store.session(id).await.unwrap().unwrap();
        assert_eq!(
            (view.phase.as_str(), view.result.as_str()),
            ("COMPLETED", "ALARM_RAISED")
        );
        assert_eq!(
            view.poller, None,
            "the poller row goes when the session ends"
        );
        let records: Vec<_> = view
            .records
            .iter()
            .map(|r| {
                (
                    r.order,
                    r.result.as_str(),
                    r.incoming_event_id,
                    r.outgoing_event_id,
                    r.created_at,
                )
            })
            .collect();
        assert_eq!(
            records,
            vec![
                (
                    1,
                    "EVENT_OBSERVED",
                    Some(1),
                    Some(10_001),
                    ts("2025-03-30T07:10:00Z")
                ),
                (
                    2,
                    "EVENT_OBSERVED",
                    Some(2),
                    Some(10_002),
                    ts("2025-03-30T07:40:00Z")
                ),
                (
                    3,
                    "EVENT_OBSERVED",
                    Some(3),
                    Some(10_003),
                    ts("2025-03-30T11:00:00Z")
                ),
            ]
        );
        assert_eq!(view.state.result, SessionResult::AlarmRaised);
        assert_eq!(view.state.alarms, 4);
        db.finish().await;
    }
}

#[tokio::test]
async fn events_delivered_early_wait_and_give_the_same_outcome() {
    for db in TestDb::both().await {
        let r = rule("08:00", "20:00", "2h");
        let (id, session) = started(&db.store, &r, date(2025, 3, 30)).await;
        let events = [
            event(1, "2025-03-30T07:10:00Z"),
            event(2, "2025-03-30T07:40:00Z"),
            event(3, "2025-03-30T11:00:00Z"),
            event(4, "2025-03-30T11:30:00Z"),
        ];
        // Everything arrives before any window closes, the last two in reverse order.
        let mut classes = Vec::new();
        for e in [events[0], events[1], events[3], events[2]] {
            classes.push(
                db.store
                    .apply_event(id, e, ts("2025-03-30T06:00:00Z"))
                    .await
                    .unwrap(),
            );
        }
        let observed = ApplyOutcome::Applied(EventClass::Observed);
        let ahead = ApplyOutcome::Applied(EventClass::Ahead);
        assert_eq!(
            classes,
            vec![observed, observed, ahead, ahead],
            "{}",
            db.name
        );
        close_until(&db.store, id, None).await;
        let expected = evaluate(
            &r,
            session,
            &events.iter().map(|e| e.occurred_at).collect::<Vec<_>>(),
        );
        let stored: Vec<_> = db
            .store
            .alarms_of(id)
            .await
            .unwrap()
            .into_iter()
            .map(|a| a.identity)
            .collect();
        let core: Vec<_> = expected.alarms.iter().map(|a| a.identity).collect();
        assert_eq!(stored, core, "{}", db.name);
        let view = db.store.session(id).await.unwrap().unwrap();
        let observed: Vec<_> = view
            .records
            .iter()
            .map(|r| (r.incoming_event_id, r.result.as_str()))
            .collect();
        assert_eq!(
            observed,
            vec![
                (Some(1), "EVENT_OBSERVED"),
                (Some(2), "EVENT_OBSERVED"),
                (Some(3), "EVENT_OBSERVED"),
                (Some(4), "EVENT_OBSERVED"),
            ]
        );
        db.finish().await;
    }
}

#[tokio::test]
async fn duplicates_write_nothing_late_events_are_recorded_outside_events_are_not() {
    for db in TestDb::both().await {
        let r = rule("08:00", "20:00", "2h");
        let (id, _) = started(&db.store, &r, date(2025, 3, 30)).await;
        let e = event(1, "2025-03-30T07:00:00Z");
        assert_eq!(
            db.store.apply_event(id, e, e.occurred_at).await.unwrap(),
            ApplyOutcome::Applied(EventClass::Observed)
        );
        let before = snapshot(&db.store).await;
        assert_eq!(
            db.store.apply_event(id, e, e.occurred_at).await.unwrap(),
            ApplyOutcome::Duplicate
        );
        assert_eq!(
            snapshot(&db.store).await,
            before,
            "{}: a duplicate changes nothing",
            db.name
        );

        let late = event(2, "2025-03-30T06:30:00Z");
        assert_eq!(
            db.store.apply_event(id, late, e.occurred_at).await.unwrap(),
            ApplyOutcome::Applied(EventClass::Late)
        );
        let outside = event(3, "2025-03-30T05:00:00Z");
        assert_eq!(
            db.store
                .apply_event(id, outside, e.occurred_at)
                .await
                .unwrap(),
            ApplyOutcome::Applied(EventClass::Outside)
        );
        assert_eq!(
            db.store
                .apply_event(id, outside, e.occurred_at)
                .await
                .unwrap(),
            ApplyOutcome::Duplicate
        );
        let view = db.store.session(id).await.unwrap().unwrap();
        let records: Vec<_> = view
            .records
            .iter()
            .map(|r| (r.order, r.result.as_str(), r.incoming_event_id))
            .collect();
        assert_eq!(
            records,
            vec![(1, "EVENT_OBSERVED", Some(1)), (2, "EVENT_LATE", Some(2))]
        );
        assert_eq!(
            view.state.window.start,
            ts("2025-03-30T07:00:00Z"),
            "a late event never moves the window"
        );
        assert_eq!(view.poller.unwrap().0, ts("2025-03-30T07:00:00Z"));
        let before = snapshot(&db.store).await;
        assert_eq!(
            db.store
                .apply_event(StatusCheckId::new(999), e, e.occurred_at)
                .await
                .unwrap(),
            ApplyOutcome::NoSession
        );
        assert_eq!(
            snapshot(&db.store).await,
            before,
            "an event for a session that does not exist leaves nothing behind"
        );
        db.finish().await;
    }
}

#[tokio::test]
async fn close_window_acts_once_per_deadline() {
    for db in TestDb::both().await {
        let r = rule("08:00", "20:00", "2h");
        let (id, _) = started(&db.store, &r, date(2025, 3, 30)).await;
        let u = ts("2025-03-30T08:00:00Z");
        let first = db.store.close_window(id, u, u).await.unwrap();
        let CloseOutcome::Closed {
            alarm: Some(alarm),
            next: Some(next),
            result,
        } = first
        else {
            panic!("{}: expected an alarm, got {first:?}", db.name);
        };
        assert_eq!(
            alarm.reference_id(),
            format!(
                "nta-7-2025-03-30-{}",
                ts("2025-03-30T06:00:00Z").as_second()
            )
        );
        assert_eq!((next.start, next.end), (u, ts("2025-03-30T10:00:00Z")));
        assert_eq!(result, SessionResult::Pending);
        let before = snapshot(&db.store).await;
        assert_eq!(
            db.store.close_window(id, u, u).await.unwrap(),
            CloseOutcome::Stale {
                deadline: ts("2025-03-30T10:00:00Z")
            }
        );
        assert_eq!(
            snapshot(&db.store).await,
            before,
            "a second close of the same deadline changes nothing"
        );
        let view = db.store.session(id).await.unwrap().unwrap();
        assert_eq!(
            view.poller.map(|p| (p.0, p.1)),
            Some((u, ts("2025-03-30T10:00:00Z")))
        );
        let outbox = db.store.alarms_of(id).await.unwrap();
        assert_eq!(outbox.len(), 1);
        assert_eq!(
            (outbox[0].state.as_str(), outbox[0].window_end),
            ("pending", u)
        );
        db.finish().await;
    }
}

#[tokio::test]
async fn ending_a_session_completes_it_and_removes_the_poller() {
    for db in TestDb::both().await {
        let r = rule("08:00", "20:00", "2h");
        let (id, _) = started(&db.store, &r, date(2025, 3, 30)).await;
        let now = ts("2025-03-30T07:00:00Z");
        assert_eq!(
            db.store
                .end_session(id, SessionResult::Failed, now)
                .await
                .unwrap(),
            EndOutcome::Ended
        );
        assert_eq!(
            db.store
                .end_session(id, SessionResult::Disabled, now)
                .await
                .unwrap(),
            EndOutcome::NotRunning
        );
        let view = db.store.session(id).await.unwrap().unwrap();
        assert_eq!(
            (view.phase.as_str(), view.result.as_str()),
            ("COMPLETED", "FAILED")
        );
        assert_eq!(view.poller, None);
        assert!(
            db.store
                .end_session(id, SessionResult::Success, now)
                .await
                .is_ok()
        );
        let late = event(5, "2025-03-30T07:30:00Z");
        assert_eq!(
            db.store.apply_event(id, late, now).await.unwrap(),
            ApplyOutcome::Applied(EventClass::Late),
            "after the end, an event of the session is late"
        );
        db.finish().await;
    }
}

#[tokio::test]
async fn rule_changes_follow_spec_section_6() {
    for db in TestDb::both().await {
        let now = ts("2025-03-30T07:00:00Z");
        let r = rule("08:00", "20:00", "2h");
        let (id, _) = started(&db.store, &r, date(2025, 3, 30)).await;
        assert_eq!(
            db.store
                .rule(RobotId::new(7))
                .await
                .unwrap()
                .unwrap()
                .version,
            1
        );
        let same = db.store.set_rule(&r, now).await.unwrap();
        assert!(!same.changed);
        assert_eq!(same.version, 1, "saving the same rule keeps the version");

        // A new gap applies from the next window.
        let shorter = rule("08:00", "20:00", "1h");
        let change = db.store.set_rule(&shorter, now).await.unwrap();
        assert_eq!(
            (change.version, change.changed, change.sessions.clone()),
            (2, true, vec![id])
        );
        let view = db.store.session(id).await.unwrap().unwrap();
        assert_eq!(
            view.state.window.end,
            ts("2025-03-30T08:00:00Z"),
            "the current window keeps its gap"
        );
        db.store
            .close_window(id, ts("2025-03-30T08:00:00Z"), now)
            .await
            .unwrap();
        let view = db.store.session(id).await.unwrap().unwrap();
        assert_eq!(view.state.window.end, ts("2025-03-30T09:00:00Z"));

        // A new end re-clamps the current window and the session end.
        let earlier = rule("08:00", "10:30", "1h");
        db.store.set_rule(&earlier, now).await.unwrap();
        let view = db.store.session(id).await.unwrap().unwrap();
        assert_eq!(view.state.session.end, ts("2025-03-30T08:30:00Z"));
        assert_eq!(view.state.window.end, ts("2025-03-30T08:30:00Z"));
        assert_eq!(view.poller.unwrap().1, ts("2025-03-30T08:30:00Z"));

        // Disabling ends the session with DISABLED.
        let disabled = db
            .store
            .disable_rule(RobotId::new(7), now)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(disabled.version, 4);
        assert!(
            !db.store
                .rule(RobotId::new(7))
                .await
                .unwrap()
                .unwrap()
                .rule
                .enabled
        );
        let view = db.store.session(id).await.unwrap().unwrap();
        assert_eq!(
            (view.phase.as_str(), view.result.as_str()),
            ("COMPLETED", "DISABLED")
        );
        assert_eq!(view.poller, None);
        assert!(
            db.store
                .disable_rule(RobotId::new(8), now)
                .await
                .unwrap()
                .is_none()
        );
        let disabled_rule = db.store.rule(RobotId::new(7)).await.unwrap().unwrap();
        let next_day =
            azi3_status_jobs::domain::Session::on(&disabled_rule.rule, date(2025, 3, 31)).unwrap();
        let refused = db
            .store
            .start_session(
                &disabled_rule,
                next_day,
                "owner",
                refs(&db.store).await,
                now,
            )
            .await;
        assert!(refused.is_err(), "no session starts for a disabled rule");
        assert_eq!(db.store.rules().await.unwrap().len(), 1);
        db.finish().await;
    }
}

#[tokio::test]
async fn outbox_claims_sends_and_retries() {
    for db in TestDb::both().await {
        let r = rule("08:00", "20:00", "2h");
        let (id, _) = started(&db.store, &r, date(2025, 3, 30)).await;
        let first_u = ts("2025-03-30T08:00:00Z");
        db.store.close_window(id, first_u, first_u).await.unwrap();
        db.store
            .close_window(id, ts("2025-03-30T10:00:00Z"), first_u)
            .await
            .unwrap();
        let lease = SignedDuration::from_mins(5);
        let now = ts("2025-03-30T10:01:00Z");
        let a = db.store.claim_alarms("a", 1, now, lease).await.unwrap();
        let b = db.store.claim_alarms("b", 5, now, lease).await.unwrap();
        assert_eq!((a.len(), b.len()), (1, 1), "{}", db.name);
        assert_ne!(a[0].id, b[0].id);
        assert!(
            db.store
                .claim_alarms("c", 5, now, lease)
                .await
                .unwrap()
                .is_empty()
        );
        assert_eq!(a[0].attempts, 1);

        // A failure reported by a dispatcher that does not hold the claim changes nothing.
        assert!(
            !db.store
                .mark_alarm_failed("a", b[0].id, "HTTP 503", now)
                .await
                .unwrap()
        );
        // A failed post is claimable again; a claim older than the lease too.
        assert!(
            db.store
                .mark_alarm_failed("b", b[0].id, "HTTP 503", now)
                .await
                .unwrap()
        );
        let again = db.store.claim_alarms("c", 5, now, lease).await.unwrap();
        assert_eq!(
            again.iter().map(|x| x.id).collect::<Vec<_>>(),
            vec![b[0].id]
        );
        assert_eq!(
            (again[0].attempts, again[0].last_error.as_deref()),
            (2, Some("HTTP 503"))
        );
        let expired = db
            .store
            .claim_alarms("d", 5, now + SignedDuration::from_mins(6), lease)
            .await
            .unwrap();
        assert_eq!(expired.len(), 2);

        assert!(
            db.store
                .mark_alarm_sent(a[0].id, MegazordEventId::new(555), now)
                .await
                .unwrap()
        );
        assert!(
            !db.store
                .mark_alarm_sent(a[0].id, MegazordEventId::new(555), now)
                .await
                .unwrap(),
            "sent once"
        );
        assert!(
            !db.store
                .mark_alarm_failed("a", a[0].id, "late failure", now)
                .await
                .unwrap()
        );
        let view = db.store.session(id).await.unwrap().unwrap();
        let sent: Vec<_> = view
            .records
            .iter()
            .map(|r| {
                (
                    r.result.as_str(),
                    r.event_name.as_str(),
                    r.incoming_event_id,
                    r.created_at,
                )
            })
            .collect();
        assert_eq!(
            sent,
            vec![(
                "ALARM_SENT",
                "NO_TOILET_ACTIVITY_ALARM",
                Some(555),
                a[0].window_end
            )]
        );
        let outbox = db.store.alarms_of(id).await.unwrap();
        let sent_row = outbox.iter().find(|x| x.id == a[0].id).unwrap();
        assert_eq!(
            (sent_row.state.as_str(), sent_row.megazord_incoming_id),
            ("sent", Some(MegazordEventId::new(555)))
        );
        db.finish().await;
    }
}

#[tokio::test]
async fn subscription_dead_letters_metadata_and_poller_locks() {
    for db in TestDb::both().await {
        let r = rule("08:00", "20:00", "2h");
        let (id, _) = started(&db.store, &r, date(2025, 3, 30)).await;
        let at = ts("2025-03-30T06:00:05Z");
        assert!(db.store.record_subscribed(id, 4242, at).await.unwrap());
        let view = db.store.session(id).await.unwrap().unwrap();
        assert_eq!(view.subscription_id, Some(4242));
        assert_eq!(view.records[0].result, "SUBSCRIBED");
        assert_eq!(view.records[0].created_at, at);

        db.store
            .record_dead_letter("{bad", "not JSON", at)
            .await
            .unwrap();
        db.store
            .record_dead_letter("{bad", "still not JSON", at + SignedDuration::from_secs(5))
            .await
            .unwrap();
        db.store
            .record_dead_letter("{}", "no sourceEvent", at)
            .await
            .unwrap();
        let letters = db.store.dead_letters().await.unwrap();
        assert_eq!(letters.len(), 2);
        assert_eq!(
            (letters[0].count, letters[0].reason.as_str()),
            (2, "still not JSON")
        );
        assert_eq!(
            (letters[0].first_seen, letters[0].last_seen),
            (at, at + SignedDuration::from_secs(5))
        );

        assert_eq!(db.store.meta("instance").await.unwrap(), None);
        db.store.set_meta("instance", "one", at).await.unwrap();
        db.store.set_meta("instance", "two", at).await.unwrap();
        assert_eq!(
            db.store.meta("instance").await.unwrap().as_deref(),
            Some("two")
        );

        assert_eq!(
            db.store
                .refresh_poller_locks("nobody", Duration::ZERO, 500)
                .await
                .unwrap(),
            0
        );
        db.store
            .refresh_poller_locks("azi3-status-jobs:test", Duration::ZERO, 500)
            .await
            .unwrap();

        let listed = db
            .store
            .sessions(RobotId::new(7), date(2025, 3, 29), date(2025, 3, 31))
            .await
            .unwrap();
        assert_eq!(
            listed.iter().map(|s| s.status_check_id).collect::<Vec<_>>(),
            vec![id]
        );
        assert!(
            db.store
                .sessions(RobotId::new(7), date(2025, 4, 1), date(2025, 4, 2))
                .await
                .unwrap()
                .is_empty()
        );
        let due = db
            .store
            .due_windows(ts("2025-03-30T08:00:00Z"), 10)
            .await
            .unwrap();
        assert_eq!(due.len(), 1);
        assert!(
            db.store
                .due_windows(ts("2025-03-30T07:59:59Z"), 10)
                .await
                .unwrap()
                .is_empty()
        );
        db.finish().await;
    }
}

/// Starts the session of robots `1..=robots` on `date`, each with the rule 08:00–20:00, gap 2 h,
/// and returns their ids.
async fn started_robots(store: &Store, robots: u32, date: jiff::civil::Date) -> Vec<StatusCheckId> {
    let mut ids = Vec::new();
    for robot in 1..=robots {
        let mut r = rule("08:00", "20:00", "2h");
        r.robot_id = RobotId::new(robot);
        ids.push(started(store, &r, date).await.0);
    }
    ids
}

/// A restarted process under the same instance id ends the claims its earlier process held:
/// claimable at once, not after the lease, and counted as tried (looked up before posting).
/// Another instance's claims and its own later ones stay.
#[tokio::test]
async fn a_restart_ends_only_the_earlier_claims_of_its_own_instance() {
    for db in TestDb::both().await {
        let ids = started_robots(&db.store, 3, date(2025, 4, 2)).await;
        let u = ts("2025-04-02T08:00:00Z");
        for id in &ids {
            db.store.close_window(*id, u, u).await.unwrap();
        }
        let lease = SignedDuration::from_mins(5);
        let (claimed, restarted) = (ts("2025-04-02T08:01:00Z"), ts("2025-04-02T08:02:00Z"));
        let mine = db
            .store
            .claim_alarms("me", 1, claimed, lease)
            .await
            .unwrap();
        let theirs = db
            .store
            .claim_alarms("other", 1, claimed, lease)
            .await
            .unwrap();
        let later = db
            .store
            .claim_alarms("me", 1, restarted, lease)
            .await
            .unwrap();
        assert_eq!(
            (mine.len(), theirs.len(), later.len()),
            (1, 1, 1),
            "{}",
            db.name
        );

        assert_eq!(
            db.store.end_earlier_claims("me", restarted).await.unwrap(),
            1
        );
        // Within every lease: only the earlier claim of "me" is claimable.
        let again = db
            .store
            .claim_alarms("me", 5, restarted, lease)
            .await
            .unwrap();
        assert_eq!(
            again.iter().map(|a| (a.id, a.attempts)).collect::<Vec<_>>(),
            vec![(mine[0].id, 2)],
            "{}",
            db.name
        );
        assert_eq!(
            db.store.end_earlier_claims("me", restarted).await.unwrap(),
            0
        );
        db.finish().await;
    }
}

/// The watchdog's counts read no more rows than their cap: exact below it, the cap at it.
#[tokio::test]
async fn the_backlog_is_counted_up_to_its_cap() {
    for db in TestDb::both().await {
        let ids = started_robots(&db.store, 3, date(2025, 4, 2)).await;
        // Every first window ends at 10:00 local, 08:00Z.
        let u = ts("2025-04-02T08:00:00Z");
        let later = ts("2025-04-02T09:00:00Z");
        for (cap, counted) in [(10, 3), (3, 3), (2, 2)] {
            let backlog = db.store.backlog(later, cap).await.unwrap();
            assert_eq!(backlog.overdue_windows, counted, "{}: cap {cap}", db.name);
            assert_eq!(backlog.oldest_overdue_deadline, Some(u), "{}", db.name);
            assert_eq!(backlog.unsent_alarms, 0, "{}", db.name);
        }
        for id in &ids {
            db.store.close_window(*id, u, u).await.unwrap();
        }
        for (cap, counted) in [(10, 3), (2, 2)] {
            let backlog = db.store.backlog(later, cap).await.unwrap();
            assert_eq!(backlog.overdue_windows, 0, "{}: cap {cap}", db.name);
            assert_eq!(backlog.unsent_alarms, counted, "{}: cap {cap}", db.name);
            assert_eq!(backlog.oldest_unsent_alarm, Some(u), "{}", db.name);
        }
        db.finish().await;
    }
}

/// The poller locks are refreshed a few rows to a transaction, every row held that was not
/// written lately and no other.
#[tokio::test]
async fn poller_locks_are_refreshed_in_chunks_where_they_went_stale() {
    for db in TestDb::both().await {
        let ids = started_robots(&db.store, 7, date(2025, 3, 30)).await;
        let owner = "azi3-status-jobs:test";
        // Just written: nothing is stale.
        let fresh_for = Duration::from_secs(3600);
        assert_eq!(
            db.store
                .refresh_poller_locks(owner, fresh_for, 2)
                .await
                .unwrap(),
            0
        );
        // Five rows went stale; one of them is another instance's.
        let stale: Vec<String> = ids[..5].iter().map(|id| id.get().to_string()).collect();
        db.store
            .execute_sql(
                &format!(
                    "UPDATE status_check_poller SET updated_at = '2000-01-01 00:00:00' \
                     WHERE status_check_id IN ({})",
                    stale.join(", ")
                ),
                &[],
            )
            .await
            .unwrap();
        db.store
            .execute_sql(
                "UPDATE status_check_poller SET lock_id = 'azi3-status-jobs:other' \
                 WHERE status_check_id = ?",
                &[Arg::Int(i64::try_from(ids[0].get()).unwrap())],
            )
            .await
            .unwrap();
        // Two to a transaction: three chunks, the last one short.
        assert_eq!(
            db.store
                .refresh_poller_locks(owner, fresh_for, 2)
                .await
                .unwrap(),
            4
        );
        assert_eq!(
            db.store
                .refresh_poller_locks(owner, fresh_for, 2)
                .await
                .unwrap(),
            0
        );
        // The other instance's row is left as it was.
        assert_eq!(
            db.store
                .refresh_poller_locks("azi3-status-jobs:other", fresh_for, 2)
                .await
                .unwrap(),
            1
        );
        db.finish().await;
    }
}

#[tokio::test]
async fn migrations_are_idempotent_and_listed_before_they_run() {
    // Each dialect has its own service migrations (MySQL dropped an index SQLite never had).
    for (db, bootstrap, service_dir) in [
        (
            TestDb::sqlite().await,
            false,
            concat!(env!("CARGO_MANIFEST_DIR"), "/migrations/sqlite"),
        ),
        (
            TestDb::mysql().await,
            true,
            concat!(env!("CARGO_MANIFEST_DIR"), "/migrations/mysql"),
        ),
    ] {
        let pending = db.store.pending_migrations(bootstrap).await.unwrap();
        let service_migrations = std::fs::read_dir(service_dir).unwrap().count();
        assert_eq!(
            pending.len(),
            1 + service_migrations,
            "{}: the shared bootstrap and the {service_migrations} service migrations",
            db.name
        );
        assert!(pending.iter().any(|m| {
            m.sql
                .contains("CREATE TABLE IF NOT EXISTS status_check_record")
        }));
        db.store.migrate(bootstrap).await.unwrap();
        db.store.migrate(bootstrap).await.unwrap();
        assert!(
            db.store
                .pending_migrations(bootstrap)
                .await
                .unwrap()
                .is_empty()
        );
        db.finish().await;
    }
    let db = TestDb::mysql().await;
    let pending = db.store.pending_migrations(false).await.unwrap();
    let service_migrations =
        std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/migrations/mysql"))
            .unwrap()
            .count();
    assert_eq!(
        pending.len(),
        service_migrations,
        "without --bootstrap-shared-schema MySQL gets only its own tables"
    );
    db.finish().await;
}

#[tokio::test]
async fn an_abandoned_transaction_leaves_nothing_and_no_connection_keeps_it_open() {
    for db in TestDb::both().await {
        let now = ts("2025-03-30T06:00:00Z");
        db.store
            .execute_sql_uncommitted(
                "INSERT INTO status_job_meta (meta_key, meta_value, updated_at_ms) VALUES ('abandoned', 'x', 0)",
                &[],
            )
            .await
            .unwrap();
        for i in 0..20 {
            db.store.set_meta(&format!("k{i}"), "v", now).await.unwrap();
        }
        assert_eq!(
            db.store.meta("abandoned").await.unwrap(),
            None,
            "{}",
            db.name
        );
        assert_eq!(db.store.meta("k19").await.unwrap().as_deref(), Some("v"));
        db.finish().await;
    }
}

#[tokio::test]
async fn a_failed_alarm_waits_for_its_retry_time_without_holding_up_later_ones() {
    for db in TestDb::both().await {
        let r = rule("08:00", "20:00", "2h");
        let (id, _) = started(&db.store, &r, date(2025, 3, 30)).await;
        let first_u = ts("2025-03-30T08:00:00Z");
        db.store.close_window(id, first_u, first_u).await.unwrap();
        let lease = SignedDuration::from_mins(5);
        let now = ts("2025-03-30T08:01:00Z");
        let first = db.store.claim_alarms("a", 1, now, lease).await.unwrap();
        assert_eq!(first.len(), 1, "{}", db.name);
        let retry_at = ts("2025-03-30T12:00:00Z");
        db.store
            .mark_alarm_failed_until("a", first[0].id, "HTTP 400", retry_at, now)
            .await
            .unwrap();
        assert!(
            db.store
                .claim_alarms("a", 1, now, lease)
                .await
                .unwrap()
                .is_empty(),
            "{}: not before its retry time",
            db.name
        );
        // The next window's alarm falls due and goes first, though its id is higher.
        db.store
            .close_window(id, ts("2025-03-30T10:00:00Z"), ts("2025-03-30T10:00:00Z"))
            .await
            .unwrap();
        let later = ts("2025-03-30T10:01:00Z");
        let next = db.store.claim_alarms("a", 1, later, lease).await.unwrap();
        assert_eq!(next.len(), 1, "{}", db.name);
        assert_ne!(next[0].id, first[0].id, "{}", db.name);
        assert!(
            db.store
                .mark_alarm_sent(next[0].id, MegazordEventId::new(7), later)
                .await
                .unwrap()
        );
        let again = db
            .store
            .claim_alarms("a", 1, retry_at, lease)
            .await
            .unwrap();
        assert_eq!(
            (again.len(), again[0].id, again[0].attempts),
            (1, first[0].id, 2),
            "{}",
            db.name
        );
        db.finish().await;
    }
}

/// A copy of a session row holds its instants as the database does, in whole milliseconds:
/// events a fraction of a millisecond either side of a stored window end are classified alike
/// on the copy and on a read under the lock, and a window closes on the copy at the deadline
/// the database gives.
#[tokio::test]
async fn a_copy_decides_on_the_instants_the_database_holds() {
    for db in TestDb::both().await {
        let r = rule("08:00", "20:00", "2h");
        let locked = db.store.without_session_copies();
        let mut outcomes = Vec::new();
        for (store, day) in [(&db.store, 2), (&locked, 3)] {
            let (id, _) = started(store, &r, date(2025, 6, day)).await;
            let at = |hms: &str| ts(&format!("2025-06-0{day}T{hms}Z"));
            let event = |n: u64, hms: &str| EventInput {
                incoming_event_id: n,
                outgoing_event_id: None,
                occurred_at: at(hms),
            };
            let mut got = Vec::new();
            // Moves the window to end at 08:30:00.000 as stored (.0004 before rounding).
            for e in [
                event(1, "06:30:00.000400"),
                event(2, "08:30:00.000200"),
                event(3, "06:30:00.000100"),
            ] {
                got.push(format!(
                    "{:?}",
                    store.apply_event(id, e, e.occurred_at).await.unwrap()
                ));
            }
            let deadline = store.session(id).await.unwrap().unwrap().state.window.end;
            got.push(format!(
                "{:?}",
                store.close_window(id, deadline, deadline).await.unwrap()
            ));
            let view = store.session(id).await.unwrap().unwrap();
            got.push(format!("{:?}", view.state.window));
            // The two sessions differ only in their date.
            let date_text = format!("2025-06-0{day}");
            outcomes.push(got.join("\n").replace(&date_text, "D"));
        }
        assert_eq!(outcomes[0], outcomes[1], "{}", db.name);
        assert!(outcomes[0].starts_with("Applied(Observed)\nApplied(Ahead)"));
        db.finish().await;
    }
}

#[tokio::test]
async fn a_rule_created_or_enabled_mid_session_watches_from_then_and_a_change_keeps_it() {
    use azi3_status_jobs::domain::{Gap, Session};
    for db in TestDb::both().await {
        // 2025-03-30 in Amsterdam: S = 06:00Z, E = 18:00Z. The rule is created at 08:15Z.
        let r = rule("08:00", "20:00", "2h");
        let t = ts("2025-03-30T08:15:00Z");
        db.store.set_rule(&r, t).await.unwrap();
        let stored = db.store.rule(RobotId::new(7)).await.unwrap().unwrap();
        assert_eq!(stored.watching_since, Some(t), "{}", db.name);
        let session = Session::on(&r, date(2025, 3, 30)).unwrap();
        let id = db
            .store
            .start_session(
                &stored,
                session,
                "azi3-status-jobs:test",
                refs(&db.store).await,
                t,
            )
            .await
            .unwrap()
            .status_check_id();
        let view = db.store.session(id).await.unwrap().unwrap();
        assert_eq!(
            (view.state.window.start, view.state.window.end),
            (t, ts("2025-03-30T10:15:00Z")),
            "{}: the first window starts when the rule did",
            db.name
        );
        // An event before t is not evaluated as observed: nobody was watching then.
        let outcome = db
            .store
            .apply_event(id, event(1, "2025-03-30T07:00:00Z"), t)
            .await
            .unwrap();
        assert_eq!(
            outcome,
            ApplyOutcome::Applied(EventClass::Late),
            "{}",
            db.name
        );

        // A change of gap keeps the instant; disabling and enabling again moves it.
        let mut changed = r.clone();
        changed.gap = Gap::from_minutes(90).unwrap();
        db.store
            .set_rule(&changed, t + SignedDuration::from_hours(1))
            .await
            .unwrap();
        let kept = db
            .store
            .rule(RobotId::new(7))
            .await
            .unwrap()
            .unwrap()
            .watching_since;
        assert_eq!(kept, Some(t), "{}", db.name);
        let later = t + SignedDuration::from_hours(2);
        db.store.disable_rule(RobotId::new(7), later).await.unwrap();
        db.store
            .set_rule(&changed, later + SignedDuration::from_mins(5))
            .await
            .unwrap();
        let again = db
            .store
            .rule(RobotId::new(7))
            .await
            .unwrap()
            .unwrap()
            .watching_since;
        assert_eq!(
            again,
            Some(later + SignedDuration::from_mins(5)),
            "{}",
            db.name
        );
        db.finish().await;
    }
}

#[tokio::test]
async fn a_spare_subscription_is_recorded_and_listed_for_deletion_until_forgotten() {
    for db in TestDb::both().await {
        let r = rule("08:00", "20:00", "2h");
        let (id, _) = started(&db.store, &r, date(2025, 3, 30)).await;
        let at = ts("2025-03-30T06:00:05Z");
        assert!(db.store.record_subscribed(id, 100, at).await.unwrap());
        // Another instance's subscription for the same session: a spare.
        assert!(!db.store.record_subscribed(id, 200, at).await.unwrap());
        let view = db.store.session(id).await.unwrap().unwrap();
        assert_eq!(view.subscription_id, Some(100), "{}", db.name);
        let leftover: Vec<u64> = db
            .store
            .ended_subscriptions(10)
            .await
            .unwrap()
            .iter()
            .map(|l| l.subscription_id)
            .collect();
        assert_eq!(
            leftover,
            vec![200],
            "{}: only the spare, while the session runs",
            db.name
        );
        // A status message for the spare is still recognised as this session's.
        let key = db.store.session_by_subscription(200).await.unwrap();
        assert_eq!(key.map(|k| k.status_check_id), Some(id), "{}", db.name);
        db.store.forget_subscription(200, at).await.unwrap();
        assert!(db.store.ended_subscriptions(10).await.unwrap().is_empty());
        let view = db.store.session(id).await.unwrap().unwrap();
        assert_eq!(
            view.subscription_id,
            Some(100),
            "{}: the session's own stays",
            db.name
        );
        db.finish().await;
    }
}

#[tokio::test]
async fn megazord_tables_and_robot_zones_are_read_where_the_shared_schema_has_them() {
    for db in TestDb::both().await {
        let events = [
            "TOILET_ACTIVITY".to_string(),
            "NO_TOILET_ACTIVITY_ALARM".to_string(),
        ];
        if db.name == "sqlite" {
            assert_eq!(
                db.store
                    .megazord_catalogue_gaps("azi-3-status-jobs", &events)
                    .await
                    .unwrap(),
                None
            );
            assert_eq!(db.store.robot_zone(RobotId::new(7)).await.unwrap(), None);
            db.finish().await;
            continue;
        }
        assert_eq!(
            db.store
                .megazord_catalogue_gaps("azi-3-status-jobs", &events)
                .await
                .unwrap(),
            None,
            "no tables, nothing to say"
        );
        for sql in [
            "CREATE TABLE event_provider (id INT UNSIGNED AUTO_INCREMENT PRIMARY KEY, name VARCHAR(128) NOT NULL UNIQUE)",
            "CREATE TABLE event_schema (id BIGINT UNSIGNED AUTO_INCREMENT PRIMARY KEY, name VARCHAR(256) NULL UNIQUE, level TINYINT UNSIGNED NOT NULL, is_active TINYINT(1) NOT NULL DEFAULT 1)",
            "CREATE TABLE time_zone (id SMALLINT UNSIGNED AUTO_INCREMENT PRIMARY KEY, name VARCHAR(64) NOT NULL)",
            "CREATE TABLE robot_settings (robot_id INT UNSIGNED NOT NULL UNIQUE, time_zone_id SMALLINT UNSIGNED NOT NULL)",
            "INSERT INTO event_schema (name, level, is_active) VALUES ('TOILET_ACTIVITY', 1, 1), ('NO_TOILET_ACTIVITY_ALARM', 10, 0)",
            "INSERT INTO time_zone (id, name) VALUES (427, 'Europe/Amsterdam'), (12, 'Europe/London')",
            "INSERT INTO robot_settings (robot_id, time_zone_id) VALUES (7, 12)",
        ] {
            db.store.execute_sql(sql, &[]).await.unwrap();
        }
        let gaps = db
            .store
            .megazord_catalogue_gaps("azi-3-status-jobs", &events)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(gaps.provider.as_deref(), Some("azi-3-status-jobs"));
        assert_eq!(
            gaps.events,
            vec!["NO_TOILET_ACTIVITY_ALARM".to_string()],
            "inactive"
        );
        assert_eq!(
            gaps.to_string(),
            "megazord has no event provider \"azi-3-status-jobs\" and no active event schema [\"NO_TOILET_ACTIVITY_ALARM\"]"
        );
        assert_eq!(
            db.store
                .robot_zone(RobotId::new(7))
                .await
                .unwrap()
                .as_deref(),
            Some("Europe/London")
        );
        assert_eq!(db.store.robot_zone(RobotId::new(8)).await.unwrap(), None);
        for sql in [
            "INSERT INTO event_provider (name) VALUES ('azi-3-status-jobs')",
            "UPDATE event_schema SET is_active = 1",
        ] {
            db.store.execute_sql(sql, &[]).await.unwrap();
        }
        let gaps = db
            .store
            .megazord_catalogue_gaps("azi-3-status-jobs", &events)
            .await
            .unwrap()
            .unwrap();
        assert!(gaps.is_empty(), "{gaps}");
        db.finish().await;
    }
}
