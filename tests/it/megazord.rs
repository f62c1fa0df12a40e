//! The Megazord client against the Megazord stand-in of `tests/it/support/megazord.rs`: every
//! route, the retry policy of contracts §6 item 20, `Call-Ref` on every request, the history
//! semantics of §6 item 1, and the fan-out to a real SQS queue (moto) in the envelope of contracts §2.2.

use azi3_status_jobs::domain::RobotId;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use crate::support::megazord::{
    CreatedAtResolution, FanOutOutcome, Fault, FaultSpan, HistoryQuirks, MegazordOptions,
    MegazordRoute, MegazordServer, SqsFanOut, create_named_queue, receive_messages, sqs_client,
    sqs_queue,
};
use azi3_status_jobs::megazord::{
    CallRef, Deletion, MegazordClient, MegazordError, MegazordEventId, MegazordSettings,
    OutgoingLink, Route,
};
use azi3_status_jobs::queue::parse_status_message;
use jiff::{SignedDuration, Timestamp};

const ACTIVITY: &str = "TOILET_ACTIVITY";
const ALARM: &str = "NO_TOILET_ACTIVITY_ALARM";
const ROBOT: RobotId = RobotId::new(789);

/// Settings for tests: tiny backoff so retries cost milliseconds; a timeout short enough for
/// stalls to be cheap and long enough for a loaded machine to answer a normal request.
fn settings(server: &MegazordServer) -> MegazordSettings {
    MegazordSettings {
        base_url: server.base_url(),
        request_timeout_ms: 1_000,
        max_attempts: 4,
        initial_backoff_ms: 1,
        max_backoff_ms: 5,
        ..MegazordSettings::default()
    }
}

fn client(server: &MegazordServer) -> MegazordClient {
    MegazordClient::new(settings(server)).expect("valid settings")
}

/// A clock the test moves by hand.
#[derive(Clone)]
struct ManualClock(Arc<AtomicI64>);

impl ManualClock {
    fn at(start: &str) -> Self {
        let start: Timestamp = start.parse().unwrap();
        ManualClock(Arc::new(AtomicI64::new(start.as_millisecond())))
    }

    fn set(&self, at: Timestamp) {
        self.0.store(at.as_millisecond(), Ordering::SeqCst);
    }

    fn options(&self) -> MegazordOptions {
        let millis = self.0.clone();
        MegazordOptions::default().with_clock(Arc::new(move || {
            Timestamp::from_millisecond(millis.load(Ordering::SeqCst)).unwrap()
        }))
    }
}

fn names(names: &[&str]) -> Vec<String> {
    names.iter().map(|n| n.to_string()).collect()
}

fn until() -> Timestamp {
    "2025-11-20T21:00:00Z".parse().unwrap()
}

#[tokio::test]
async fn every_route_answers_as_the_contract_says() {
    let clock = ManualClock::at("2025-11-20T09:30:00Z");
    let server = MegazordServer::start(clock.options()).await;
    let client = client(&server);
    let call_ref = CallRef::new();

    let subscription = client
        .create_subscription(
            ROBOT,
            &names(&[ACTIVITY]),
            until(),
            Some("azi-3-status-jobs"),
            &call_ref,
        )
        .await
        .unwrap();
    assert_eq!(subscription.id, 1);
    assert_eq!(subscription.robot_id, Some(ROBOT));
    assert_eq!(subscription.is_active, Some(true));
    let stored = &server.subscriptions()[0];
    assert_eq!(stored.event_names, names(&[ACTIVITY]));
    assert_eq!(stored.queue.as_deref(), Some("azi-3-status-jobs"));
    assert_eq!(stored.until.as_deref(), Some("2025-11-20T21:00:00.000Z"));

    let activity = server.post_sensor_event(ROBOT, ACTIVITY);
    let outgoing_id = server.outgoing_events()[0].id;

    clock.set("2025-11-20T10:30:00Z".parse().unwrap());
    let alarm = client
        .post_event(ROBOT, ALARM, "nta-789-2025-11-20-1763631000", &call_ref)
        .await
        .unwrap();
    assert_eq!(
        alarm.reference_id.as_deref(),
        Some("nta-789-2025-11-20-1763631000")
    );
    assert_eq!(alarm.provider_name.as_deref(), Some("azi-3-status-jobs"));
    assert_eq!(alarm.event_name.as_deref(), Some(ALARM));
    assert_eq!(alarm.created_at, "2025-11-20T10:30:00Z".parse().unwrap());
    assert_eq!(server.alarm_posts("nta-789-2025-11-20-1763631000"), 1);
    assert_eq!(server.alarms_stored(), 1);

    let history = client
        .incomings(
            ROBOT,
            ACTIVITY,
            "2025-11-20T09:00:00Z".parse().unwrap(),
            &call_ref,
        )
        .await
        .unwrap();
    assert_eq!(history.len(), 1);
    assert_eq!(history[0].id.get(), activity.id);
    assert_eq!(history[0].provider_name.as_deref(), Some("Sensara"));
    assert_eq!(history[0].created_at, activity.created_at);

    let by_ids = OutgoingLink::new(ROBOT, subscription.id, outgoing_id);
    let by_path = OutgoingLink::parse(&format!(
        "/internal/v1/events/robots/{ROBOT}/subscriptions/{}/outgoings/{outgoing_id}",
        subscription.id
    ))
    .unwrap();
    for link in [by_ids, by_path] {
        let outgoing = client.outgoing(&link, &call_ref).await.unwrap();
        assert_eq!(outgoing.id, outgoing_id);
        assert_eq!(outgoing.subscription_id, Some(subscription.id));
        assert_eq!(
            outgoing.source_event_id.map(MegazordEventId::get),
            Some(activity.id)
        );
        assert_eq!(outgoing.status.as_deref(), Some("CREATED"));
        let source = outgoing.source_event.expect("hydrated");
        assert_eq!(
            (source.id.get(), source.robot_id),
            (activity.id, Some(ROBOT))
        );
    }

    assert_eq!(
        client
            .delete_subscription(ROBOT, subscription.id, &call_ref)
            .await
            .unwrap(),
        Deletion::Deleted
    );
    assert!(!server.subscriptions()[0].is_active);
    // Repeated deletes are idempotent (204); unknown and other robots' subscriptions are 404.
    assert_eq!(
        client
            .delete_subscription(ROBOT, subscription.id, &call_ref)
            .await
            .unwrap(),
        Deletion::Deleted
    );
    assert_eq!(
        client
            .delete_subscription(RobotId::new(ROBOT.get() + 1), subscription.id, &call_ref)
            .await
            .unwrap(),
        Deletion::AlreadyGone
    );
    assert_eq!(
        client
            .delete_subscription(ROBOT, 999, &call_ref)
            .await
            .unwrap(),
        Deletion::AlreadyGone
    );
    // A 404 on DELETE is an answer, not a failure: one request each.
    assert_eq!(
        server.requests_to(MegazordRoute::DeleteSubscription).len(),
        4
    );
}

#[tokio::test]
async fn every_request_carries_the_call_ref_retries_included() {
    let server = MegazordServer::start(MegazordOptions::default()).await;
    let client = client(&server);
    server.inject_fault_everywhere(Fault::Status(502), FaultSpan::Next(3));
    let call_ref = CallRef::from_attribute(Some("sqs-message-call-ref"));

    let subscription = client
        .create_subscription(ROBOT, &names(&[ACTIVITY]), until(), None, &call_ref)
        .await
        .unwrap();
    client
        .post_event(ROBOT, ALARM, "nta-789-2025-11-20-1", &call_ref)
        .await
        .unwrap();
    client
        .incomings(ROBOT, ALARM, Timestamp::UNIX_EPOCH, &call_ref)
        .await
        .unwrap();
    server.post_sensor_event(ROBOT, ACTIVITY);
    let outgoing = server.outgoing_events()[0].id;
    client
        .outgoing(
            &OutgoingLink::new(ROBOT, subscription.id, outgoing),
            &call_ref,
        )
        .await
        .unwrap();
    client
        .delete_subscription(ROBOT, subscription.id, &call_ref)
        .await
        .unwrap();

    let requests = server.requests();
    assert_eq!(
        requests.len(),
        5 + 3,
        "five calls, the first retried three times"
    );
    for request in &requests {
        assert_eq!(
            request.call_ref.as_deref(),
            Some("sqs-message-call-ref"),
            "{request:?}"
        );
    }
    let mut routes: Vec<MegazordRoute> = requests.iter().filter_map(|r| r.route).collect();
    routes.dedup();
    assert_eq!(
        routes,
        [
            MegazordRoute::CreateSubscription,
            MegazordRoute::PostIncoming,
            MegazordRoute::GetIncomings,
            MegazordRoute::GetOutgoing,
            MegazordRoute::DeleteSubscription,
        ]
    );
}

#[tokio::test]
async fn server_errors_are_retried_until_an_answer_comes() {
    let server = MegazordServer::start(MegazordOptions::default()).await;
    let client = client(&server);
    server.inject_fault(
        MegazordRoute::PostIncoming,
        Fault::Status(500),
        FaultSpan::Next(3),
    );

    let alarm = client
        .post_event(ROBOT, ALARM, "nta-789-2025-11-20-1", &CallRef::new())
        .await
        .unwrap();

    let statuses: Vec<Option<u16>> = server
        .requests_to(MegazordRoute::PostIncoming)
        .iter()
        .map(|r| r.status)
        .collect();
    assert_eq!(statuses, [Some(500), Some(500), Some(500), Some(201)]);
    assert_eq!(server.alarm_posts("nta-789-2025-11-20-1"), 1);
    assert_eq!(alarm.id.get(), 1);
}

#[tokio::test]
async fn too_many_requests_and_request_timeouts_are_retried_a_refused_token_is_not() {
    let server = MegazordServer::start(MegazordOptions::default()).await;
    let client = client(&server);
    server.inject_fault(
        MegazordRoute::GetIncomings,
        Fault::Status(429),
        FaultSpan::Next(1),
    );
    server.inject_fault(
        MegazordRoute::GetIncomings,
        Fault::Status(408),
        FaultSpan::Next(1),
    );
    client
        .incomings(ROBOT, ACTIVITY, Timestamp::UNIX_EPOCH, &CallRef::new())
        .await
        .unwrap();
    let statuses: Vec<Option<u16>> = server
        .requests_to(MegazordRoute::GetIncomings)
        .iter()
        .map(|r| r.status)
        .collect();
    assert_eq!(statuses, [Some(429), Some(408), Some(200)]);

    server.inject_fault(
        MegazordRoute::GetIncomings,
        Fault::Status(403),
        FaultSpan::Next(1),
    );
    let error = client
        .incomings(ROBOT, ACTIVITY, Timestamp::UNIX_EPOCH, &CallRef::new())
        .await
        .unwrap_err();
    assert_eq!(server.requests_to(MegazordRoute::GetIncomings).len(), 4);
    assert_eq!(error.status(), Some(403));
    assert!(!error.is_transient());
    assert!(
        !error.is_refusal_of_the_call(),
        "a refused token is everyone's problem, not this robot's"
    );
}

#[tokio::test]
async fn retries_stop_after_max_attempts_with_the_last_answer() {
    let server = MegazordServer::start(MegazordOptions::default()).await;
    let client = client(&server);
    server.inject_fault(
        MegazordRoute::GetIncomings,
        Fault::Status(503),
        FaultSpan::Always,
    );

    let error = client
        .incomings(ROBOT, ACTIVITY, Timestamp::UNIX_EPOCH, &CallRef::new())
        .await
        .unwrap_err();

    assert_eq!(server.requests_to(MegazordRoute::GetIncomings).len(), 4);
    assert!(error.is_transient());
    let MegazordError::Unavailable {
        route,
        robot_id,
        status,
        body,
        attempts,
    } = &error
    else {
        panic!("{error:?}");
    };
    assert_eq!(
        (*route, *robot_id, *status, *attempts),
        (Route::GetIncomings, ROBOT, 503, 4)
    );
    assert!(body.contains("injected fault"), "{body}");
    let text = error.to_string();
    assert!(
        text.starts_with("GET /internal/v1/events/robots/:robotId/incomings (robot 789) answered 503 after 4 attempt(s)"),
        "{text}"
    );
}

#[tokio::test]
async fn a_stall_beyond_the_timeout_is_retried() {
    let server = MegazordServer::start(MegazordOptions::default()).await;
    let client = client(&server);
    server.inject_fault(
        MegazordRoute::CreateSubscription,
        Fault::Stall(Duration::from_secs(30)),
        FaultSpan::Next(2),
    );

    let subscription = client
        .create_subscription(ROBOT, &names(&[ACTIVITY]), until(), None, &CallRef::new())
        .await
        .unwrap();

    let requests = server.requests_to(MegazordRoute::CreateSubscription);
    assert_eq!(requests.len(), 3);
    assert!(
        requests[..2]
            .iter()
            .all(|r| r.fault.is_some() && r.status.is_none())
    );
    assert_eq!(requests[2].status, Some(201));
    // The stalled attempts did not take effect: one subscription.
    assert_eq!(server.subscriptions().len(), 1);
    assert_eq!(subscription.id, 1);
}

#[tokio::test]
async fn stalls_on_every_attempt_end_in_a_timeout_error() {
    let server = MegazordServer::start(MegazordOptions::default()).await;
    let client = MegazordClient::new(MegazordSettings {
        max_attempts: 2,
        ..settings(&server)
    })
    .unwrap();
    server.inject_fault(
        MegazordRoute::DeleteSubscription,
        Fault::Stall(Duration::from_secs(30)),
        FaultSpan::Always,
    );

    let error = client
        .delete_subscription(ROBOT, 1, &CallRef::new())
        .await
        .unwrap_err();

    assert_eq!(
        error,
        MegazordError::Timeout {
            route: Route::DeleteSubscription,
            robot_id: ROBOT,
            timeout_ms: 1_000,
            attempts: 2,
        }
    );
    assert_eq!(
        server.requests_to(MegazordRoute::DeleteSubscription).len(),
        2
    );
}

/// Megazord has no idempotency key: a post whose answer is lost is stored again on retry.
/// Callers that need one alarm per identity must look it up in the history first.
#[tokio::test]
async fn a_lost_answer_to_a_post_stores_the_event_twice() {
    let server = MegazordServer::start(MegazordOptions::default()).await;
    let client = client(&server);
    server.inject_fault(
        MegazordRoute::PostIncoming,
        Fault::StallAfterHandling(Duration::from_secs(30)),
        FaultSpan::Next(1),
    );

    client
        .post_event(ROBOT, ALARM, "nta-789-2025-11-20-1", &CallRef::new())
        .await
        .unwrap();

    assert_eq!(server.alarm_posts("nta-789-2025-11-20-1"), 2);
    let history = client
        .incomings(ROBOT, ALARM, Timestamp::UNIX_EPOCH, &CallRef::new())
        .await
        .unwrap();
    let references: Vec<_> = history.iter().map(|e| e.reference_id.as_deref()).collect();
    assert_eq!(references, [Some("nta-789-2025-11-20-1"); 2]);
}

#[tokio::test]
async fn bad_requests_are_rejected_without_retry() {
    let server = MegazordServer::start(MegazordOptions::default()).await;
    let client = client(&server);
    let call_ref = CallRef::new();

    let duplicate = client
        .create_subscription(
            ROBOT,
            &names(&[ACTIVITY, ACTIVITY]),
            until(),
            None,
            &call_ref,
        )
        .await
        .unwrap_err();
    let MegazordError::Rejected {
        route,
        robot_id,
        status,
        body,
    } = &duplicate
    else {
        panic!("{duplicate:?}");
    };
    assert_eq!(
        (*route, *robot_id, *status),
        (Route::CreateSubscription, ROBOT, 400)
    );
    assert!(
        body.contains("All eventNames's elements must be unique"),
        "{body}"
    );
    assert!(!duplicate.is_transient());

    let empty = client
        .create_subscription(ROBOT, &[], until(), None, &call_ref)
        .await
        .unwrap_err();
    assert!(
        empty.to_string().contains("eventNames should not be empty"),
        "{empty}"
    );

    let bad_queue = client
        .create_subscription(
            ROBOT,
            &names(&[ACTIVITY]),
            until(),
            Some("status_jobs"),
            &call_ref,
        )
        .await
        .unwrap_err();
    assert!(
        bad_queue.to_string().contains("queue must match"),
        "{bad_queue}"
    );
    let long_queue = "q".repeat(129);
    let too_long = client
        .create_subscription(
            ROBOT,
            &names(&[ACTIVITY]),
            until(),
            Some(&long_queue),
            &call_ref,
        )
        .await
        .unwrap_err();
    assert!(
        too_long.to_string().contains("128 characters"),
        "{too_long}"
    );

    server.inject_fault(
        MegazordRoute::PostIncoming,
        Fault::Status(400),
        FaultSpan::Always,
    );
    let rejected = client
        .post_event(ROBOT, ALARM, "nta-1", &call_ref)
        .await
        .unwrap_err();
    assert_eq!(rejected.status(), Some(400));
    assert_eq!(rejected.route(), Some(Route::PostIncoming));

    // One request per call: nothing was retried.
    assert_eq!(server.requests().len(), 5);
    assert!(server.subscriptions().is_empty());
}

/// Contracts §6 item 20: a 404 on a POST means a provider or schema is missing; retried with
/// backoff (an operator can add it) and reported as unavailable when it stays missing.
#[tokio::test]
async fn a_missing_schema_or_provider_is_retried_then_reported() {
    let server = MegazordServer::start(MegazordOptions::default()).await;
    let client = client(&server);
    let call_ref = CallRef::new();

    let error = client
        .post_event(ROBOT, "NO_SUCH_EVENT", "nta-1", &call_ref)
        .await
        .unwrap_err();
    assert!(matches!(
        error,
        MegazordError::Unavailable {
            status: 404,
            attempts: 4,
            ..
        }
    ));
    assert!(
        error
            .to_string()
            .contains("Event schema NO_SUCH_EVENT not found"),
        "{error}"
    );

    let error = client
        .create_subscription(ROBOT, &names(&["NO_SUCH_EVENT"]), until(), None, &call_ref)
        .await
        .unwrap_err();
    assert_eq!(error.status(), Some(404));

    let stranger = MegazordClient::new(MegazordSettings {
        provider_name: "someone-else".into(),
        ..settings(&server)
    })
    .unwrap();
    let error = stranger
        .post_event(ROBOT, ALARM, "nta-1", &call_ref)
        .await
        .unwrap_err();
    assert!(
        error
            .to_string()
            .contains("Event provider someone-else not found"),
        "{error}"
    );
    assert_eq!(server.requests().len(), 12);

    // Once the schema exists the same call goes through.
    server.add_event_schema("NO_SUCH_EVENT");
    client
        .post_event(ROBOT, "NO_SUCH_EVENT", "nta-1", &call_ref)
        .await
        .unwrap();
}

#[tokio::test]
async fn an_unknown_outgoing_event_is_rejected_without_retry() {
    let server = MegazordServer::start(MegazordOptions::default()).await;
    let client = client(&server);
    let error = client
        .outgoing(&OutgoingLink::new(ROBOT, 1, 1), &CallRef::new())
        .await
        .unwrap_err();
    assert_eq!(error.status(), Some(404));
    assert!(!error.is_transient());
    assert_eq!(server.requests().len(), 1);
}

#[tokio::test]
async fn a_garbled_success_body_is_an_invalid_response() {
    let server = MegazordServer::start(MegazordOptions::default()).await;
    let client = client(&server);
    // A 2xx carrying the error-shaped body stands in for an answer in an unexpected shape.
    server.inject_fault(
        MegazordRoute::PostIncoming,
        Fault::Status(200),
        FaultSpan::Next(1),
    );
    let error = client
        .post_event(ROBOT, ALARM, "nta-1", &CallRef::new())
        .await
        .unwrap_err();
    let MegazordError::InvalidResponse { status, body, .. } = &error else {
        panic!("{error:?}");
    };
    assert_eq!(*status, 200);
    assert!(body.contains("injected fault"), "{body}");
}

/// Contracts §6 item 1: `created_since` goes out as Unix seconds one second early; the answer
/// holds every event from the whole second of `created_since` on, once, by `(createdAt, id)`,
/// whatever order, duplicates or inclusivity Megazord uses.
#[tokio::test]
async fn history_is_deduplicated_sorted_and_bounded_by_created_since() {
    let clock = ManualClock::at("2025-11-20T09:00:00Z");
    let server = MegazordServer::start(clock.options()).await;
    let client = client(&server);
    let t0: Timestamp = "2025-11-20T09:30:00Z".parse().unwrap();
    let at = |seconds: f64| t0 + SignedDuration::from_secs_f64(seconds);

    let mut expected = Vec::new();
    // Posted out of time order, so ids and times disagree.
    for (offset, robot, name) in [
        (5.0, ROBOT, ACTIVITY),
        (-2.0, ROBOT, ACTIVITY),
        (-1.0, ROBOT, ACTIVITY),
        (0.0, ROBOT, ACTIVITY),
        (0.2, ROBOT, ACTIVITY),
        (1.0, RobotId::new(ROBOT.get() + 1), ACTIVITY),
        (1.0, ROBOT, ALARM),
        (3.0, ROBOT, ACTIVITY),
    ] {
        clock.set(at(offset));
        let event = server.post_sensor_event(robot, name);
        if robot == ROBOT && name == ACTIVITY && offset >= 0.0 {
            expected.push((event.created_at, event.id));
        }
    }
    expected.sort();
    assert_eq!(expected.len(), 4);

    for quirks in [
        HistoryQuirks::default(),
        HistoryQuirks {
            newest_first: true,
            duplicated: true,
            exclusive_since: false,
        },
        HistoryQuirks {
            newest_first: false,
            duplicated: true,
            exclusive_since: true,
        },
    ] {
        server.set_history_quirks(quirks);
        // A fraction of a second after t0 still means "from t0's second on".
        let history = client
            .incomings(ROBOT, ACTIVITY, at(0.4), &CallRef::new())
            .await
            .unwrap();
        let got: Vec<(Timestamp, u64)> =
            history.iter().map(|e| (e.created_at, e.id.get())).collect();
        assert_eq!(got, expected, "{quirks:?}");
        assert!(history.iter().all(|e| e.robot_id == Some(ROBOT)));
    }

    let query = server.requests_to(MegazordRoute::GetIncomings)[0]
        .query
        .clone()
        .unwrap();
    assert_eq!(
        query,
        format!(
            "event_name=TOILET_ACTIVITY&created_since={}",
            t0.as_second() - 1
        )
    );
}

#[tokio::test]
async fn created_at_is_cut_to_the_second_as_the_server_is_told() {
    for (resolution, expected) in [
        (CreatedAtResolution::RoundToSecond, "2025-11-20T09:30:01Z"),
        (
            CreatedAtResolution::TruncateToSecond,
            "2025-11-20T09:30:00Z",
        ),
        (CreatedAtResolution::Millisecond, "2025-11-20T09:30:00.6Z"),
    ] {
        let clock = ManualClock::at("2025-11-20T09:30:00.600Z");
        let server = MegazordServer::start(MegazordOptions {
            created_at_resolution: resolution,
            ..clock.options()
        })
        .await;
        let event = client(&server)
            .post_event(ROBOT, ALARM, "nta-1", &CallRef::new())
            .await
            .unwrap();
        assert_eq!(event.created_at.to_string(), expected, "{resolution:?}");
    }
}

/// Without SQS the server still makes the outgoing events and records the messages of contracts §2.2.
#[tokio::test]
async fn fan_out_messages_are_recorded_without_sqs() {
    let server = MegazordServer::start(MegazordOptions::default()).await;
    let client = client(&server);
    let call_ref = CallRef::new();
    let subscription = client
        .create_subscription(ROBOT, &names(&[ACTIVITY]), until(), Some("jobs"), &call_ref)
        .await
        .unwrap();
    let event = server.post_sensor_event(ROBOT, ACTIVITY);
    server.post_sensor_event(RobotId::new(ROBOT.get() + 1), ACTIVITY);
    server.post_sensor_event(ROBOT, ALARM);

    let log = server.fan_out_log();
    assert_eq!(log.len(), 1, "only the subscribed robot and event fan out");
    assert_eq!(log[0].outcome, FanOutOutcome::NotSent);
    assert_eq!(log[0].call_ref, event.call_ref);
    let message = parse_status_message(&log[0].body).unwrap();
    assert_eq!(message.subscription_id, Some(subscription.id));
    assert_eq!(message.to_robot_id, Some(ROBOT));
    assert_eq!(message.source_event.unwrap().id, event.id);
    server.wait_fan_out().await;
}

#[tokio::test]
async fn fan_out_sends_the_megazord_envelope_to_the_subscription_queue() {
    let sqs = sqs_client().await;
    let base = sqs_queue(&sqs, "status-queue").await;
    let suffixed =
        create_named_queue(&sqs, &format!("{}-azi-3-status-jobs", queue_name(&base))).await;
    assert_eq!(suffixed, format!("{base}-azi-3-status-jobs"));
    let clock = ManualClock::at("2025-11-20T09:30:00Z");
    let server = MegazordServer::start(clock.options().with_fan_out(SqsFanOut::local(&base))).await;
    let client = client(&server);
    let call_ref = CallRef::new();

    let jobs = client
        .create_subscription(
            ROBOT,
            &names(&[ACTIVITY]),
            until(),
            Some("azi-3-status-jobs"),
            &call_ref,
        )
        .await
        .unwrap();
    let legacy = client
        .create_subscription(ROBOT, &names(&[ACTIVITY, ALARM]), until(), None, &call_ref)
        .await
        .unwrap();
    let sensed = server.post_sensor_event(ROBOT, ACTIVITY);
    let posted_ref = CallRef::new();
    clock.set("2025-11-20T09:31:00Z".parse().unwrap());
    let alarm = client
        .post_event(ROBOT, ALARM, "nta-789-2025-11-20-1763631000", &posted_ref)
        .await
        .unwrap();
    server.wait_fan_out().await;

    let on_jobs = receive_messages(&sqs, &suffixed, 1, Duration::from_secs(10)).await;
    assert_eq!(on_jobs.len(), 1);
    let body = on_jobs[0].body().unwrap();
    let message = parse_status_message(body).unwrap();
    assert_eq!(message.subscription_id, Some(jobs.id));
    assert_eq!(message.to_robot_id, Some(ROBOT));
    let source = message.source_event.clone().unwrap();
    assert_eq!(source.id, sensed.id);
    assert_eq!(source.robot_id, Some(ROBOT));
    assert_eq!(source.event_name.as_deref(), Some(ACTIVITY));
    assert_eq!(source.created_at, sensed.created_at);
    assert_eq!(
        CallRef::from_message(&on_jobs[0]).as_str(),
        sensed.call_ref,
        "the callRef attribute is the posting call's"
    );
    // The envelope as Megazord's notify() writes it (contracts §2.2).
    let envelope: serde_json::Value = serde_json::from_str(body).unwrap();
    assert_eq!(envelope["to"]["robotId"], serde_json::json!("789"));
    assert_eq!(envelope["link"]["rel"], serde_json::json!(""));
    assert_eq!(
        envelope["payload"]["sourceEvent"]["createdAt"],
        "2025-11-20T09:30:00.000Z"
    );
    let link = OutgoingLink::parse(message.link.as_deref().unwrap()).unwrap();
    assert_eq!(link.outgoing_id, message.outgoing_event_id.unwrap());
    let looked_up = client.outgoing(&link, &call_ref).await.unwrap();
    assert_eq!(looked_up.source_event.unwrap().id.get(), sensed.id);

    let on_base = receive_messages(&sqs, &base, 2, Duration::from_secs(10)).await;
    let mut seen: Vec<(u64, u64, String)> = on_base
        .iter()
        .map(|m| {
            let message = parse_status_message(m.body().unwrap()).unwrap();
            (
                message.subscription_id.unwrap(),
                message.source_event.unwrap().id,
                CallRef::from_message(m).to_string(),
            )
        })
        .collect();
    seen.sort();
    assert_eq!(
        seen,
        [
            (legacy.id, sensed.id, sensed.call_ref.clone()),
            (legacy.id, alarm.id.get(), posted_ref.to_string()),
        ]
    );
    assert!(
        server
            .fan_out_log()
            .iter()
            .all(|m| matches!(m.outcome, FanOutOutcome::Sent(_)))
    );

    // A deleted subscription gets nothing more.
    client
        .delete_subscription(ROBOT, jobs.id, &call_ref)
        .await
        .unwrap();
    client
        .delete_subscription(ROBOT, legacy.id, &call_ref)
        .await
        .unwrap();
    server.post_sensor_event(ROBOT, ACTIVITY);
    assert_eq!(server.fan_out_log().len(), 3);
}

#[tokio::test]
async fn fan_out_can_be_held_duplicated_and_shuffled() {
    let sqs = sqs_client().await;
    let base = sqs_queue(&sqs, "status-queue").await;
    let server =
        MegazordServer::start(MegazordOptions::default().with_fan_out(SqsFanOut::local(&base)))
            .await;
    let client = client(&server);
    client
        .create_subscription(ROBOT, &names(&[ACTIVITY]), until(), None, &CallRef::new())
        .await
        .unwrap();

    server.pause_fan_out();
    server.set_fan_out_copies(2);
    let events: Vec<u64> = (0..4)
        .map(|_| server.post_sensor_event(ROBOT, ACTIVITY).id)
        .collect();
    server.wait_fan_out().await;
    assert_eq!(server.pending_fan_out(), 4);
    assert!(
        server
            .fan_out_log()
            .iter()
            .all(|m| m.outcome == FanOutOutcome::Pending)
    );

    server.resume_fan_out_shuffled(7);
    server.wait_fan_out().await;
    assert_eq!(server.pending_fan_out(), 0);
    let received = receive_messages(&sqs, &base, 8, Duration::from_secs(10)).await;
    let mut ids: Vec<u64> = received
        .iter()
        .map(|m| {
            parse_status_message(m.body().unwrap())
                .unwrap()
                .source_event
                .unwrap()
                .id
        })
        .collect();
    ids.sort();
    let twice: Vec<u64> = events.iter().flat_map(|id| [*id, *id]).collect();
    assert_eq!(ids, twice);
}

#[tokio::test]
async fn a_fan_out_to_a_missing_queue_is_recorded_as_failed() {
    let base = format!(
        "{}/123456789012/no-such-queue-{}",
        crate::support::megazord::test_sqs_endpoint(),
        uuid::Uuid::now_v7().simple()
    );
    let server =
        MegazordServer::start(MegazordOptions::default().with_fan_out(SqsFanOut::local(&base)))
            .await;
    client(&server)
        .create_subscription(ROBOT, &names(&[ACTIVITY]), until(), None, &CallRef::new())
        .await
        .unwrap();
    server.post_sensor_event(ROBOT, ACTIVITY);
    server.wait_fan_out().await;
    let log = server.fan_out_log();
    assert!(
        matches!(log[0].outcome, FanOutOutcome::Failed(_)),
        "{log:?}"
    );
}

#[tokio::test]
async fn faults_can_last_for_a_stretch_of_server_time() {
    let clock = ManualClock::at("2025-11-20T09:00:00Z");
    let server = MegazordServer::start(clock.options()).await;
    let client = MegazordClient::new(MegazordSettings {
        max_attempts: 1,
        ..settings(&server)
    })
    .unwrap();
    server.inject_fault(
        MegazordRoute::PostIncoming,
        Fault::Status(500),
        FaultSpan::Until("2025-11-20T10:00:00Z".parse().unwrap()),
    );
    let failed = client
        .post_event(ROBOT, ALARM, "nta-1", &CallRef::new())
        .await;
    assert_eq!(failed.unwrap_err().status(), Some(500));
    clock.set("2025-11-20T10:00:00Z".parse().unwrap());
    client
        .post_event(ROBOT, ALARM, "nta-1", &CallRef::new())
        .await
        .unwrap();
    assert_eq!(server.alarm_posts("nta-1"), 1);
}

#[tokio::test]
async fn posts_are_validated_like_megazord() {
    let server = MegazordServer::start(MegazordOptions::default()).await;
    let http = reqwest::Client::new();
    let url = format!(
        "{}/internal/v1/events/robots/{ROBOT}/incomings",
        server.base_url()
    );
    let post = |body: serde_json::Value| {
        let request = http.post(&url).json(&body);
        async move {
            let response = request.send().await.unwrap();
            (response.status().as_u16(), response.text().await.unwrap())
        }
    };
    let (status, body) = post(serde_json::json!({
        "providerName": "Sensara", "eventName": ACTIVITY
    }))
    .await;
    assert_eq!(
        (status, body.contains("referenceId must be a string")),
        (400, true),
        "{body}"
    );
    let (status, body) = post(serde_json::json!({
        "providerName": "Sensara", "eventName": ACTIVITY, "referenceId": "x", "level": "ERROR"
    }))
    .await;
    assert_eq!(
        (status, body.contains("level must be a number")),
        (400, true),
        "{body}"
    );
    let (status, body) = post(serde_json::json!({
        "providerName": "Sensara", "eventName": ACTIVITY, "referenceId": "x", "level": 20
    }))
    .await;
    assert_eq!(status, 201, "{body}");
    let created: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(created["level"], 20);
    assert!(created["createdAt"].as_str().unwrap().ends_with(".000Z"));
    let response = http
        .get(format!("{url}?created_since=soon"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 400);
}

/// The last path segment of a queue URL: its name.
fn queue_name(url: &str) -> &str {
    url.rsplit('/').next().unwrap()
}

/// Contracts §6 item 20: while the alarm schema is missing the post keeps retrying; once an
/// operator adds it, the same call goes through, once.
#[tokio::test]
async fn a_post_waits_out_a_missing_schema_until_it_is_added() {
    let server = Arc::new(MegazordServer::start(MegazordOptions::default()).await);
    server.remove_event_schema(ALARM);
    let client = MegazordClient::new(MegazordSettings {
        max_attempts: 1_000,
        ..settings(&server)
    })
    .unwrap();
    let posting = tokio::spawn(async move {
        client
            .post_event(ROBOT, ALARM, "nta-789-2025-11-20-1", &CallRef::new())
            .await
    });

    let refused_twice = server
        .wait_for(Duration::from_secs(10), |s| {
            s.requests_to(MegazordRoute::PostIncoming)
                .iter()
                .filter(|r| r.status == Some(404))
                .count()
                >= 2
        })
        .await;
    assert!(refused_twice);
    server.add_event_schema(ALARM);

    let alarm = posting.await.unwrap().unwrap();
    assert_eq!(alarm.event_name.as_deref(), Some(ALARM));
    assert_eq!(server.alarm_posts("nta-789-2025-11-20-1"), 1);
    assert!(
        server
            .wait_for(Duration::from_secs(10), |s| s.incoming_events().len() == 1)
            .await
    );
}

#[tokio::test]
async fn calls_are_counted_and_timed_per_route_and_outcome() {
    // The process's one recorder, shared with the other tests of this binary (and the services
    // they build in this process): they can add series and counts, never take the ones this
    // call makes away.
    let metrics = azi3_status_jobs::telemetry::init_metrics();
    let server = MegazordServer::start(MegazordOptions::default()).await;
    let client = client(&server);
    server.inject_fault(
        MegazordRoute::GetOutgoing,
        Fault::Status(500),
        FaultSpan::Next(1),
    );
    let _ = client
        .outgoing(&OutgoingLink::new(ROBOT, 1, 1), &CallRef::new())
        .await;

    let rendered = metrics.render();
    for line in [
        r#"megazord_requests_total{route="get_outgoing",outcome="server_error"}"#,
        r#"megazord_requests_total{route="get_outgoing",outcome="rejected"}"#,
        r#"megazord_request_duration_seconds_count{route="get_outgoing"}"#,
    ] {
        assert!(rendered.contains(line), "{line} missing from\n{rendered}");
    }
}

/// `scripts/bench` (soak) fails a share of all requests at random: the same seed fails the
/// same requests in arrival order, so a run can be repeated, and clearing the faults ends it.
#[tokio::test]
async fn random_failures_of_the_stand_in_repeat_with_their_seed() {
    async fn statuses(seed: u64) -> Vec<u16> {
        let server = MegazordServer::start(MegazordOptions::default()).await;
        server.fail_randomly(500_000, seed, vec![(None, Fault::Status(503))]);
        let http = reqwest::Client::new();
        let url = format!(
            "{}/internal/v1/events/robots/{ROBOT}/incomings?event_name={ACTIVITY}&created_since=0",
            server.base_url()
        );
        let mut statuses = Vec::new();
        for _ in 0..40 {
            statuses.push(http.get(&url).send().await.unwrap().status().as_u16());
        }
        server.clear_faults();
        assert_eq!(http.get(&url).send().await.unwrap().status().as_u16(), 200);
        statuses
    }

    let first = statuses(42).await;
    assert!(first.contains(&503) && first.contains(&200), "{first:?}");
    assert_eq!(statuses(42).await, first);
}

/// `scripts/bench` reads the stand-in's request count per route (the cheap form of
/// `requests_to`) and gives it a round trip's latency.
#[tokio::test]
async fn the_stand_in_counts_requests_per_route_and_answers_after_its_latency() {
    let server = MegazordServer::start(MegazordOptions::default()).await;
    let http = reqwest::Client::new();
    let url = format!(
        "{}/internal/v1/events/robots/{ROBOT}/incomings?event_name={ACTIVITY}&created_since=0",
        server.base_url()
    );
    for _ in 0..3 {
        assert_eq!(http.get(&url).send().await.unwrap().status().as_u16(), 200);
    }
    assert_eq!(server.request_count(MegazordRoute::GetIncomings), 3);
    assert_eq!(server.request_count(MegazordRoute::PostIncoming), 0);

    server.set_latency(Duration::from_millis(300));
    let started = std::time::Instant::now();
    assert_eq!(http.get(&url).send().await.unwrap().status().as_u16(), 200);
    assert!(started.elapsed() >= Duration::from_millis(300));
    assert_eq!(server.request_count(MegazordRoute::GetIncomings), 4);
}
