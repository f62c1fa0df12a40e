//! `GET /v1/robots/{robotId}/sessions?from=YYYY-MM-DD&to=YYYY-MM-DD`: a robot's sessions in the
//! JSON shape of `replay --output json`, plus each session's `status` and its records, so a live
//! day and a replayed day can be compared directly.

use std::collections::HashMap;

use axum::Json;
use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use jiff::civil::Date;
use serde::Serialize;

#[allow(unused_imports)]
use super::openapi::ErrorBody;
use super::{ApiError, HttpState, parse_robot_id};
use crate::domain::SessionResult;
use crate::replay::{AlarmReport, RuleReport, SessionReport, Totals};
use crate::store::{RecordView, StatusCheckId};

/// The answer: the replay report's shape with live additions.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct LiveReport {
    /// The robot's rule, when it has one.
    pub rule: Option<RuleReport>,
    /// Sessions in date order.
    pub sessions: Vec<LiveSession>,
    /// Sums over the sessions.
    pub totals: Totals,
}

/// One session as replay reports it, plus status and records.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct LiveSession {
    /// The replay fields.
    #[serde(flatten)]
    pub session: SessionReport,
    /// `status_check.id`.
    pub status_check_id: StatusCheckId,
    /// `FUTURE` while running, `COMPLETED` after.
    pub status: String,
    /// The current window while running.
    pub window: Option<WindowJson>,
    /// `status_check_record` rows in order.
    pub records: Vec<RecordJson>,
    /// Why the session ended as `FAILED`, when it did.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub failure_reason: Option<String>,
}

/// The current window `[s, u]`.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct WindowJson {
    /// s.
    pub start: jiff::Timestamp,
    /// u.
    pub end: jiff::Timestamp,
}

/// One record.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RecordJson {
    /// 1, 2, 3 …
    pub order: u32,
    /// `SUBSCRIBED`, `EVENT_OBSERVED`, `EVENT_LATE`, `ALARM_SENT`.
    pub result: String,
    /// Watched or alarm event.
    pub event_name: String,
    /// Incoming event id (the alarm's id at Megazord for `ALARM_SENT`).
    pub incoming_event_id: Option<u64>,
    /// Outgoing event id when known.
    pub outgoing_event_id: Option<u64>,
    /// Event time, or the window end for an alarm.
    pub created_at: jiff::Timestamp,
}

impl From<&RecordView> for RecordJson {
    fn from(r: &RecordView) -> Self {
        RecordJson {
            order: r.order,
            result: r.result.clone(),
            event_name: r.event_name.clone(),
            incoming_event_id: r.incoming_event_id,
            outgoing_event_id: r.outgoing_event_id,
            created_at: r.created_at,
        }
    }
}

/// Lists the sessions of a robot; `from` and `to` default to today in the rule's zone.
#[utoipa::path(get, path = "/v1/robots/{robotId}/sessions", tag = "sessions",
    params(("robotId" = u32, Path, minimum = 1, example = 7, description = "The robot (1 to 4294967295)"),
           ("from" = Option<String>, Query, description = "First local date, YYYY-MM-DD; today by default"),
           ("to" = Option<String>, Query, description = "Last local date, YYYY-MM-DD; today by default")),
    responses((status = 200, description = "The sessions in the shape of `replay --output json`, plus status and records", body = Object),
              (status = 400, description = "A field is wrong; the answer names it and its value", body = ErrorBody), (status = 401, description = "No or a wrong bearer token", body = ErrorBody), (status = 403, description = "From a web page of another origin", body = ErrorBody), (status = 503, description = "The database (or Megazord) cannot be reached now; try again", body = ErrorBody)),
    security((), ("bearer" = [])))]
pub async fn list(
    State(state): State<HttpState>,
    robot_id: Result<Path<String>, PathRejection>,
    query: Result<Query<HashMap<String, String>>, QueryRejection>,
) -> Result<Json<LiveReport>, ApiError> {
    let Path(robot_id) = robot_id?;
    let Query(query) = query?;
    let robot_id = parse_robot_id(&robot_id)?;
    let store = state.ctx.store();
    let rule = store
        .rule(robot_id)
        .await
        .map_err(ApiError::unavailable)?
        .map(|s| s.rule);
    let today = match &rule {
        Some(rule) => rule.timezone.to_datetime(state.ctx.now()).date(),
        None => jiff::tz::TimeZone::UTC.to_datetime(state.ctx.now()).date(),
    };
    let date = |name: &str| -> Result<Date, ApiError> {
        match query.get(name) {
            None => Ok(today),
            Some(text) => Date::strptime("%Y-%m-%d", text).map_err(|_| {
                ApiError::bad_request(name, text.clone(), "not a date (write YYYY-MM-DD)")
            }),
        }
    };
    let (from, to) = (date("from")?, date("to")?);
    if from > to {
        return Err(ApiError::bad_request(
            "from",
            from.to_string(),
            format!("is after to = {to}"),
        ));
    }
    let views = store
        .sessions(robot_id, from, to)
        .await
        .map_err(ApiError::unavailable)?;
    let mut sessions = Vec::with_capacity(views.len());
    let mut totals = Totals::default();
    for view in views {
        let alarms: Vec<AlarmReport> = store
            .alarms_of(view.status_check_id)
            .await
            .map_err(ApiError::unavailable)?
            .iter()
            .map(|a| AlarmReport {
                window_start: a.identity.window_start,
                window_end: a.window_end,
                reference_id: a.reference_id.clone(),
            })
            .collect();
        let events = view
            .records
            .iter()
            .filter(|r| r.result == "EVENT_OBSERVED" || r.result == "EVENT_LATE")
            .count();
        totals.sessions += 1;
        totals.alarms += alarms.len();
        totals.events += events;
        let result = SessionResult::parse(&view.result).unwrap_or(SessionResult::Pending);
        let session = view.state.session;
        sessions.push(LiveSession {
            session: SessionReport {
                robot_id: session.robot_id,
                date: session.date,
                start: session.start,
                end: session.end,
                result: result.as_str(),
                events,
                alarms,
                timeline: None,
            },
            status_check_id: view.status_check_id,
            status: view.phase.clone(),
            window: view.state.is_running().then_some(WindowJson {
                start: view.state.window.start,
                end: view.state.window.end,
            }),
            records: view.records.iter().map(RecordJson::from).collect(),
            failure_reason: view.failure_reason.clone(),
        });
    }
    Ok(Json(LiveReport {
        rule: rule.as_ref().map(RuleReport::from),
        sessions,
        totals,
    }))
}
