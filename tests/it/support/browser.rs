//! A real browser for the tests of what people see: headless Chromium driven over WebDriver
//! (`chromedriver`; both installed by `scripts/services.sh`), so that a test asserts on the page
//! as the browser laid it out, not on its HTML text. Screenshots go under the target
//! directory's `tmp/browser/` as test artifacts.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use super::exclusive::{Shared, shared};

/// A chromedriver process with one headless Chromium session.
pub struct Browser {
    driver: Child,
    session: String,
    client: reqwest::Client,
    _turn: Shared,
}

impl Browser {
    pub async fn start() -> Browser {
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

    pub async fn call(&self, post: Option<Value>, path: &str) -> Value {
        let url = format!("{}{path}", self.session);
        let request = match post {
            Some(body) => self.client.post(url).json(&body),
            None => self.client.get(url),
        };
        let answer: Value = request.send().await.unwrap().json().await.unwrap();
        answer["value"].clone()
    }

    /// Opens a file of the test's.
    pub async fn open(&self, file: &Path) {
        self.go(&format!("file://{}", file.display())).await;
    }

    /// Opens `url` and waits until the page has loaded.
    pub async fn go(&self, url: &str) {
        self.call(Some(json!({ "url": url })), "/url").await;
    }

    /// The address of the page shown now.
    pub async fn url(&self) -> String {
        self.call(None, "/url")
            .await
            .as_str()
            .unwrap_or_default()
            .to_string()
    }

    /// The first element `css` selects.
    pub async fn one(&self, css: &str) -> String {
        self.all(css)
            .await
            .into_iter()
            .next()
            .unwrap_or_else(|| panic!("no element matches {css}"))
    }

    /// Types `text` into the element.
    pub async fn type_into(&self, element: &str, text: &str) {
        self.call(
            Some(json!({ "text": text })),
            &format!("/element/{element}/value"),
        )
        .await;
    }

    /// Clicks the element (a submit button: the browser follows the form's answer).
    pub async fn click(&self, element: &str) {
        self.call(Some(json!({})), &format!("/element/{element}/click"))
            .await;
    }

    /// Clicks a submit button and waits until the browser shows the page the form's answer
    /// leads to: the click returns as soon as it is dispatched, before the navigation it starts.
    pub async fn submit(&self, button: &str) {
        let before = self.url().await;
        self.click(button).await;
        let give_up = std::time::Instant::now() + std::time::Duration::from_secs(20);
        loop {
            let state = self
                .call(
                    Some(json!({"script": "return document.readyState", "args": []})),
                    "/execute/sync",
                )
                .await;
            if self.url().await != before && state == "complete" {
                return;
            }
            assert!(
                std::time::Instant::now() < give_up,
                "the page did not change from {before} within 20 s of the submit"
            );
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
    }

    /// The ids of the elements `css` selects.
    pub async fn all(&self, css: &str) -> Vec<String> {
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
    pub async fn span(&self, element: &str) -> (f64, f64) {
        let rect = self.call(None, &format!("/element/{element}/rect")).await;
        (rect["x"].as_f64().unwrap(), rect["width"].as_f64().unwrap())
    }

    pub async fn text(&self, element: &str) -> String {
        self.call(None, &format!("/element/{element}/property/textContent"))
            .await
            .as_str()
            .unwrap_or_default()
            .to_string()
    }

    /// Saves a screenshot of the page as `name` among the test artifacts.
    pub async fn screenshot(&self, name: &str) -> PathBuf {
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

    pub async fn quit(mut self) {
        let _ = self.client.delete(&self.session).send().await;
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}
