//! The service started inside the test process ([`Application::build`] on port 0, then
//! [`Application::run_until_stopped`] on a task), with a SQLite database of its own in a
//! temporary directory: for the tests that talk to it over HTTP and need neither its logs nor
//! to kill it. The tests that must SIGKILL a process or read its log run the binary
//! ([`super::service::Service`]).

use azi3_status_jobs::config::Config;
use azi3_status_jobs::startup::{Application, ServeError};
use figment::Figment;
use figment::providers::{Format, Serialized, Toml};
use jiff::Timestamp;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use super::exclusive::{Shared, shared};
use super::service::{get_json, post_json};

/// A running in-process service.
pub struct TestApp {
    /// `http://127.0.0.1:<port>`.
    pub base_url: String,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<Result<(), ServeError>>>,
    _dir: tempfile::TempDir,
    _turn: Shared,
}

/// How to start one.
#[derive(Debug, Clone, Default)]
pub struct AppOptions {
    /// The TOML configuration's text; the database and the port are the test's own.
    pub config: String,
    /// A simulated clock: its start and speed (`--clock-start`, `--clock-speed`).
    pub clock: Option<(Timestamp, f64)>,
}

/// Builds the service from `options` and runs it until the returned value is stopped or
/// dropped.
pub async fn spawn_app(options: AppOptions) -> TestApp {
    let turn = shared();
    let dir = tempfile::tempdir().unwrap();
    let database = format!(
        "sqlite://{}?mode=rwc",
        dir.path().join("azi3-status-jobs.db").display()
    );
    let mut figment = Figment::from(Serialized::defaults(Config::default()))
        .merge(Toml::string(&options.config))
        .merge(Serialized::default("database.url", database))
        .merge(Serialized::default("http.port", 0));
    if let Some((start, speed)) = options.clock {
        figment = figment
            .merge(Serialized::default("clock.start", start.to_string()))
            .merge(Serialized::default("clock.speed", speed));
    }
    let config = Config::from_figment(figment).expect("the test's configuration is valid");
    let app = Application::build(config)
        .await
        .expect("the service starts");
    let base_url = format!("http://127.0.0.1:{}", app.port());
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(app.run_until_stopped(async move {
        let _ = stopped.await;
    }));
    TestApp {
        base_url,
        stop: Some(stop),
        task: Some(task),
        _dir: dir,
        _turn: turn,
    }
}

impl TestApp {
    /// Stops the service gracefully and waits until it has: in-flight work finished, the
    /// database closed.
    pub async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            task.await
                .expect("the service task ends")
                .expect("the service stops cleanly");
        }
    }

    /// `GET path` as JSON.
    pub async fn get(&self, path: &str) -> (u16, serde_json::Value) {
        get_json(&self.base_url, path).await
    }

    /// `POST path` with a JSON body.
    pub async fn post(&self, path: &str, body: &str) -> (u16, serde_json::Value) {
        post_json(&self.base_url, path, body).await
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        // Stopped when the test did not stop it: the task ends with the test's runtime.
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}
