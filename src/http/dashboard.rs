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
use std::fmt::Write;

use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::response::Html;
use jiff::Timestamp;
use jiff::civil::Date;
use jiff::tz::TimeZone;

#[allow(unused_imports)]
use super::openapi::ErrorBody;
use super::{ApiError, HttpState, parse_robot_id};
use crate::domain::{Rule, RuleInput, Session, SessionState, Step, evaluate_from};
use crate::replay::day_svg::{DayDrawing, draw_day};
use crate::replay::html::{escape, page_head};
use crate::replay::{
    DateRange, EventSet, SettingError, compare, render_compare_html_with, setting_count, settings,
};
use crate::store::{DayView, StoredRule};

/// How often a page about a running session reloads itself, in seconds.
const REFRESH_SECONDS: u32 = 30;
/// The most settings compared at once from the dashboard.
const MAX_SETTINGS: usize = 12;

const STYLE: &str = "table{border-collapse:collapse;background:#fff;border:1px solid #e1e4ea;width:100%}\n\
th,td{padding:6px 10px;border-bottom:1px solid #eef0f4;text-align:left;vertical-align:top}\n\
thead th{background:#f3f5f8} nav{display:flex;gap:14px;align-items:center;margin:8px 0 14px}\n\
nav form{margin:0} .muted{color:#5b6475} .badge{padding:1px 8px;border-radius:10px;font-size:12px;font-weight:600}\n\
.SUCCESS{background:#dff3e4;color:#1e6b34} .ALARM_RAISED{background:#fde2e1;color:#9b1c1c} .FAILED{background:#fde2e1;color:#9b1c1c}\n\
.RUNNING{background:#e5edff;color:#1f3f8a} .day{background:#fff;border:1px solid #e1e4ea;border-radius:6px;padding:8px 12px;margin:10px 0}\n\
svg{display:block;margin-top:6px;width:100%;height:auto} text{font-size:10px;fill:#5b6475}\n";

fn top(title: &str, refresh: bool) -> String {
    let mut out = page_head(title);
    out.push_str(STYLE);
    out.push_str("</style>");
    if refresh {
        let _ = write!(
            out,
            r#"<meta http-equiv="refresh" content="{REFRESH_SECONDS}">"#
        );
    }
    out.push_str("</head><body>\n");
    out.push_str(
        r#"<nav><a href="/">Robots</a><form method="post" action="/sign-out"><button type="submit">Sign out</button></form></nav>"#,
    );
    out
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
    let mut out = top("Robots — azi3-status-jobs", true);
    let _ = write!(
        out,
        r#"<h1>Robots</h1><div class="sub">{} robots with a rule. The state is that of each robot's session today (its own zone); the page refreshes itself every {REFRESH_SECONDS} s.</div>
<table id="robots"><thead><tr><th>robot</th><th>rule</th><th>today</th><th>current window (deadline)</th><th>last event</th><th>alarms today</th><th>late events</th><th></th></tr></thead><tbody>"#,
        rules.len()
    );
    for stored in &rules {
        let rule = &stored.rule;
        let tz = &rule.timezone;
        let id = rule.robot_id;
        let (status, window, last, alarms, late) = match sessions.get(&id) {
            Some(s) => {
                let result = status_label(&s.state);
                let window = if s.state.is_running() {
                    format!(
                        "{}–{} ({})",
                        local(tz, s.state.window.start),
                        local(tz, s.state.window.end),
                        local(tz, s.state.window.end)
                    )
                } else {
                    "—".to_string()
                };
                (
                    format!(r#"<span class="badge {result}">{result}</span>"#),
                    window,
                    s.last_event
                        .map_or_else(|| "—".to_string(), |t| local(tz, t)),
                    s.state.alarms.to_string(),
                    s.late_events.to_string(),
                )
            }
            None => (
                r#"<span class="muted">no session</span>"#.to_string(),
                "—".to_string(),
                "—".to_string(),
                "0".to_string(),
                "0".to_string(),
            ),
        };
        let _ = write!(
            out,
            r#"<tr data-robot="{id}"><td><a href="/robots/{id}">{id}</a></td><td>{rule}</td><td>{status}</td><td>{window}</td><td>{last}</td><td>{alarms}</td><td>{late}</td><td><a href="/robots/{id}/compare">compare settings</a></td></tr>"#,
            rule = escape(&rule_text(stored)),
        );
    }
    out.push_str("</tbody></table></body></html>\n");
    Ok(Html(out))
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
    let mut out = top(&format!("{title} — azi3-status-jobs"), running);
    let yesterday = date.yesterday().unwrap_or(date);
    let tomorrow = date.tomorrow().unwrap_or(date);
    let _ = write!(
        out,
        r#"<h1>{title}</h1><div class="sub">Rule now: {rule}. Times are local ({zone}).</div>
<nav class="dates"><a href="/robots/{robot_id}?date={yesterday}" rel="prev">← {yesterday}</a><form method="get" action="/robots/{robot_id}"><input type="date" name="date" value="{date}"> <button type="submit">Show</button></form><a href="/robots/{robot_id}?date={tomorrow}" rel="next">{tomorrow} →</a><a href="/robots/{robot_id}/compare">Compare settings</a></nav>"#,
        rule = escape(&rule_text(&stored)),
        zone = escape(rule.timezone_name()),
    );
    match view {
        None => {
            let _ = write!(
                out,
                r#"<p class="muted" id="no-session">No session on {date}: the rule does not cover that day, it was not yet watched then, or the day has not come.</p>"#
            );
        }
        Some(view) => {
            // A session began when its rule was created or enabled is watched from then; the
            // rule says when only while it is still the version the session began under.
            let watching_since = stored
                .watching_since
                .filter(|_| view.rule_version == stored.version);
            day_section(&mut out, rule, watching_since, &view, now);
        }
    }
    out.push_str("</body></html>\n");
    Ok(Html(out))
}

/// The session of one day: its facts, its timeline and its alarms.
fn day_section(
    out: &mut String,
    rule: &Rule,
    watching_since: Option<Timestamp>,
    view: &DayView,
    now: Timestamp,
) {
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
    let _ = write!(
        out,
        r#"<section class="day" id="session" data-status-check-id="{id}"><header><span class="badge {result}">{result}</span> <span class="muted">{start}–{end} · rule version {version} · gap {gap} · {events} events · {late_count} late · {alarms} alarms · {phase}</span></header>"#,
        id = view.status_check_id,
        start = local(tz, session.start),
        end = local(tz, session.end),
        version = view.rule_version,
        gap = state.gap,
        events = observed.len() + pending.len(),
        late_count = late.len(),
        alarms = view.alarms.len(),
        phase = escape(&view.phase),
    );
    draw_day(
        out,
        &DayDrawing {
            start: session.start,
            end: session.end,
            tz,
            steps: &steps,
            events: &events,
            late: &late,
            running,
            alarm_note: &|start| notes.get(&start).cloned(),
            label: &format!("timeline of {}", session.date),
        },
    );
    if let Some(window) = running {
        let _ = write!(
            out,
            r#"<p id="running">Window {}–{} runs now ({}); without an event by {} an alarm is raised.</p>"#,
            local(tz, window.start),
            local(tz, window.end),
            local(tz, now),
            local(tz, window.end),
        );
    }
    if let Some(reason) = &view.failure_reason {
        let _ = write!(out, r#"<p class="problem">Failed: {}</p>"#, escape(reason));
    }
    out.push_str(r#"<table id="alarms"><thead><tr><th>window</th><th>reference id</th><th>Megazord event</th><th>state</th><th>attempts</th></tr></thead><tbody>"#);
    for alarm in &view.alarms {
        let _ = write!(
            out,
            "<tr><td>{}–{}</td><td><code>{}</code></td><td>{}</td><td>{}</td><td>{}</td></tr>",
            local(tz, alarm.identity.window_start),
            local(tz, alarm.window_end),
            escape(&alarm.reference_id),
            alarm
                .megazord_incoming_id
                .map_or_else(|| "—".to_string(), |id| id.to_string()),
            escape(&alarm.state),
            alarm.attempts,
        );
    }
    if view.alarms.is_empty() {
        out.push_str(r#"<tr><td colspan="5" class="muted">no alarm</td></tr>"#);
    }
    out.push_str("</tbody></table>");
    out.push_str(r#"<table id="events"><thead><tr><th>event</th><th>at</th><th>taken as</th></tr></thead><tbody>"#);
    for event in &view.events {
        let _ = write!(
            out,
            "<tr><td>{}</td><td>{}</td><td>{}</td></tr>",
            event.incoming_event_id,
            tz.to_datetime(event.occurred_at).strftime("%H:%M:%S"),
            escape(&event.state),
        );
    }
    out.push_str("</tbody></table></section>\n");
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
    let value = |v: &Option<String>| escape(v.as_deref().unwrap_or_default());
    let mut form = String::new();
    let _ = write!(
        form,
        r#"<nav><a href="/">Robots</a><a href="/robots/{robot_id}">Robot {robot_id} today</a><form method="post" action="/sign-out"><button type="submit">Sign out</button></form></nav>
<form method="get" action="/robots/{robot_id}/compare" id="settings"><label>Last <select name="days">{options}</select> days</label>
<label>gaps <input name="gap" value="{gap}" placeholder="{own_gap}" size="14"></label>
<label>starts <input name="start" value="{start}" placeholder="{own_start}" size="12"></label>
<label>ends <input name="end" value="{end}" placeholder="{own_end}" size="12"></label>
<button type="submit">Compare</button></form>
<p class="sub">Over the events the service stored for robot {robot_id} from {from} to {to} (the hours of the rule in force then: events outside them were not kept). Comma-separate values to compare several; the rule now is {rule}.</p>"#,
        options = [7, 30]
            .iter()
            .chain((![7, 30].contains(&days)).then_some(&days))
            .map(|d| format!(
                r#"<option value="{d}"{}>{d}</option>"#,
                if *d == days { " selected" } else { "" }
            ))
            .collect::<String>(),
        gap = value(&query.gap),
        start = value(&query.start),
        end = value(&query.end),
        own_gap = rule.gap,
        own_start = rule.start.strftime("%H:%M"),
        own_end = rule.end.strftime("%H:%M"),
        rule = escape(&rule_text(&stored)),
    );
    Ok(Html(render_compare_html_with(&report, &form)))
}
