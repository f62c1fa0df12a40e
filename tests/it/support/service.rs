//! The real service binary, started as a child process on a free port, as an operator runs
//! it: a config file, `AZI3_` environment, JSON logs on standard error. For the tests that
//! read its log, restart it or signal it; the others start it in-process ([`super::app`]).

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::exclusive::{Shared, shared};

/// A running `azi3-status-jobs serve`.
pub struct Service {
    child: Option<Child>,
    /// `http://127.0.0.1:<port>`.
    pub base_url: String,
    logs: Arc<Mutex<Vec<String>>>,
    dir: PathBuf,
    config: PathBuf,
    env: BTreeMap<String, String>,
    _turn: Shared,
}

/// How to start one.
#[derive(Debug, Clone, Default)]
pub struct ServiceOptions {
    /// The TOML config file's text (written into `dir`).
    pub config: String,
    /// Extra environment variables.
    pub env: BTreeMap<String, String>,
    /// Extra command-line arguments after `serve`.
    pub args: Vec<String>,
}

impl Service {
    /// Starts the service in `dir` (its working directory) and waits until it listens.
    pub fn start(dir: &Path, options: ServiceOptions) -> Service {
        let config = dir.join("azi3-status-jobs.toml");
        std::fs::write(&config, &options.config).unwrap();
        let mut service = Service {
            child: None,
            base_url: String::new(),
            logs: Arc::new(Mutex::new(Vec::new())),
            dir: dir.to_path_buf(),
            config,
            env: options.env,
            _turn: shared(),
        };
        service.spawn(&options.args);
        service
    }

    fn spawn(&mut self, args: &[String]) {
        // The port is chosen here, not by the service: the test knows where it listens
        // without reading its log. (Another process could take the port in between; nothing
        // on this machine binds random loopback ports but the tests themselves.)
        let port = free_port();
        let mut child = Command::new(env!("CARGO_BIN_EXE_azi3-status-jobs"))
            .arg("serve")
            .arg("--config")
            .arg(&self.config)
            .args(args)
            .current_dir(&self.dir)
            .envs(&self.env)
            .env("AZI3_HTTP__PORT", port.to_string())
            .env("AZI3_LOG", "info,azi3_status_jobs=debug")
            .env("AWS_EC2_METADATA_DISABLED", "true")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("the service binary starts");
        let stderr = child.stderr.take().unwrap();
        let logs = Arc::clone(&self.logs);
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                logs.lock().unwrap().push(line);
            }
        });
        let address = SocketAddr::from(([127, 0, 0, 1], port));
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if TcpStream::connect_timeout(&address, Duration::from_millis(200)).is_ok() {
                break;
            }
            if let Ok(Some(status)) = child.try_wait() {
                panic!(
                    "the service exited ({status}) before it listened:\n{}",
                    self.logs().join("\n")
                );
            }
            assert!(
                Instant::now() < deadline,
                "the service did not start listening:\n{}",
                self.logs().join("\n")
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        self.child = Some(child);
        self.base_url = format!("http://{address}");
    }

    /// Every log line so far.
    pub fn logs(&self) -> Vec<String> {
        self.logs.lock().unwrap().clone()
    }

    /// Kills the process at once (SIGKILL): nothing is finished.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Sends SIGTERM and waits (at most 30 s) for the process to exit; returns its exit code.
    pub fn terminate(&mut self) -> Option<i32> {
        let mut child = self.child.take()?;
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(child.id().to_string())
            .status();
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(Some(status)) = child.try_wait() {
                return status.code();
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Starts the process again with the same config and environment.
    pub fn restart(&mut self, args: &[String]) {
        self.kill();
        self.spawn(args);
    }

    /// `GET path` as JSON.
    pub async fn get(&self, path: &str) -> (u16, serde_json::Value) {
        get_json(&self.base_url, path).await
    }

    /// The simulated clock the service reports on `/health` (it must run on one).
    pub async fn simulated_clock(&self) -> azi3_status_jobs::clock::SimulatedClock {
        let (status, health) = self.get("/health").await;
        assert_eq!(status, 200, "{health}");
        let clock = &health["clock"];
        assert_eq!(clock["kind"], "simulated", "{health}");
        azi3_status_jobs::clock::SimulatedClock {
            real_anchor: clock["realAnchor"].as_str().unwrap().parse().unwrap(),
            service_anchor: clock["serviceAnchor"].as_str().unwrap().parse().unwrap(),
            speed: clock["speed"].as_f64().unwrap(),
        }
    }

    /// `POST path` with a JSON body.
    pub async fn post(&self, path: &str, body: &str) -> (u16, serde_json::Value) {
        post_json(&self.base_url, path, body).await
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        self.kill();
    }
}

/// `GET base_url + path`: the status and the body as JSON (`Null` when it is not JSON).
pub async fn get_json(base_url: &str, path: &str) -> (u16, serde_json::Value) {
    let response = reqwest::get(format!("{base_url}{path}")).await.unwrap();
    let status = response.status().as_u16();
    (
        status,
        response.json().await.unwrap_or(serde_json::Value::Null),
    )
}

/// `POST base_url + path` with a JSON body: the status and the answer as JSON.
pub async fn post_json(base_url: &str, path: &str, body: &str) -> (u16, serde_json::Value) {
    let response = reqwest::Client::new()
        .post(format!("{base_url}{path}"))
        .header("content-type", "application/json")
        .body(body.to_string())
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    (
        status,
        response.json().await.unwrap_or(serde_json::Value::Null),
    )
}

/// A loopback port nobody listens on now.
fn free_port() -> u16 {
    std::net::TcpListener::bind(("127.0.0.1", 0))
        .and_then(|listener| listener.local_addr())
        .map(|address| address.port())
        .expect("a free loopback port")
}

/// Runs the binary with `args` to completion (for start-up failures and admin commands).
pub fn run_binary(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> std::process::Output {
    let _turn = shared();
    Command::new(env!("CARGO_BIN_EXE_azi3-status-jobs"))
        .args(args)
        .current_dir(dir)
        .envs(env.iter().copied())
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .stdin(Stdio::null())
        .output()
        .expect("the binary runs")
}
