//! The replay report in a real browser: headless Chromium driven over WebDriver (`chromedriver`,
//! both installed by `scripts/services.sh`), asserting on the page as the browser laid it out,
//! not on the HTML text. Screenshots are kept under the target directory's
//! `tmp/browser/` as test artifacts.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::support::exclusive::{Shared, shared};

/// A chromedriver process with one headless Chromium session.
struct Browser {
    driver: Child,
    session: String,
    client: reqwest::Client,
    _turn: Shared,
}

impl Browser {
    async fn start() -> Browser {
        let turn = shared();
        let port = std::net::TcpListener::bind(("127.0.0.1", 0))
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .unwrap();
        let driver = Command::new("chromedriver")
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver runs (scripts/services.sh installs chromium-driver)");
        let client = reqwest::Client::new();
        let base = format!("http://127.0.0.1:{port}");
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let ready = client.get(format!("{base}/status")).send().await;
            if let Ok(answer) = ready
                && let Ok(status) = answer.json::<Value>().await
                && status["value"]["ready"] == true
            {
                break;
            }
            assert!(Instant::now() < deadline, "chromedriver did not get ready");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let created: Value = client
            .post(format!("{base}/session"))
            .json(&json!({"capabilities": {"alwaysMatch": {
                "browserName": "chrome",
                "goog:chromeOptions": {
                    "binary": "/usr/bin/chromium",
                    "args": ["--headless=new", "--no-sandbox", "--disable-gpu",
                             "--window-size=1000,700"]
                }
            }}}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let session = created["value"]["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("no session: {created}"))
            .to_string();
        Browser {
            driver,
            session: format!("{base}/session/{session}"),
            client,
            _turn: turn,
        }
    }

    async fn call(&self, post: Option<Value>, path: &str) -> Value {
        let url = format!("{}{path}", self.session);
        let request = match post {
            Some(body) => self.client.post(url).json(&body),
            None => self.client.get(url),
        };
        let answer: Value = request.send().await.unwrap().json().await.unwrap();
        answer["value"].clone()
    }

    async fn open(&self, file: &Path) {
        let url = format!("file://{}", file.display());
        self.call(Some(json!({ "url": url })), "/url").await;
    }

    /// The ids of the elements `css` selects.
    async fn all(&self, css: &str) -> Vec<String> {
        let found = self
            .call(
                Some(json!({"using": "css selector", "value": css})),
                "/elements",
            )
            .await;
        found
            .as_array()
            .unwrap_or_else(|| panic!("{css}: {found}"))
            .iter()
            // A web element is an object with one member, named by the WebDriver standard.
            .map(|e| {
                e.as_object()
                    .unwrap()
                    .values()
                    .next()
                    .unwrap()
                    .as_str()
                    .unwrap()
                    .to_string()
            })
            .collect()
    }

    /// Where the browser drew the element: `(x, width)` in CSS pixels.
    async fn span(&self, element: &str) -> (f64, f64) {
        let rect = self.call(None, &format!("/element/{element}/rect")).await;
        (rect["x"].as_f64().unwrap(), rect["width"].as_f64().unwrap())
    }

    async fn text(&self, element: &str) -> String {
        self.call(None, &format!("/element/{element}/property/textContent"))
            .await
            .as_str()
            .unwrap_or_default()
            .to_string()
    }

    /// Saves a screenshot of the page as `name` among the test artifacts.
    async fn screenshot(&self, name: &str) -> PathBuf {
        use base64::Engine;
        let png = self.call(None, "/screenshot").await;
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(png.as_str().unwrap())
            .unwrap();
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("browser");
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(name);
        std::fs::write(&path, bytes).unwrap();
        path
    }

    async fn quit(mut self) {
        let _ = self.client.delete(&self.session).send().await;
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

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
