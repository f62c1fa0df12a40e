//! The replay report in a real browser: headless Chromium driven over WebDriver (`chromedriver`,
//! both installed by `scripts/services.sh`), asserting on the page as the browser laid it out,
//! not on the HTML text. Screenshots are kept under the target directory's
//! `tmp/browser/` as test artifacts.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::support::browser::Browser;

/// Runs `replay` with `args` and writes its HTML page into `dir`.
fn replay_page(dir: &Path, name: &str, args: &[&str]) -> PathBuf {
    let output = Command::new(env!("CARGO_BIN_EXE_azi3-status-jobs"))
        .arg("replay")
        .args(args)
        .args(["--output", "html"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let path = dir.join(name);
    std::fs::write(&path, output.stdout).unwrap();
    path
}

const WORKED_EXAMPLE: [&str; 8] = [
    "--events",
    "examples/worked-example.csv",
    "--timezone",
    "Europe/Amsterdam",
    "--start",
    "08:00",
    "--end",
    "20:00",
];

#[tokio::test]
async fn the_worked_example_day_shows_its_four_alarms_where_they_happened() {
    let dir = tempfile::tempdir().unwrap();
    let page = replay_page(dir.path(), "day.html", &WORKED_EXAMPLE);
    let browser = Browser::start().await;
    browser.open(&page).await;

    let rects = browser.all("svg rect").await;
    // The first rectangle is the day's background, 08:00 to 20:00.
    let (day_x, day_width) = browser.span(&rects[0]).await;
    assert!(day_width > 400.0, "the timeline is drawn wide: {day_width}");
    let mut alarms = Vec::new();
    for rect in &rects[1..] {
        let tooltip = browser.text(rect).await;
        if tooltip.starts_with("alarm ") {
            alarms.push((tooltip, browser.span(rect).await));
        }
    }
    let tooltips: Vec<&str> = alarms.iter().map(|(t, _)| t.as_str()).collect();
    assert_eq!(
        tooltips,
        [
            "alarm 09:40–11:40",
            "alarm 13:00–15:00",
            "alarm 15:00–17:00",
            "alarm 17:00–19:00"
        ]
    );
    // Each alarm's window is drawn where its hours fall on the 12-hour day.
    for (tooltip, (x, width)) in &alarms {
        let hours = |hhmm: &str| {
            let (h, m) = hhmm.split_once(':').unwrap();
            h.parse::<f64>().unwrap() + m.parse::<f64>().unwrap() / 60.0
        };
        let (from, to) = tooltip["alarm ".len()..].split_once('–').unwrap();
        let expected_x = day_x + (hours(from) - 8.0) / 12.0 * day_width;
        let expected_width = (hours(to) - hours(from)) / 12.0 * day_width;
        assert!(
            (x - expected_x).abs() < 2.0,
            "{tooltip}: x {x}, expected {expected_x}"
        );
        assert!(
            (width - expected_width).abs() < 2.0,
            "{tooltip}: width {width}, expected {expected_width}"
        );
    }
    let shot = browser.screenshot("replay-worked-example.png").await;
    assert!(std::fs::metadata(shot).unwrap().len() > 1000);
    browser.quit().await;
}

#[tokio::test]
async fn two_gaps_compared_show_one_column_and_one_bar_per_day_each() {
    let dir = tempfile::tempdir().unwrap();
    let mut args = WORKED_EXAMPLE.to_vec();
    args.extend(["--compare-gap", "2h,3h"]);
    let page = replay_page(dir.path(), "compare.html", &args);
    let browser = Browser::start().await;
    browser.open(&page).await;

    let headers = browser.all("th").await;
    let mut labels = Vec::new();
    for header in &headers {
        labels.push(browser.text(header).await);
    }
    assert!(
        labels.iter().any(|l| l.contains("gap 2h")) && labels.iter().any(|l| l.contains("gap 3h")),
        "{labels:?}"
    );
    let bars = browser.all("rect.bar").await;
    assert_eq!(bars.len(), 2, "one day, two settings");
    // The 2-hour gap raised 4 alarms that day, the 3-hour gap fewer: its bar is lower.
    let mut heights = Vec::new();
    for bar in &bars {
        let rect = browser.call(None, &format!("/element/{bar}/rect")).await;
        heights.push(rect["height"].as_f64().unwrap());
    }
    assert!(heights[0] > heights[1], "{heights:?}");
    browser.screenshot("compare-two-gaps.png").await;
    browser.quit().await;
}
