//! The dashboard in headless Chromium: sign in, the worked example's day with its 4 alarms
//! where they happened, two gaps compared over the stored events, sign out. Asserts on the page
//! as the browser laid it out; screenshots are kept as test artifacts.

use super::worked_example_day;
use crate::support::browser::Browser;

/// Hours since midnight of `HH:MM`.
fn hours(hhmm: &str) -> f64 {
    let (h, m) = hhmm.split_once(':').unwrap();
    h.parse::<f64>().unwrap() + m.parse::<f64>().unwrap() / 60.0
}

#[tokio::test]
async fn the_dashboard_shows_the_worked_example_day_compares_two_gaps_and_signs_out() {
    let app = worked_example_day().await;
    let base = app.base_url.clone();
    let browser = Browser::start().await;

    // Not signed in: the sign-in form, which brings the browser back to the robots.
    browser.go(&format!("{base}/")).await;
    assert!(
        browser.url().await.contains("/sign-in?next="),
        "{}",
        browser.url().await
    );
    let field = browser.one("#token").await;
    browser.type_into(&field, super::TOKEN).await;
    let button = browser.one("form button[type=submit]").await;
    browser.submit(&button).await;
    assert_eq!(browser.url().await, format!("{base}/"));
    let robot = browser.one("tr[data-robot='7'] td").await;
    assert_eq!(browser.text(&robot).await, "7");

    // The worked example's day: the 4 alarms of the spec, each where its hours fall.
    browser
        .go(&format!("{base}/robots/7?date=2025-03-30"))
        .await;
    let day = browser.one("svg rect[data-kind='day']").await;
    let (day_x, day_width) = browser.span(&day).await;
    assert!(day_width > 400.0, "the timeline is drawn wide: {day_width}");
    let mut alarms = Vec::new();
    for rect in browser.all("svg rect[data-kind='alarm']").await {
        let tooltip = browser.text(&rect).await;
        alarms.push((tooltip, browser.span(&rect).await));
    }
    let firsts: Vec<&str> = alarms
        .iter()
        .map(|(t, _)| t.lines().next().unwrap_or_default())
        .collect();
    assert_eq!(
        firsts,
        [
            "alarm 09:40–11:40",
            "alarm 13:00–15:00",
            "alarm 15:00–17:00",
            "alarm 17:00–19:00"
        ]
    );
    // Each tooltip names the alarm's reference id (semantics §5) and that it was sent.
    for ((tooltip, _), reference) in alarms.iter().zip([
        "nta-7-2025-03-30-1743320400",
        "nta-7-2025-03-30-1743332400",
        "nta-7-2025-03-30-1743339600",
        "nta-7-2025-03-30-1743346800",
    ]) {
        assert!(tooltip.contains(reference), "{tooltip}");
        assert!(tooltip.contains("sent"), "{tooltip}");
    }
    for (tooltip, (x, width)) in &alarms {
        let first = tooltip.lines().next().unwrap();
        let (from, to) = first["alarm ".len()..].split_once('–').unwrap();
        let expected_x = day_x + (hours(from) - 8.0) / 12.0 * day_width;
        let expected_width = (hours(to) - hours(from)) / 12.0 * day_width;
        assert!(
            (x - expected_x).abs() < 2.0,
            "{first}: x {x}, expected {expected_x}"
        );
        assert!(
            (width - expected_width).abs() < 2.0,
            "{first}: width {width}, expected {expected_width}"
        );
    }
    let events = browser.all("svg line[data-kind='event']").await;
    assert_eq!(events.len(), 3);
    let shot = browser.screenshot("dashboard-worked-example.png").await;
    assert!(std::fs::metadata(shot).unwrap().len() > 1000);

    // Two gaps compared over the day the service stored: 2 h raised 4 alarms, 3 h fewer.
    browser
        .go(&format!("{base}/robots/7/compare?days=1&gap=2h,3h"))
        .await;
    let mut labels = Vec::new();
    for header in browser.all("#comparison th").await {
        labels.push(browser.text(&header).await);
    }
    assert!(
        labels.iter().any(|l| l.contains("gap 2h")) && labels.iter().any(|l| l.contains("gap 3h")),
        "{labels:?}"
    );
    let bars = browser.all("rect.bar").await;
    assert_eq!(bars.len(), 2, "one day, two settings");
    let mut heights = Vec::new();
    for bar in &bars {
        let rect = browser.call(None, &format!("/element/{bar}/rect")).await;
        heights.push(rect["height"].as_f64().unwrap());
    }
    assert!(heights[0] > heights[1], "{heights:?}");
    browser.screenshot("dashboard-compare.png").await;

    // Signing out: back to the form, and the dashboard asks again.
    let sign_out = browser.one("form[action='/sign-out'] button").await;
    browser.submit(&sign_out).await;
    assert!(
        browser.url().await.ends_with("/sign-in"),
        "{}",
        browser.url().await
    );
    browser.go(&format!("{base}/robots/7")).await;
    assert!(browser.url().await.contains("/sign-in?next="));

    browser.quit().await;
    app.stop().await;
}
