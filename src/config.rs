//! Service configuration: a TOML file plus `AZI3_` environment overrides (`__` separates
//! nesting levels, e.g. `AZI3_DATABASE__URL`). Every error names the key and the value.
//!
//! ```toml
//! [database]
//! url = "mysql://azi3:secret@db:3306/tinybots"
//! bootstrap_shared_schema = false
//!
//! [status_check]
//! step_id = 901
//! script_version_id = 77
//! scheduled_id = 0
//!
//! [[rules]]
//! robot_id = 7
//! timezone = "Europe/Amsterdam"
//! start = "08:00"
//! end = "20:00"
//! gap = "2h"
//! ```

use std::fmt;
use std::path::Path;

use figment::Figment;
use figment::error::Kind;
use figment::providers::{Env, Format, Serialized, Toml};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};

use jiff::Timestamp;

use crate::domain::{
    DEFAULT_ALARM_EVENT, DEFAULT_WATCHED_EVENT, Gap, PartialFinalWindow, RobotId, Rule, RuleInput,
};
use crate::megazord::MegazordSettings;
use crate::queue::SqsSettings;
use crate::redact::redact_url;

/// The database URL used when none is configured: a SQLite file in the working directory.
pub const DEFAULT_DATABASE_URL: &str = "sqlite://azi3-status-jobs.db?mode=rwc";
/// The config file read when none is named.
pub const DEFAULT_CONFIG_FILE: &str = "azi3-status-jobs.toml";
/// The prefix of environment overrides.
pub const ENV_PREFIX: &str = "AZI3_";
/// `AZI3_` variables that are not configuration keys: the log filter and the file's name.
const ENV_NOT_KEYS: [&str; 2] = ["LOG", "CONFIG"];
/// `AZI3_TEST_…` variables belong to the test suite (database and SQS endpoints), not to the
/// configuration.
const ENV_TEST_PREFIX: &str = "TEST_";
/// The shortest `http.token` accepted: a shorter one can be guessed.
pub const MIN_TOKEN_CHARS: usize = 16;
/// The fastest simulated clock: service seconds per real second.
pub const MAX_CLOCK_SPEED: f64 = 10_000.0;

/// The whole configuration. Every section refuses keys it does not know, so a misspelt key
/// stops the start instead of silently leaving its default in place.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// `[database]`.
    pub database: DatabaseConfig,
    /// `[status_check]`.
    pub status_check: StatusCheckConfig,
    /// `[[rules]]`: applied at start (created or updated; rules not listed are left alone).
    pub rules: Vec<RuleConfig>,
    /// `[http]`: where the HTTP interface listens.
    pub http: HttpConfig,
    /// `[service]`: how the live service behaves.
    pub service: ServiceConfig,
    /// `[clock]`: a simulated clock for demos and tests.
    pub clock: ClockConfig,
    /// `[megazord]`: the Megazord event service; absent in the embedded default. Its
    /// `base_url` also comes from `MEGAZORD_EVENTS_ADDRESS`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub megazord: Option<MegazordSettings>,
    /// `[queue]`: the SQS status queue; absent in the embedded default. Its
    /// `status_queue_address` also comes from `STATUS_QUEUE_ADDRESS`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub queue: Option<SqsSettings>,
}

/// `[http]`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HttpConfig {
    /// The IP address to listen on; anything but loopback needs `token`.
    pub host: String,
    /// The port (0 picks a free one).
    pub port: u16,
    /// The bearer token `/v1` and `/internal` require; none means no check. At least
    /// [`MIN_TOKEN_CHARS`] characters; never printed.
    #[serde(skip_serializing)]
    pub token: Option<SecretString>,
}

impl Default for HttpConfig {
    fn default() -> Self {
        HttpConfig {
            host: "127.0.0.1".to_string(),
            port: 8080,
            token: None,
        }
    }
}

/// `[service]`.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ServiceConfig {
    /// This instance's name in poller locks and in claims on due windows
    /// (`azi-3-status-jobs:<instance_id>`); by default the host name and process id.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub instance_id: Option<String>,
    /// Seconds after a deadline before its window is closed (semantics §6).
    pub grace_seconds: u32,
    /// Without Megazord: a URL that receives every alarm as JSON (besides the log). Its user
    /// info and query may hold credentials: printed only redacted.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub alarm_webhook: Option<String>,
    /// How many due windows are closed at once, each with its own history read.
    pub close_concurrency: usize,
    /// How many alarms are posted to Megazord at once, each claimed just before its post.
    pub dispatch_concurrency: usize,
    /// How many sessions are started and prepared at once (subscription and history replay).
    pub prepare_concurrency: usize,
    /// The most ingested events (HTTP or queue) applied in one transaction (group commit).
    pub ingest_batch_max: usize,
    /// Group commits of ingested events running side by side on MySQL, each on a connection
    /// of its own (SQLite has one writer, so one). One by default: the bench's ingest scenario
    /// measured 2,609 events/s with one (16 events per commit), 2,459 with two (8), 1,862–2,067
    /// with four (4), MariaDB being short of CPU for the statements of many small batches.
    pub ingest_committers: usize,
    /// Service seconds a session's windows may fail to close before it is ended as `FAILED`
    /// (when Megazord refused its robot for good, or other windows were closed meanwhile).
    pub failing_session_limit_seconds: u32,
    /// `/ready` answers 503 once a window is overdue by more than this many wall-clock seconds.
    pub ready_overdue_bound_seconds: u32,
    /// Days a dead letter is kept after it was last seen.
    pub dead_letter_max_age_days: u32,
    /// The most dead letters kept; beyond it the least recently seen are deleted.
    pub dead_letter_max_count: u64,
}

impl fmt::Debug for ServiceConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServiceConfig")
            .field("instance_id", &self.instance_id)
            .field("grace_seconds", &self.grace_seconds)
            .field(
                "alarm_webhook",
                &self.alarm_webhook.as_deref().map(redact_url),
            )
            .field("close_concurrency", &self.close_concurrency)
            .field("dispatch_concurrency", &self.dispatch_concurrency)
            .field("prepare_concurrency", &self.prepare_concurrency)
            .field("ingest_batch_max", &self.ingest_batch_max)
            .field("ingest_committers", &self.ingest_committers)
            .field(
                "failing_session_limit_seconds",
                &self.failing_session_limit_seconds,
            )
            .field(
                "ready_overdue_bound_seconds",
                &self.ready_overdue_bound_seconds,
            )
            .field("dead_letter_max_age_days", &self.dead_letter_max_age_days)
            .field("dead_letter_max_count", &self.dead_letter_max_count)
            .finish()
    }
}

impl Default for ServiceConfig {
    fn default() -> Self {
        ServiceConfig {
            instance_id: None,
            grace_seconds: 30,
            alarm_webhook: None,
            close_concurrency: 32,
            dispatch_concurrency: 64,
            prepare_concurrency: 32,
            ingest_batch_max: 256,
            ingest_committers: 1,
            failing_session_limit_seconds: 600,
            ready_overdue_bound_seconds: 300,
            dead_letter_max_age_days: 30,
            dead_letter_max_count: 100_000,
        }
    }
}

impl ServiceConfig {
    /// The configured instance id, or `<host name>-<process id>`.
    pub fn instance_id(&self) -> String {
        self.instance_id.clone().unwrap_or_else(|| {
            let host = std::fs::read_to_string("/etc/hostname")
                .ok()
                .map(|h| h.trim().to_string())
                .filter(|h| !h.is_empty())
                .unwrap_or_else(|| "localhost".to_string());
            format!("{host}-{}", std::process::id())
        })
    }
}

/// `[clock]`: run service time from `start` at `speed`× (both or neither).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ClockConfig {
    /// The simulated instant the service starts at; none means the system clock.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub start: Option<Timestamp>,
    /// Service seconds per wall-clock second, more than 0 and at most [`MAX_CLOCK_SPEED`].
    pub speed: f64,
}

impl Default for ClockConfig {
    fn default() -> Self {
        ClockConfig {
            start: None,
            speed: 1.0,
        }
    }
}

impl Eq for ClockConfig {}

/// `[database]`.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DatabaseConfig {
    /// `mysql://…`, `mariadb://…` or `sqlite://…`. Holds the database password: printed only
    /// redacted.
    pub url: String,
    /// Create the shared `status_check*` tables on MySQL (never on a production database,
    /// where they belong to `typ-e`). SQLite always has them created.
    pub bootstrap_shared_schema: bool,
    /// At most this many transaction connections to MySQL (SQLite has one writer).
    pub max_connections: u32,
}

impl fmt::Debug for DatabaseConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DatabaseConfig")
            .field("url", &redact_url(&self.url))
            .field("bootstrap_shared_schema", &self.bootstrap_shared_schema)
            .field("max_connections", &self.max_connections)
            .finish()
    }
}

impl Default for DatabaseConfig {
    fn default() -> Self {
        DatabaseConfig {
            url: DEFAULT_DATABASE_URL.to_string(),
            bootstrap_shared_schema: false,
            max_connections: crate::store::DEFAULT_MAX_CONNECTIONS,
        }
    }
}

/// `[status_check]`: the script columns every `status_check` row carries (contracts §4.7).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StatusCheckConfig {
    /// `script_step.id` of a placeholder step.
    pub step_id: u64,
    /// `script_version.id` of a placeholder script version.
    pub script_version_id: u64,
    /// `scheduled_id` (no foreign key; 0 is fine).
    pub scheduled_id: u64,
}

/// One `[[rules]]` entry; fields left out take the defaults of semantics §1.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleConfig {
    /// The robot.
    pub robot_id: RobotId,
    /// IANA zone name.
    pub timezone: String,
    /// `HH:MM` or `HH:MM:SS`.
    pub start: String,
    /// `HH:MM` or `HH:MM:SS`.
    pub end: String,
    /// `120m`, `2h`, …
    #[serde(default)]
    pub gap: Option<String>,
    /// `ignore` or `alarm`.
    #[serde(default)]
    pub partial_final_window: Option<String>,
    /// The watched event.
    #[serde(default)]
    pub watched_event: Option<String>,
    /// The alarm event.
    #[serde(default)]
    pub alarm_event: Option<String>,
    /// Defaults to true.
    #[serde(default)]
    pub enabled: Option<bool>,
}

impl RuleConfig {
    /// Validates the entry; the error names `rules[<index>].<field>` and the value.
    pub fn to_rule(&self, index: usize) -> Result<Rule, ConfigError> {
        RuleInput {
            robot_id: self.robot_id,
            timezone: self.timezone.clone(),
            start: self.start.clone(),
            end: self.end.clone(),
            gap: self.gap.clone().unwrap_or_else(|| Gap::DEFAULT.to_string()),
            watched_event: self
                .watched_event
                .clone()
                .unwrap_or_else(|| DEFAULT_WATCHED_EVENT.to_string()),
            alarm_event: self
                .alarm_event
                .clone()
                .unwrap_or_else(|| DEFAULT_ALARM_EVENT.to_string()),
            partial_final_window: self
                .partial_final_window
                .clone()
                .unwrap_or_else(|| PartialFinalWindow::Ignore.to_string()),
            enabled: self.enabled.unwrap_or(true),
        }
        .validate()
        .map_err(|e| ConfigError(format!("rules[{index}].{e}")))
    }
}

/// A configuration that cannot be used; the message names the key and the value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("configuration: {0}")]
pub struct ConfigError(pub String);

impl Config {
    /// Reads the file (`None`: the default file, which may be absent; a named file must exist
    /// and be a file), then the environment over it: `MEGAZORD_EVENTS_ADDRESS`,
    /// `STATUS_QUEUE_ADDRESS` and the `AZI3_` variables.
    pub fn load(file: Option<&Path>) -> Result<Config, ConfigError> {
        let path = match file {
            Some(path) => {
                if !path.exists() {
                    return Err(ConfigError(format!(
                        "--config {}: no such file",
                        path.display()
                    )));
                }
                path
            }
            None => Path::new(DEFAULT_CONFIG_FILE),
        };
        if path.exists() && !path.is_file() {
            return Err(ConfigError(format!(
                "--config {}: not a file",
                path.display()
            )));
        }
        let mut figment = Figment::from(Serialized::defaults(Config::default()));
        if path.exists() {
            // `file_exact`: a relative name means the working directory, not the first match
            // in a parent directory.
            figment = figment.merge(Toml::file_exact(path));
        }
        Self::from_figment(
            figment
                .merge(
                    Env::raw()
                        .only(&["MEGAZORD_EVENTS_ADDRESS"])
                        .map(|_| "megazord.base_url".into()),
                )
                .merge(
                    Env::raw()
                        .only(&["STATUS_QUEUE_ADDRESS"])
                        .map(|_| "queue.status_queue_address".into()),
                )
                .merge(config_env()),
        )
    }

    /// Reads a configuration from any figment (tests use it with in-memory sources).
    pub fn from_figment(figment: Figment) -> Result<Config, ConfigError> {
        let config: Config = figment.extract().map_err(|e| {
            let errors: Vec<String> = e.into_iter().map(describe_figment_error).collect();
            ConfigError(errors.join("; "))
        })?;
        config.check()?;
        Ok(config)
    }

    /// The rules of `[[rules]]`, validated; two entries for one robot are refused, since only
    /// one rule per robot exists and the later entry would silently replace the earlier.
    pub fn rules(&self) -> Result<Vec<Rule>, ConfigError> {
        let rules = self
            .rules
            .iter()
            .enumerate()
            .map(|(i, r)| r.to_rule(i))
            .collect::<Result<Vec<Rule>, ConfigError>>()?;
        for (later, rule) in rules.iter().enumerate() {
            if let Some(earlier) = rules[..later]
                .iter()
                .position(|r| r.robot_id == rule.robot_id)
            {
                return Err(ConfigError(format!(
                    "rules[{earlier}] and rules[{later}] are both for robot_id = {}: one rule per robot",
                    rule.robot_id
                )));
            }
        }
        Ok(rules)
    }

    /// The bearer token, when one is configured.
    pub fn http_token(&self) -> Option<&str> {
        self.http.token.as_ref().map(ExposeSecret::expose_secret)
    }

    fn check(&self) -> Result<(), ConfigError> {
        let url = &self.database.url;
        if !["mysql://", "mariadb://", "sqlite:"]
            .iter()
            .any(|p| url.starts_with(p))
        {
            return Err(ConfigError(format!(
                "database.url = {:?}: must start with mysql://, mariadb:// or sqlite:",
                redact_url(url)
            )));
        }
        self.rules()?;
        self.clock.check()?;
        self.service.check_sizes()?;
        if let Some(token) = self.http_token() {
            let chars = token.chars().count();
            if chars < MIN_TOKEN_CHARS {
                return Err(ConfigError(format!(
                    "http.token: {chars} characters, must be at least {MIN_TOKEN_CHARS} \
                     (or leave http.token out to check no token)"
                )));
            }
        }
        if let Some(webhook) = &self.service.alarm_webhook {
            check_webhook(webhook)?;
        }
        if let Some(megazord) = &self.megazord {
            megazord
                .validate()
                .map_err(|e| ConfigError(format!("megazord.{e}")))?;
        }
        if let Some(queue) = &self.queue {
            queue.validate().map_err(|e| ConfigError(e.to_string()))?;
        }
        Ok(())
    }
}

/// The most any of the service's concurrencies and batch sizes may be: far above what one
/// instance can use, and below where a semaphore of twice as many permits (the closer keeps
/// one of `2 × close_concurrency`) or a batch's statements would fail.
pub const MAX_SIZE: usize = 100_000;

impl ServiceConfig {
    /// Checks that every concurrency and batch size is from 1 to [`MAX_SIZE`]: 0 was taken as 1
    /// without a word, and a typo of a few digits too many would fail only once the work it
    /// sizes began. The error names the key and the value.
    pub fn check_sizes(&self) -> Result<(), ConfigError> {
        for (key, value) in [
            ("close_concurrency", self.close_concurrency),
            ("dispatch_concurrency", self.dispatch_concurrency),
            ("prepare_concurrency", self.prepare_concurrency),
            ("ingest_batch_max", self.ingest_batch_max),
            ("ingest_committers", self.ingest_committers),
        ] {
            if !(1..=MAX_SIZE).contains(&value) {
                return Err(ConfigError(format!(
                    "service.{key} = {value}: must be from 1 to {MAX_SIZE}"
                )));
            }
        }
        Ok(())
    }
}

impl ClockConfig {
    /// Checks that the speed is usable and is not given without a start (where it would do
    /// nothing); the error names `clock.speed` and the value.
    pub fn check(&self) -> Result<(), ConfigError> {
        if let Err(reason) = check_clock_speed(self.speed) {
            return Err(ConfigError(format!(
                "clock.speed = {:?}: {reason}",
                self.speed
            )));
        }
        if self.start.is_none() && self.speed != 1.0 {
            return Err(ConfigError(format!(
                "clock.speed = {:?}: needs clock.start (without a start the system clock runs)",
                self.speed
            )));
        }
        Ok(())
    }
}

/// Whether `speed` is a usable simulated clock speed: more than 0 and at most
/// [`MAX_CLOCK_SPEED`]; the error says what it must be.
pub fn check_clock_speed(speed: f64) -> Result<f64, String> {
    if speed.is_finite() && speed > 0.0 && speed <= MAX_CLOCK_SPEED {
        Ok(speed)
    } else {
        Err(format!("must be more than 0 and at most {MAX_CLOCK_SPEED}"))
    }
}

/// `service.alarm_webhook` must be an http(s) URL with a host.
fn check_webhook(webhook: &str) -> Result<(), ConfigError> {
    let refuse = |reason: &str| {
        Err(ConfigError(format!(
            "service.alarm_webhook = {:?}: {reason}",
            redact_url(webhook)
        )))
    };
    match url::Url::parse(webhook) {
        Ok(url) if matches!(url.scheme(), "http" | "https") && url.host().is_some() => Ok(()),
        Ok(_) => refuse("must be an http:// or https:// URL"),
        Err(e) => refuse(&format!("not a URL ({e})")),
    }
}

/// The `AZI3_` variables as configuration keys, `__` between nesting levels.
fn config_env() -> Env {
    Env::prefixed(ENV_PREFIX)
        .ignore(&ENV_NOT_KEYS)
        .filter(|key| {
            !key.as_str()
                .to_ascii_uppercase()
                .starts_with(ENV_TEST_PREFIX)
        })
        .split("__")
}

/// Keys whose value must never appear in a message.
const SECRET_KEYS: [&str; 1] = ["http.token"];

/// One extraction error as a message naming the key: an unknown key with the nearest known
/// one; a secret's error without its value.
fn describe_figment_error(error: figment::Error) -> String {
    let key = dotted_key(&error.path);
    match &error.kind {
        Kind::UnknownField(field, known) => unknown_key_message(&error.path, field, known),
        kind if SECRET_KEYS.contains(&key.as_str()) => {
            let expected = match kind {
                Kind::InvalidType(_, expected) | Kind::InvalidValue(_, expected) => {
                    expected.clone()
                }
                _ => "a string".to_string(),
            };
            format!("{key}: not a valid value, expected {expected}")
        }
        _ => error.to_string(),
    }
}

/// `rules.0.gap` as `rules[0].gap`.
fn dotted_key(path: &[String]) -> String {
    let mut key = String::new();
    for part in path {
        if part.parse::<usize>().is_ok() {
            key.push_str(&format!("[{part}]"));
        } else {
            if !key.is_empty() {
                key.push('.');
            }
            key.push_str(part);
        }
    }
    key
}

/// `unknown key rules[0].gapp; did you mean gap?`, naming the environment variable when the
/// key came from one.
fn unknown_key_message(path: &[String], field: &str, known: &[&str]) -> String {
    // figment's path ends with the field already; serde's own errors may not.
    let mut parts = path.to_vec();
    if parts.last().map(String::as_str) != Some(field) {
        parts.push(field.to_string());
    }
    let full_key = dotted_key(&parts);
    let variable = format!(
        "{ENV_PREFIX}{}",
        parts
            .iter()
            .map(|p| p.to_ascii_uppercase())
            .collect::<Vec<_>>()
            .join("__")
    );
    let origin = if std::env::var_os(&variable).is_some() {
        format!(" (environment variable {variable})")
    } else {
        String::new()
    };
    let nearest = known
        .iter()
        .map(|k| (strsim::normalized_damerau_levenshtein(field, k), *k))
        .filter(|(similarity, _)| *similarity >= 0.5)
        .max_by(|a, b| a.0.total_cmp(&b.0));
    match nearest {
        Some((_, k)) => format!("unknown key {full_key}{origin}; did you mean {k}?"),
        None => format!(
            "unknown key {full_key}{origin}; known keys here: {}",
            known.join(", ")
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn from_toml(text: &str) -> Result<Config, ConfigError> {
        Config::from_figment(
            Figment::from(Serialized::defaults(Config::default())).merge(Toml::string(text)),
        )
    }

    #[test]
    fn defaults_to_a_sqlite_file_in_the_working_directory() {
        let config = from_toml("").unwrap();
        assert_eq!(config.database.url, DEFAULT_DATABASE_URL);
        assert!(!config.database.bootstrap_shared_schema);
        assert!(config.rules.is_empty());
    }

    #[test]
    fn reads_rules_with_defaults() {
        let config = from_toml(
            "[[rules]]\nrobot_id = 7\ntimezone = \"Europe/Amsterdam\"\nstart = \"08:00\"\nend = \"20:00\"\n",
        )
        .unwrap();
        let rules = config.rules().unwrap();
        assert_eq!(rules[0].robot_id, RobotId::new(7));
        assert_eq!(rules[0].gap.minutes(), 120);
    }

    #[test]
    // figment's `Jail` fixes the closure's error type; its size is not ours to choose.
    #[allow(clippy::result_large_err)]
    fn environment_overrides_the_file_with_double_underscores_for_nesting() {
        figment::Jail::expect_with(|jail| {
            jail.create_file(
                DEFAULT_CONFIG_FILE,
                "[database]\nurl = \"sqlite://file.db\"\n[status_check]\nstep_id = 5\n",
            )?;
            jail.set_env("AZI3_DATABASE__URL", "mysql://u:p@db:3306/tinybots");
            jail.set_env("AZI3_STATUS_CHECK__SCRIPT_VERSION_ID", "77");
            let config = Config::load(None).unwrap();
            assert_eq!(config.database.url, "mysql://u:p@db:3306/tinybots");
            assert_eq!(
                (
                    config.status_check.step_id,
                    config.status_check.script_version_id
                ),
                (5, 77)
            );
            jail.set_env("AZI3_STATUS_CHECK__STEP_ID", "five");
            let err = Config::load(None).unwrap_err();
            let msg = err.0.to_lowercase();
            assert!(
                msg.contains("status_check.step_id") && msg.contains("five"),
                "{err}"
            );
            Ok(())
        });
    }

    #[test]
    fn errors_name_the_key_and_the_value() {
        let err = from_toml(
            "[[rules]]\nrobot_id = 7\ntimezone = \"Europe/Amsterdam\"\nstart = \"08:00\"\nend = \"20:00\"\ngap = \"30s\"\n",
        )
        .unwrap_err();
        assert!(err.0.contains("rules[0].gap = \"30s\""), "{err}");
        let err = from_toml("[status_check]\nstep_id = \"abc\"\n").unwrap_err();
        assert!(
            err.0.contains("status_check.step_id") && err.0.contains("abc"),
            "{err}"
        );
        let err = from_toml("[database]\nurl = \"postgres://x\"\n").unwrap_err();
        assert!(err.0.contains("database.url = \"postgres://x\""), "{err}");
    }

    const RULE: &str =
        "[[rules]]\nrobot_id = 7\ntimezone = \"UTC\"\nstart = \"08:00\"\nend = \"20:00\"\n";

    #[test]
    fn concurrencies_and_batch_sizes_outside_one_to_the_maximum_are_refused_naming_the_key() {
        for (text, expected) in [
            (
                "[service]\nclose_concurrency = 0\n",
                "service.close_concurrency = 0: must be from 1 to 100000",
            ),
            (
                "[service]\ndispatch_concurrency = 6400000000\n",
                "service.dispatch_concurrency = 6400000000: must be from 1 to 100000",
            ),
            (
                "[service]\ningest_committers = 0\n",
                "service.ingest_committers = 0: must be from 1 to 100000",
            ),
        ] {
            let err = from_toml(text).unwrap_err();
            assert!(err.0.contains(expected), "{text:?}: {err}");
        }
        let config =
            from_toml("[service]\nclose_concurrency = 100000\ningest_batch_max = 1\n").unwrap();
        assert_eq!(config.service.close_concurrency, MAX_SIZE);
    }

    #[test]
    fn an_unknown_key_anywhere_is_named_with_the_nearest_known_key() {
        let cases = [
            (
                format!("{RULE}gapp = \"5m\"\n"),
                "unknown key rules[0].gapp; did you mean gap?",
            ),
            (
                "[htpp]\nport = 1\n".to_string(),
                "unknown key htpp; did you mean http?",
            ),
            (
                "foo = 1\n".to_string(),
                "unknown key foo; known keys here: database,",
            ),
            (
                "[megazord]\nmax_attemps = 3\n".to_string(),
                "unknown key megazord.max_attemps; did you mean max_attempts?",
            ),
            (
                "[queue]\nendpoint = \"http://x\"\n".to_string(),
                "unknown key queue.endpoint; did you mean endpoint_url?",
            ),
            (
                "[database]\nurll = \"sqlite://x\"\n".to_string(),
                "unknown key database.urll; did you mean url?",
            ),
            (
                "[status_check]\nstep = 1\n".to_string(),
                "unknown key status_check.step; did you mean step_id?",
            ),
            (
                "[clock]\nsped = 2\n".to_string(),
                "unknown key clock.sped; did you mean speed?",
            ),
            (
                "[service]\ngrace = 2\n".to_string(),
                "unknown key service.grace",
            ),
        ];
        for (text, expected) in cases {
            let err = from_toml(&text).unwrap_err();
            assert!(err.0.contains(expected), "{text}: {err}");
        }
    }

    #[test]
    // figment's `Jail` fixes the closure's error type; its size is not ours to choose.
    #[allow(clippy::result_large_err)]
    fn an_unknown_environment_key_names_the_variable_and_the_service_s_own_variables_pass() {
        figment::Jail::expect_with(|jail| {
            jail.set_env("AZI3_LOG", "debug");
            jail.set_env("AZI3_CONFIG", DEFAULT_CONFIG_FILE);
            jail.set_env("AZI3_TEST_MYSQL_URL", "mysql://u:p@db:3306");
            jail.set_env("MEGAZORD_EVENTS_ADDRESS", "http://megazord:8080");
            jail.set_env("STATUS_QUEUE_ADDRESS", "http://sqs:4566/1/status");
            jail.set_env("AZI3_HTTP__PORT", "9000");
            let config = Config::load(None).unwrap();
            assert_eq!(config.http.port, 9000);
            assert_eq!(config.megazord.unwrap().base_url, "http://megazord:8080");
            jail.set_env("AZI3_HTTP__PROT", "9000");
            let err = Config::load(None).unwrap_err();
            assert!(
                err.0.contains(
                    "unknown key http.prot (environment variable AZI3_HTTP__PROT); did you mean port?"
                ),
                "{err}"
            );
            Ok(())
        });
    }

    #[test]
    // figment's `Jail` fixes the closure's error type; its size is not ours to choose.
    #[allow(clippy::result_large_err)]
    fn a_named_file_must_exist_and_be_a_file_and_only_the_default_may_be_absent() {
        figment::Jail::expect_with(|jail| {
            Config::load(None).unwrap();
            let err = Config::load(Some(Path::new("missing.toml"))).unwrap_err();
            assert_eq!(err.0, "--config missing.toml: no such file");
            let err = Config::load(Some(jail.directory())).unwrap_err();
            assert!(err.0.ends_with(": not a file"), "{err}");
            std::fs::create_dir(jail.directory().join(DEFAULT_CONFIG_FILE)).unwrap();
            let err = Config::load(None).unwrap_err();
            assert!(err.0.ends_with(": not a file"), "{err}");
            Ok(())
        });
    }

    #[test]
    fn two_rules_for_one_robot_are_refused_naming_both() {
        let text = format!("{RULE}{}{RULE}", RULE.replace("= 7", "= 8"));
        let err = from_toml(&text).unwrap_err();
        assert_eq!(
            err.0,
            "rules[0] and rules[2] are both for robot_id = 7: one rule per robot"
        );
    }

    #[test]
    fn a_short_token_is_refused_without_printing_it() {
        let err = from_toml("[http]\ntoken = \"tiny-secret\"\n").unwrap_err();
        assert_eq!(
            err.0,
            "http.token: 11 characters, must be at least 16 (or leave http.token out to check no token)"
        );
        let err = from_toml("[http]\ntoken = \"\"\n").unwrap_err();
        assert!(err.0.starts_with("http.token: 0 characters"), "{err}");
        let err = from_toml("[http]\ntoken = 12345678901234567\n").unwrap_err();
        assert!(!err.0.contains("12345678901234567"), "{err}");
        let config = from_toml("[http]\ntoken = \"a-token-of-16-chars\"\n").unwrap();
        assert_eq!(config.http_token(), Some("a-token-of-16-chars"));
    }

    #[test]
    fn the_alarm_webhook_must_be_an_http_url() {
        for webhook in ["ftp://hooks.example/a", "hooks.example/a", "http://"] {
            let text = format!("[service]\nalarm_webhook = {webhook:?}\n");
            let err = from_toml(&text).unwrap_err();
            assert!(err.0.starts_with("service.alarm_webhook = "), "{err}");
        }
        let err = from_toml("[service]\nalarm_webhook = \"ftp://u:hunter2@x/?k=v\"\n").unwrap_err();
        assert!(!err.0.contains("hunter2"), "{err}");
        from_toml("[service]\nalarm_webhook = \"https://u:p@hooks.example/a?key=v\"\n").unwrap();
    }

    #[test]
    fn the_clock_speed_is_bounded_and_needs_a_start() {
        let start = "start = \"2025-01-01T00:00:00Z\"\n";
        for speed in ["0", "-1", "1e300", "10000.5", "nan"] {
            let err = from_toml(&format!("[clock]\n{start}speed = {speed}\n")).unwrap_err();
            assert!(err.0.starts_with("clock.speed = "), "{speed}: {err}");
            assert!(
                err.0.ends_with("must be more than 0 and at most 10000"),
                "{err}"
            );
        }
        from_toml(&format!("[clock]\n{start}speed = 10000\n")).unwrap();
        let err = from_toml("[clock]\nspeed = 10\n").unwrap_err();
        assert_eq!(
            err.0,
            "clock.speed = 10.0: needs clock.start (without a start the system clock runs)"
        );
    }

    #[test]
    fn debug_output_shows_no_secret() {
        let config = from_toml(
            "[database]\nurl = \"mysql://admin:TopSecretPw123@db:3306/x\"\n\
             [http]\ntoken = \"bearer-token-0123456789\"\n\
             [service]\nalarm_webhook = \"https://u:hookpw@hooks.example/a?key=querysecret\"\n\
             [megazord]\nbase_url = \"http://mz:mzpw@megazord:8080\"\n\
             [queue]\nconsumer_queue_url = \"https://sqs.example/1/q?X-Amz-Signature=sqssig\"\n",
        )
        .unwrap();
        let text = format!("{config:?}");
        for secret in [
            "TopSecretPw123",
            "bearer-token-0123456789",
            "hookpw",
            "querysecret",
            "mzpw",
            "sqssig",
        ] {
            assert!(!text.contains(secret), "{secret} in {text}");
        }
        assert!(text.contains("mysql://admin:***@db:3306/x"), "{text}");
    }
}
