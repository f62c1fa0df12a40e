//! The binary's start-up as an operator meets it: a configuration that cannot be used stops it
//! with exit code 2 and a message naming the key, and no secret given to it (database
//! password, token, webhook or Megazord credentials, queue URL query, AWS keys) appears in
//! anything it prints.

use std::net::TcpListener;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::support::service::run_binary;

const RULE: &str =
    "[[rules]]\nrobot_id = 7\ntimezone = \"UTC\"\nstart = \"08:00\"\nend = \"20:00\"\n";

/// Runs `args` in `dir` with `config` as the file named by `--config`; returns the exit code
/// and standard error.
fn run_with_config(
    dir: &Path,
    config: &str,
    args: &[&str],
    env: &[(&str, &str)],
) -> (Option<i32>, String) {
    let file = dir.join("given.toml");
    std::fs::write(&file, config).unwrap();
    let mut all: Vec<&str> = args.to_vec();
    let file = file.to_str().unwrap();
    all.extend(["--config", file]);
    let output = run_binary(dir, &all, env);
    (
        output.status.code(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// Asserts exit code 2 and a message on standard error containing `expected`.
fn assert_refused(outcome: (Option<i32>, String), expected: &str) {
    let (code, stderr) = outcome;
    assert_eq!(code, Some(2), "exit code; stderr:\n{stderr}");
    assert!(
        stderr.contains(expected),
        "expected {expected:?} in:\n{stderr}"
    );
}

#[test]
fn an_unknown_key_or_section_anywhere_is_named_with_the_nearest_known_key() {
    let dir = tempfile::tempdir().unwrap();
    let cases = [
        (
            format!("{RULE}gapp = \"5m\"\n"),
            "unknown key rules[0].gapp; did you mean gap?",
        ),
        (
            "[htpp]\nport = 9000\n".to_string(),
            "unknown key htpp; did you mean http?",
        ),
        (
            "foo = 1\n".to_string(),
            "unknown key foo; known keys here: database, status_check, rules, http",
        ),
        (
            "[megazord]\nbase_url = \"http://127.0.0.1:1\"\nmax_attemps = 2\n".to_string(),
            "unknown key megazord.max_attemps; did you mean max_attempts?",
        ),
        (
            "[queue]\nconsumer_queue_url = \"http://127.0.0.1:1/q\"\nvisibility_timeout = 5\n"
                .to_string(),
            "unknown key queue.visibility_timeout; did you mean visibility_timeout_seconds?",
        ),
        (
            "[database]\nbootstrap_shared_schem = true\n".to_string(),
            "unknown key database.bootstrap_shared_schem; did you mean bootstrap_shared_schema?",
        ),
        (
            "[service]\ngrace_second = 5\n".to_string(),
            "unknown key service.grace_second; did you mean grace_seconds?",
        ),
    ];
    for (config, expected) in cases {
        assert_refused(
            run_with_config(dir.path(), &config, &["serve"], &[]),
            expected,
        );
    }
}

#[test]
fn an_unknown_environment_key_is_named_with_its_variable() {
    let dir = tempfile::tempdir().unwrap();
    assert_refused(
        run_with_config(dir.path(), "", &["serve"], &[("AZI3_FOO", "1")]),
        "unknown key foo (environment variable AZI3_FOO)",
    );
    assert_refused(
        run_with_config(dir.path(), "", &["serve"], &[("AZI3_HTTP__PROT", "9000")]),
        "unknown key http.prot (environment variable AZI3_HTTP__PROT); did you mean port?",
    );
}

#[test]
fn a_named_config_file_must_exist_and_be_a_file_but_the_default_may_be_absent() {
    let dir = tempfile::tempdir().unwrap();
    for command in [
        &["serve"][..],
        &["migrate", "--dry-run"],
        &["seed-template"],
        &["rules", "list"],
    ] {
        let mut args = command.to_vec();
        args.extend(["--config", "missing.toml"]);
        let output = run_binary(dir.path(), &args, &[]);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(
            stderr.contains("--config missing.toml: no such file"),
            "{args:?}: {stderr}"
        );
        let mut args = command.to_vec();
        args.extend(["--config", "."]);
        let output = run_binary(dir.path(), &args, &[]);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(
            stderr.contains("--config .: not a file"),
            "{args:?}: {stderr}"
        );
    }
    let output = run_binary(
        dir.path(),
        &["migrate", "--dry-run"],
        &[("AZI3_DATABASE__URL", "sqlite://absent-file-ok.db?mode=rwc")],
    );
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
}

#[test]
fn config_is_taken_after_the_sub_command_by_every_command() {
    let dir = tempfile::tempdir().unwrap();
    let database = dir.path().join("rules.db");
    let config = format!(
        "[database]\nurl = \"sqlite://{}?mode=rwc\"\n",
        database.display()
    );
    std::fs::write(dir.path().join("given.toml"), &config).unwrap();
    for args in [
        &[
            "rules",
            "set",
            "--robot-id",
            "7",
            "--timezone",
            "UTC",
            "--start",
            "08:00",
            "--end",
            "20:00",
            "--config",
            "given.toml",
        ][..],
        &["rules", "list", "--config", "given.toml"],
        &["rules", "--config", "given.toml", "list"],
        &[
            "rules",
            "disable",
            "--robot-id",
            "7",
            "--config",
            "given.toml",
        ],
        &["migrate", "--config", "given.toml"],
        &["seed-template", "--config", "given.toml"],
    ] {
        let output = run_binary(dir.path(), args, &[]);
        assert!(
            output.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
    // Both spellings read the same file: the rule set above is listed.
    let output = run_binary(
        dir.path(),
        &["rules", "list", "--config", "given.toml"],
        &[],
    );
    let listing = String::from_utf8_lossy(&output.stdout);
    assert!(
        listing.lines().any(|l| l.starts_with("7\tUTC")),
        "{listing}"
    );
}

#[test]
fn two_rules_for_one_robot_are_refused_naming_both_entries() {
    let dir = tempfile::tempdir().unwrap();
    let config = format!("{RULE}{}{RULE}", RULE.replace("= 7", "= 8"));
    assert_refused(
        run_with_config(dir.path(), &config, &["serve"], &[]),
        "rules[0] and rules[2] are both for robot_id = 7",
    );
}

#[test]
fn the_alarm_webhook_must_be_an_http_url() {
    let dir = tempfile::tempdir().unwrap();
    assert_refused(
        run_with_config(
            dir.path(),
            "[service]\nalarm_webhook = \"hooks.example/alarm\"\n",
            &["serve"],
            &[],
        ),
        "service.alarm_webhook = \"hooks.example/alarm\": not a URL",
    );
    assert_refused(
        run_with_config(
            dir.path(),
            "[service]\nalarm_webhook = \"ftp://hooks.example/alarm\"\n",
            &["serve"],
            &[],
        ),
        "service.alarm_webhook = \"ftp://hooks.example/alarm\": must be an http:// or https:// URL",
    );
}

#[test]
fn the_clock_speed_is_bounded_and_needs_a_start() {
    let dir = tempfile::tempdir().unwrap();
    let start = ["--clock-start", "2025-01-01T00:00:00Z"];
    for speed in ["1e300", "0", "-5", "10001", "NaN"] {
        let mut args = vec!["serve"];
        args.extend(start);
        let speed_arg = format!("--clock-speed={speed}");
        args.push(&speed_arg);
        assert_refused(
            run_with_config(dir.path(), "", &args, &[]),
            &format!(
                "invalid value '{speed}' for '--clock-speed <N>': must be more than 0 and at most 10000"
            ),
        );
    }
    assert_refused(
        run_with_config(dir.path(), "", &["serve", "--clock-speed", "10"], &[]),
        "the following required arguments were not provided:\n  --clock-start",
    );
    assert_refused(
        run_with_config(dir.path(), "[clock]\nspeed = 10\n", &["serve"], &[]),
        "clock.speed = 10.0: needs clock.start",
    );
    assert_refused(
        run_with_config(
            dir.path(),
            "[clock]\nstart = \"2025-01-01T00:00:00Z\"\nspeed = 1e300\n",
            &["serve"],
            &[],
        ),
        "clock.speed = 1e300: must be more than 0 and at most 10000",
    );
}

#[test]
fn a_bad_log_filter_is_refused_naming_azi3_log_and_the_value() {
    let dir = tempfile::tempdir().unwrap();
    assert_refused(
        run_with_config(
            dir.path(),
            "",
            &["serve"],
            &[("AZI3_LOG", "info,azi3=loud")],
        ),
        "AZI3_LOG = \"info,azi3=loud\": not a log filter",
    );
}

#[test]
fn a_short_or_empty_token_is_refused_naming_its_length_not_its_value() {
    let dir = tempfile::tempdir().unwrap();
    for (token, length) in [("tiny-token", 10), ("", 0)] {
        let (code, stderr) =
            run_with_config(dir.path(), "", &["serve"], &[("AZI3_HTTP__TOKEN", token)]);
        assert_refused(
            (code, stderr.clone()),
            &format!("http.token: {length} characters, must be at least 16"),
        );
        if !token.is_empty() {
            assert!(!stderr.contains(token), "{stderr}");
        }
    }
}

// ---- No secret in any output ----

/// Secrets handed to the binary; none of them may appear in anything it prints.
const SECRETS: [&str; 8] = [
    "TopSecretPw123",
    "bearer-token-ZXQ7-0123456789",
    "hookpw-5521",
    "querysecret-9931",
    "mzpw-7781",
    "sqspw-1207",
    "AKIAEXAMPLEKEY4242",
    "awsSecretKey/Ex4mple+9876",
];

fn secret_env() -> Vec<(&'static str, &'static str)> {
    vec![
        ("AZI3_HTTP__TOKEN", SECRETS[1]),
        ("AWS_ACCESS_KEY_ID", SECRETS[6]),
        ("AWS_SECRET_ACCESS_KEY", SECRETS[7]),
        ("AWS_REGION", "eu-central-1"),
    ]
}

/// A local port nothing listens on.
fn closed_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

fn assert_no_secret(output: &str) {
    for secret in SECRETS {
        assert!(!output.contains(secret), "{secret} printed:\n{output}");
    }
}

/// Runs `serve` with both standard output and standard error captured, until it exits or
/// until standard error contains `wait_for` (then it is stopped); returns both, joined.
fn serve_until(
    dir: &Path,
    config: &str,
    args: &[&str],
    env: &[(&str, &str)],
    wait_for: &str,
) -> String {
    let file = dir.join("secrets.toml");
    std::fs::write(&file, config).unwrap();
    let stdout_path = dir.join("stdout.log");
    let stderr_path = dir.join("stderr.log");
    let mut child = Command::new(env!("CARGO_BIN_EXE_azi3-status-jobs"))
        .arg("serve")
        .arg("--config")
        .arg(&file)
        .args(args)
        .current_dir(dir)
        .envs(env.iter().copied())
        .env("AZI3_HTTP__PORT", "0")
        .env("AZI3_LOG", "trace")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&stdout_path).unwrap())
        .stderr(std::fs::File::create(&stderr_path).unwrap())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        if child.try_wait().unwrap().is_some() {
            break;
        }
        let stderr = std::fs::read_to_string(&stderr_path).unwrap_or_default();
        if stderr.contains(wait_for) {
            let _ = child.kill();
            let _ = child.wait();
            break;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{wait_for:?} never logged:\n{stderr}");
        }
        // Waiting on another process's output, not on service time.
        std::thread::sleep(Duration::from_millis(50));
    }
    let stdout = std::fs::read_to_string(&stdout_path).unwrap();
    let stderr = std::fs::read_to_string(&stderr_path).unwrap();
    assert!(stderr.contains(wait_for), "{wait_for:?} not in:\n{stderr}");
    format!("{stdout}{stderr}")
}

#[test]
fn a_database_that_cannot_be_reached_is_named_without_its_password() {
    let dir = tempfile::tempdir().unwrap();
    let port = closed_port();
    let config = format!(
        "[database]\nurl = \"mysql://admin:{}@127.0.0.1:{port}/tinybots\"\n\
         [service]\nalarm_webhook = \"http://hook:{}@127.0.0.1:{port}/alarm?key={}\"\n",
        SECRETS[0], SECRETS[2], SECRETS[3]
    );
    let output = serve_until(
        dir.path(),
        &config,
        &[],
        &secret_env(),
        &format!("database.url = \"mysql://admin:***@127.0.0.1:{port}/tinybots\""),
    );
    assert_no_secret(&output);
}

#[test]
fn a_failing_webhook_is_logged_without_its_credentials() {
    let dir = tempfile::tempdir().unwrap();
    let port = closed_port();
    // A one-minute gap from 08:00 at 600x: the first alarm is due within a second.
    let config = format!(
        "{}gap = \"1m\"\n[service]\ngrace_seconds = 0\n\
         alarm_webhook = \"http://hook:{}@127.0.0.1:{port}/alarm?key={}\"\n",
        RULE, SECRETS[2], SECRETS[3]
    );
    let output = serve_until(
        dir.path(),
        &config,
        &[
            "--clock-start",
            "2025-06-01T08:00:00Z",
            "--clock-speed",
            "600",
        ],
        &secret_env(),
        "alarm not sent yet",
    );
    assert!(
        output.contains(&format!("http://hook:***@127.0.0.1:{port}/alarm?key=***")),
        "{output}"
    );
    assert_no_secret(&output);
}

#[test]
fn a_failing_megazord_is_logged_without_its_credentials() {
    let dir = tempfile::tempdir().unwrap();
    let port = closed_port();
    let config = format!(
        "{RULE}[megazord]\nbase_url = \"http://mz:{}@127.0.0.1:{port}\"\nmax_attempts = 1\n\
         request_timeout_ms = 2000\n",
        SECRETS[4]
    );
    let output = serve_until(
        dir.path(),
        &config,
        &[
            "--clock-start",
            "2025-06-01T08:00:00Z",
            "--clock-speed",
            "1",
        ],
        &secret_env(),
        "megazord call failed",
    );
    assert!(
        output.contains(&format!("http://mz:***@127.0.0.1:{port}")),
        "the starting line names Megazord:\n{output}"
    );
    assert_no_secret(&output);
}

#[test]
fn a_queue_that_cannot_be_reached_is_named_without_its_credentials() {
    let dir = tempfile::tempdir().unwrap();
    let port = closed_port();
    let config = format!(
        "[queue]\nconsumer_queue_url = \"http://sqs:{}@127.0.0.1:{port}/000000000000/status?X-Amz-Security-Token={}\"\n\
         endpoint_url = \"http://127.0.0.1:{port}\"\nregion = \"eu-central-1\"\n",
        SECRETS[5], SECRETS[3]
    );
    let output = serve_until(
        dir.path(),
        &config,
        &[],
        &secret_env(),
        "status queue http://sqs:***@",
    );
    assert_no_secret(&output);
}

#[test]
fn a_missing_queue_refuses_the_start_before_anything_is_written() {
    let dir = tempfile::tempdir().unwrap();
    let endpoint = std::env::var("AZI3_TEST_SQS_ENDPOINT")
        .unwrap_or_else(|_| "http://127.0.0.1:4566".to_string());
    let config = format!(
        "{RULE}[queue]\nconsumer_queue_url = \"{endpoint}/000000000000/azi3-never-created-{}\"\n\
         endpoint_url = \"{endpoint}\"\nregion = \"us-east-1\"\n\
         [megazord]\nbase_url = \"http://127.0.0.1:{}\"\n",
        std::process::id(),
        closed_port()
    );
    let (code, stderr) = run_with_config(
        dir.path(),
        &config,
        &["serve"],
        &[
            ("AWS_ACCESS_KEY_ID", "test"),
            ("AWS_SECRET_ACCESS_KEY", "test"),
            ("AZI3_HTTP__PORT", "0"),
        ],
    );
    assert_ne!(code, Some(0), "{stderr}");
    assert!(stderr.contains("queue"), "{stderr}");
    assert!(
        !dir.path().join("azi3-status-jobs.db").exists(),
        "the database was written before the start was refused:\n{stderr}"
    );
}
