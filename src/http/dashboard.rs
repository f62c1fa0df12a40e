//! The dashboard: server-rendered pages with inline SVG, nothing fetched from elsewhere, so
//! they work with no internet.
//!
//! | route | page |
//! |---|---|
//! | `GET /` | every robot with its rule and its state now |
//! | `GET /robots/{robotId}?date=YYYY-MM-DD` | one robot's day: events, windows, alarms, late events |
//! | `GET /robots/{robotId}/compare?days=7&gap=2h,3h&start=…&end=…` | what other settings would have done over the robot's stored events |
//!
//! A page about a session that runs refreshes itself every 30 seconds. The day is drawn by the
//! same timeline as `replay --output html` ([`crate::replay::day_svg`]), from the core's own
//! evaluation of the stored events, with the alarms' reference ids and Megazord ids from the
//! outbox.

use std::collections::HashMap;

use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::response::Html;
use jiff::Timestamp;
use jiff::civil::Date;
use jiff::tz::TimeZone;
use maud::{Markup, html};

#[allow(unused_imports)]
use super::openapi::ErrorBody;
use super::{ApiError, HttpState, parse_robot_id};
use crate::domain::{Rule, RuleInput, Session, SessionState, Step, evaluate_from};
use crate::replay::day_svg::{DayDrawing, draw_day};
use crate::replay::page::page;
use crate::replay::{
    DateRange, EventSet, SettingError, compare, render_compare_html_with, setting_count, settings,
};
use crate::store::{DayView, SessionSummary, StoredRule};

/// How often a page about a running session reloads itself, in seconds.
const REFRESH_SECONDS: u32 = 30;
/// The most settings compared at once from the dashboard.
const MAX_SETTINGS: usize = 12;

const STYLE: &str = "
table{border-collapse:collapse;background:#fff;border:1px solid #e1e4ea;width:100%}
th,td{padding:6px 10px;border-bottom:1px solid #eef0f4;text-align:left;vertical-align:top}
thead th{background:#f3f5f8} nav{display:flex;gap:14px;align-items:center;margin:8px 0 14px}
nav form{margin:0} .muted{color:#5b6475} .badge{padding:1px 8px;border-radius:10px;font-size:12px;font-weight:600}
.SUCCESS{background:#dff3e4;color:#1e6b34} .ALARM_RAISED{background:#fde2e1;color:#9b1c1c} .FAILED{background:#fde2e1;color:#9b1c1c}
.RUNNING{background:#e5edff;color:#1f3f8a} .day{background:#fff;border:1px solid #e1e4ea;border-radius:6px;padding:8px 12px;margin:10px 0}
svg{display:block;margin-top:6px;width:100%;height:auto} text{font-size:10px;fill:#5b6475}
";

/// A dashboard page: `body` under the navigation, reloading itself while `refresh`.
fn dashboard_page(title: &str, refresh: bool, body: Markup) -> Html<String> {
    let body = html! {
        nav {
            a href="/" { "Robots" }
            (sign_out_form())
        }
        (body)
    };
    Html(page(title, STYLE, refresh.then_some(REFRESH_SECONDS), body).into_string())
}

/// The sign-out button, in the navigation of every dashboard page.
fn sign_out_form() -> Markup {
    html! {
        form method="post" action="/sign-out" { button type="submit" { "Sign out" } }
    }
}

/// `RUNNING` while the session runs, else its result (`SUCCESS`, `ALARM_RAISED`, `FAILED`).
fn status_label(state: &SessionState) -> &'static str {
    if state.is_running() {
        "RUNNING"
    } else {
        state.result.as_str()
    }
}

fn local(tz: &TimeZone, t: Timestamp) -> String {
    tz.to_datetime(t).strftime("%H:%M").to_string()
}

/// The date of the robot's session that runs at `now`, or else today in its zone.
fn current_date(rule: &Rule, now: Timestamp) -> Date {
    Session::containing(rule, now)
        .next()
        .map_or_else(|| rule.timezone.to_datetime(now).date(), |s| s.date)
}

fn rule_text(stored: &StoredRule) -> String {
    let rule = &stored.rule;
    format!(
        "{}–{} {}, gap {}, v{}{}",
        rule.start.strftime("%H:%M"),
        rule.end.strftime("%H:%M"),
        rule.timezone_name(),
        rule.gap,
        stored.version,
        if rule.enabled { "" } else { " (disabled)" }
    )
}

/// `GET /`: every robot with its rule and its state now.
#[utoipa::path(get, path = "/", tag = "dashboard",
    responses((status = 200, description = "The page", body = String, content_type = "text/html"), (status = 303, description = "Not signed in: to the sign-in form"), (status = 403, description = "From a web page of another origin", body = ErrorBody), (status = 503, description = "The database (or Megazord) cannot be reached now; try again", body = ErrorBody)),
    security((), ("bearer" = []), ("cookie" = [])))]
pub async fn robots(State(state): State<HttpState>) -> Result<Html<String>, ApiError> {
    let store = state.ctx.store();
    let now = state.ctx.now();
    let rules = store.rules().await.map_err(ApiError::unavailable)?;
    let keys: Vec<_> = rules
        .iter()
        .map(|s| (s.rule.robot_id, current_date(&s.rule, now)))
        .collect();
    let sessions = store
        .sessions_on(keys)
        .await
        .map_err(ApiError::unavailable)?;
    let body = html! {
        h1 { "Robots" }
        div.sub {
            (rules.len()) " robots with a rule. The state is that of each robot's session today (its \
            own zone); the page refreshes itself every " (REFRESH_SECONDS) " s."
        }
        table #robots {
            thead {
                tr {
                    th { "robot" } th { "rule" } th { "today" } th { "current window (deadline)" }
                    th { "last event" } th { "alarms today" } th { "late events" } th {}
                }
            }
            tbody {
                @for stored in &rules {
                    (robot_row(stored, sessions.get(&stored.rule.robot_id)))
                }
            }
        }
    };
    Ok(dashboard_page("Robots — azi3-status-jobs", true, body))
}

/// One robot's row on `GET /`, with its session today if it has one.
fn robot_row(stored: &StoredRule, session: Option<&SessionSummary>) -> Markup {
    let rule = &stored.rule;
    let tz = &rule.timezone;
    let id = rule.robot_id;
    let robot = format!("/robots/{id}");
    html! {
        tr data-robot=(id) {
            td { a href=(robot) { (id) } }
            td { (rule_text(stored)) }
            @match session {
                Some(s) => {
                    @let result = status_label(&s.state);
                    td { span.badge.(result) { (result) } }
                    td {
                        @if s.state.is_running() {
                            (local(tz, s.state.window.start)) "–" (local(tz, s.state.window.end))
                            " (" (local(tz, s.state.window.end)) ")"
                        } @else {
                            "—"
                        }
                    }
                    td {
                        @match s.last_event {
                            Some(t) => (local(tz, t)),
                            None => "—",
                        }
                    }
                    td { (s.state.alarms) }
                    td { (s.late_events) }
                }
                None => {
                    td { span.muted { "no session" } }
                    td { "—" } td { "—" } td { "0" } td { "0" }
                }
            }
            td { a href={ (robot) "/compare" } { "compare settings" } }
        }
    }
}

/// The robot the path names and its rule; 404 when it has none.
async fn robot_with_rule(
    state: &HttpState,
    robot_id: Result<Path<String>, PathRejection>,
) -> Result<StoredRule, ApiError> {
    let Path(robot_id) = robot_id?;
    let robot_id = parse_robot_id(&robot_id)?;
    state
        .ctx
        .store()
        .rule(robot_id)
        .await
        .map_err(ApiError::unavailable)?
        .ok_or_else(|| ApiError::not_found("robotId", robot_id.to_string(), "has no rule"))
}

/// The query of the day view.
#[derive(Debug, Default, serde::Deserialize)]
pub struct DayQuery {
    /// `YYYY-MM-DD`; today in the robot's zone by default.
    date: Option<String>,
}

fn parse_date(field: &'static str, text: &str) -> Result<Date, ApiError> {
    Date::strptime("%Y-%m-%d", text.trim())
        .map_err(|_| ApiError::bad_request(field, text, "not a date (write YYYY-MM-DD)"))
}

/// `GET /robots/{robotId}`: one robot's day.
#[utoipa::path(get, path = "/robots/{robotId}", tag = "dashboard",
    params(("robotId" = u32, Path, minimum = 1, example = 7, description = "The robot (1 to 4294967295)"),
           ("date" = Option<String>, Query, description = "YYYY-MM-DD; today in the robot's zone by default")),
    responses((status = 200, description = "The page", body = String, content_type = "text/html"), (status = 303, description = "Not signed in: to the sign-in form"), (status = 400, description = "A field is wrong; the answer names it and its value", body = ErrorBody), (status = 403, description = "From a web page of another origin", body = ErrorBody), (status = 404, description = "The robot has no rule", body = ErrorBody), (status = 503, description = "The database (or Megazord) cannot be reached now; try again", body = ErrorBody)),
    security((), ("bearer" = []), ("cookie" = [])))]
pub async fn day(
    State(state): State<HttpState>,
    robot_id: Result<Path<String>, PathRejection>,
    query: Result<Query<DayQuery>, QueryRejection>,
) -> Result<Html<String>, ApiError> {
    let Query(query) = query?;
    let stored = robot_with_rule(&state, robot_id).await?;
    let robot_id = stored.rule.robot_id;
    let store = state.ctx.store();
    let now = state.ctx.now();
    let rule = &stored.rule;
    let date = match query.date.as_deref() {
        Some(text) if !text.trim().is_empty() => parse_date("date", text)?,
        _ => current_date(rule, now),
    };
    let view = store
        .day_view(robot_id, date)
        .await
        .map_err(ApiError::unavailable)?;
    let running = view.as_ref().is_some_and(|v| v.state.is_running());
    let title = format!("Robot {robot_id} — {date}");
    let yesterday = date.yesterday().unwrap_or(date);
    let tomorrow = date.tomorrow().unwrap_or(date);
    let robot = format!("/robots/{robot_id}");
    let body = html! {
        h1 { (title) }
        div.sub { "Rule now: " (rule_text(&stored)) ". Times are local (" (rule.timezone_name()) ")." }
        nav.dates {
            a href={ (robot) "?date=" (yesterday) } rel="prev" { "← " (yesterday) }
            form method="get" action=(robot) {
                input type="date" name="date" value=(date);
                " "
                button type="submit" { "Show" }
            }
            a href={ (robot) "?date=" (tomorrow) } rel="next" { (tomorrow) " →" }
            a href={ (robot) "/compare" } { "Compare settings" }
        }
        @match &view {
            None => {
                p.muted #no-session {
                    "No session on " (date) ": the rule does not cover that day, it was not yet \
                    watched then, or the day has not come."
                }
            }
            Some(view) => {
                // A session began when its rule was created or enabled is watched from then;
                // the rule says when only while it is still the version the session began
                // under.
                @let watching_since = stored
                    .watching_since
                    .filter(|_| view.rule_version == stored.version);
                (day_section(rule, watching_since, view, now))
            }
        }
    };
    Ok(dashboard_page(
        &format!("{title} — azi3-status-jobs"),
        running,
        body,
    ))
}

/// The session of one day: its facts, its timeline and its alarms.
fn day_section(
    rule: &Rule,
    watching_since: Option<Timestamp>,
    view: &DayView,
    now: Timestamp,
) -> Markup {
    let tz = &rule.timezone;
    let state = &view.state;
    let session = state.session;
    let at = |state_name: &str| -> Vec<Timestamp> {
        view.events
            .iter()
            .filter(|e| e.state == state_name)
            .map(|e| e.occurred_at)
            .collect()
    };
    let observed = at("observed");
    let late = at("late");
    let pending = at("pending");
    // The windows as the core decides them from the events the session observed; while the
    // session runs, only those before its running window have happened.
    let began = match watching_since {
        Some(t) => SessionState::begin_from(session, state.gap, state.partial_final_window, t),
        None => SessionState::begin(session, state.gap, state.partial_final_window),
    };
    let mut steps = Vec::new();
    evaluate_from(began, &observed, |step| steps.push(step));
    let running = state.is_running().then_some(state.window);
    if let Some(window) = running {
        steps.retain(|step| match step {
            Step::Observed { at, .. } => *at <= window.start,
            Step::Closed(closed) => closed.window.end <= window.start,
        });
    }
    let notes: HashMap<Timestamp, String> = view
        .alarms
        .iter()
        .map(|a| {
            let megazord = a.megazord_incoming_id.map_or_else(
                || "not yet at Megazord".to_string(),
                |id| format!("Megazord event {id}"),
            );
            (
                a.identity.window_start,
                format!("{} · {} · {}", a.reference_id, megazord, a.state),
            )
        })
        .collect();
    let result = status_label(state);
    let mut events: Vec<Timestamp> = observed.clone();
    events.extend(&pending);
    events.sort();
    html! {
        section.day #session data-status-check-id=(view.status_check_id) {
            header {
                span.badge.(result) { (result) }
                " "
                span.muted {
                    (local(tz, session.start)) "–" (local(tz, session.end)) " · rule version "
                    (view.rule_version) " · gap " (state.gap) " · " (observed.len() + pending.len())
                    " events · " (late.len()) " late · " (view.alarms.len()) " alarms · " (view.phase)
                }
            }
            (draw_day(&DayDrawing {
                start: session.start,
                end: session.end,
                tz,
                steps: &steps,
                events: &events,
                late: &late,
                running,
                alarm_note: &|start| notes.get(&start).cloned(),
                label: &format!("timeline of {}", session.date),
            }))
            @if let Some(window) = running {
                p #running {
                    "Window " (local(tz, window.start)) "–" (local(tz, window.end)) " runs now ("
                    (local(tz, now)) "); without an event by " (local(tz, window.end))
                    " an alarm is raised."
                }
            }
            @if let Some(reason) = &view.failure_reason {
                p.problem { "Failed: " (reason) }
            }
            table #alarms {
                thead {
                    tr {
                        th { "window" } th { "reference id" } th { "Megazord event" } th { "state" }
                        th { "attempts" }
                    }
                }
                tbody {
                    @for alarm in &view.alarms {
                        tr {
                            td { (local(tz, alarm.identity.window_start)) "–" (local(tz, alarm.window_end)) }
                            td { code { (alarm.reference_id) } }
                            td {
                                @match alarm.megazord_incoming_id {
                                    Some(id) => (id),
                                    None => "—",
                                }
                            }
                            td { (alarm.state) }
                            td { (alarm.attempts) }
                        }
                    }
                    @if view.alarms.is_empty() {
                        tr { td colspan="5" class="muted" { "no alarm" } }
                    }
                }
            }
            table #events {
                thead { tr { th { "event" } th { "at" } th { "taken as" } } }
                tbody {
                    @for event in &view.events {
                        tr {
                            td { (event.incoming_event_id) }
                            td { (tz.to_datetime(event.occurred_at).strftime("%H:%M:%S")) }
                            td { (event.state) }
                        }
                    }
                }
            }
        }
    }
}

/// The query of the comparison page.
#[derive(Debug, Default, serde::Deserialize)]
pub struct CompareQuery {
    /// 7 or 30 (any number of days from 1 to 366).
    days: Option<String>,
    /// Gaps, comma-separated (`90m,2h,3h`); the rule's by default.
    gap: Option<String>,
    /// Start times A, comma-separated; the rule's by default.
    start: Option<String>,
    /// End times B, comma-separated; the rule's by default.
    end: Option<String>,
}

/// The settings of a comparison: every combination of the given lists, each missing list
/// standing for the rule's own value.
fn settings_of(rule: &Rule, query: &CompareQuery) -> Result<Vec<Rule>, ApiError> {
    let list = |given: &Option<String>| -> Vec<String> {
        given
            .as_deref()
            .unwrap_or_default()
            .split(',')
            .map(|v| v.trim().to_string())
            .filter(|v| !v.is_empty())
            .collect()
    };
    let (starts, ends, gaps) = (list(&query.start), list(&query.end), list(&query.gap));
    let count = setting_count(starts.len(), ends.len(), gaps.len());
    if count > MAX_SETTINGS {
        return Err(ApiError::bad_request(
            "gap",
            query.gap.clone().unwrap_or_default(),
            format!(
                "with start and end this makes {count} settings; at most {MAX_SETTINGS} at once"
            ),
        ));
    }
    let base = RuleInput {
        robot_id: rule.robot_id,
        timezone: rule.timezone_name().to_string(),
        start: rule.start.strftime("%H:%M").to_string(),
        end: rule.end.strftime("%H:%M").to_string(),
        gap: rule.gap.to_string(),
        watched_event: rule.watched_event.clone(),
        alarm_event: rule.alarm_event.clone(),
        partial_final_window: rule.partial_final_window.to_string(),
        enabled: true,
    };
    settings(&base, &starts, &ends, &gaps).map_err(|SettingError { listed, error }| {
        let (field, value) = listed.unwrap_or((error.field, error.value.clone()));
        ApiError::bad_request(field, value, error.to_string())
    })
}

/// `GET /robots/{robotId}/compare`: what other settings would have done over the events the
/// service stored for the robot in the last days.
#[utoipa::path(get, path = "/robots/{robotId}/compare", tag = "dashboard",
    params(("robotId" = u32, Path, minimum = 1, example = 7, description = "The robot (1 to 4294967295)"),
           ("days" = Option<String>, Query, description = "The last 1 to 366 whole days; 7 by default"),
           ("gap" = Option<String>, Query, description = "Gaps, comma-separated (`90m,2h`); the rule's by default"),
           ("start" = Option<String>, Query, description = "Start times A, comma-separated (`08:00,09:00`); the rule's by default"),
           ("end" = Option<String>, Query, description = "End times B, comma-separated; the rule's by default")),
    responses((status = 200, description = "The page", body = String, content_type = "text/html"), (status = 303, description = "Not signed in: to the sign-in form"), (status = 400, description = "A field is wrong; the answer names it and its value", body = ErrorBody), (status = 403, description = "From a web page of another origin", body = ErrorBody), (status = 404, description = "The robot has no rule", body = ErrorBody), (status = 503, description = "The database (or Megazord) cannot be reached now; try again", body = ErrorBody)),
    security((), ("bearer" = []), ("cookie" = [])))]
pub async fn compare_settings(
    State(state): State<HttpState>,
    robot_id: Result<Path<String>, PathRejection>,
    query: Result<Query<CompareQuery>, QueryRejection>,
) -> Result<Html<String>, ApiError> {
    let Query(query) = query?;
    let stored = robot_with_rule(&state, robot_id).await?;
    let robot_id = stored.rule.robot_id;
    let store = state.ctx.store();
    let now = state.ctx.now();
    let rule = &stored.rule;
    let days: i32 = match query.days.as_deref().map(str::trim) {
        None | Some("") => 7,
        Some(text) => text
            .parse()
            .ok()
            .filter(|d| (1..=366).contains(d))
            .ok_or_else(|| {
                ApiError::bad_request("days", text, "must be a whole number from 1 to 366")
            })?,
    };
    let settings = settings_of(rule, &query)?;
    // The last `days` whole days: up to today once today's session is over, else up to
    // yesterday (a session still running would count windows still to come as alarms).
    let today = rule.timezone.to_datetime(now).date();
    let to = match Session::on(rule, today) {
        Some(session) if session.end > now => today.yesterday().unwrap_or(today),
        _ => today,
    };
    let from = to
        .checked_sub(jiff::Span::new().days(i64::from(days - 1)))
        .unwrap_or(to);
    let instants = store
        .event_instants(robot_id, from, to)
        .await
        .map_err(ApiError::unavailable)?;
    let events = EventSet {
        rows: instants.len() as u64,
        instants,
        ..EventSet::default()
    };
    let report = compare(
        &settings,
        &events,
        DateRange {
            from: Some(from),
            to: Some(to),
        },
    );
    let robot = format!("/robots/{robot_id}");
    let given = |list: &Option<String>| list.clone().unwrap_or_default();
    let day_counts = [7, 30]
        .into_iter()
        .chain((![7, 30].contains(&days)).then_some(days));
    // Inline elements on lines of their own: the line breaks between them are spaces.
    let preamble = html! {
        nav {
            a href="/" { "Robots" }
            a href=(robot) { "Robot " (robot_id) " today" }
            (sign_out_form())
        }
        form method="get" action={ (robot) "/compare" } #settings {
            label {
                "Last "
                select name="days" {
                    @for d in day_counts {
                        option value=(d) selected[d == days] { (d) }
                    }
                }
                " days"
            }
            " "
            label { "gaps " input name="gap" value=(given(&query.gap)) placeholder=(rule.gap) size="14"; }
            " "
            label {
                "starts "
                input name="start" value=(given(&query.start)) placeholder=(rule.start.strftime("%H:%M")) size="12";
            }
            " "
            label {
                "ends "
                input name="end" value=(given(&query.end)) placeholder=(rule.end.strftime("%H:%M")) size="12";
            }
            " "
            button type="submit" { "Compare" }
        }
        p.sub {
            "Over the events the service stored for robot " (robot_id) " from " (from) " to " (to)
            " (the hours of the rule in force then: events outside them were not kept). \
            Comma-separate values to compare several; the rule now is " (rule_text(&stored)) "."
        }
    };
    Ok(Html(render_compare_html_with(&report, preamble)))
}
