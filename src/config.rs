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

use std::path::Path;

use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml};
use serde::{Deserialize, Serialize};

use jiff::Timestamp;

use crate::domain::{
    DEFAULT_ALARM_EVENT, DEFAULT_WATCHED_EVENT, Gap, PartialFinalWindow, RobotId, Rule, RuleInput,
};
use crate::megazord::MegazordSettings;
use crate::queue::SqsSettings;

/// The database URL used when none is configured: a SQLite file in the working directory.
pub const DEFAULT_DATABASE_URL: &str = "sqlite://azi3-status-jobs.db?mode=rwc";
/// The config file read when none is named.
pub const DEFAULT_CONFIG_FILE: &str = "azi3-status-jobs.toml";
/// The prefix of environment overrides.
pub const ENV_PREFIX: &str = "AZI3_";

/// The whole configuration.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default)]
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
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct HttpConfig {
    /// The IP address to listen on; anything but loopback needs `token`.
    pub host: String,
    /// The port (0 picks a free one).
    pub port: u16,
    /// The bearer token `/v1` and `/internal` require; none means no check.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub token: Option<String>,
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
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct ServiceConfig {
    /// This instance's name in poller locks (`azi-3-status-jobs:<instance_id>`); by default
    /// the host name and process id.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub instance_id: Option<String>,
    /// Seconds after a deadline before its window is closed (spec §6).
    pub grace_seconds: u32,
    /// Without Megazord: a URL that receives every alarm as JSON (besides the log).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub alarm_webhook: Option<String>,
    /// Days a dead letter is kept after it was last seen.
    pub dead_letter_max_age_days: u32,
    /// The most dead letters kept; beyond it the least recently seen are deleted.
    pub dead_letter_max_count: u64,
}

impl Default for ServiceConfig {
    fn default() -> Self {
        ServiceConfig {
            instance_id: None,
            grace_seconds: 30,
            alarm_webhook: None,
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
#[serde(default)]
pub struct ClockConfig {
    /// The simulated instant the service starts at; none means the system clock.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub start: Option<Timestamp>,
    /// Service seconds per wall-clock second.
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
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct DatabaseConfig {
    /// `mysql://…`, `mariadb://…` or `sqlite://…`.
    pub url: String,
    /// Create the shared `status_check*` tables on MySQL (never on a production database,
    /// where they belong to `typ-e`). SQLite always has them created.
    pub bootstrap_shared_schema: bool,
}

impl Default for DatabaseConfig {
    fn default() -> Self {
        DatabaseConfig {
            url: DEFAULT_DATABASE_URL.to_string(),
            bootstrap_shared_schema: false,
        }
    }
}

/// `[status_check]`: the script columns every `status_check` row carries (contracts §4.7).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct StatusCheckConfig {
    /// `script_step.id` of a placeholder step.
    pub step_id: u64,
    /// `script_version.id` of a placeholder script version.
    pub script_version_id: u64,
    /// `scheduled_id` (no foreign key; 0 is fine).
    pub scheduled_id: u64,
}

/// One `[[rules]]` entry; fields left out take the spec's defaults.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
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
    /// Reads `file` (when it exists) and then the `AZI3_` environment over it.
    pub fn load(file: &Path) -> Result<Config, ConfigError> {
        Self::from_figment(
            Figment::from(Serialized::defaults(Config::default()))
                .merge(Toml::file(file))
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
                .merge(Env::prefixed(ENV_PREFIX).split("__")),
        )
    }

    /// Reads a configuration from any figment (tests use it with in-memory sources).
    pub fn from_figment(figment: Figment) -> Result<Config, ConfigError> {
        let config: Config = figment.extract().map_err(|e| {
            let errors: Vec<String> = e.into_iter().map(|e| e.to_string()).collect();
            ConfigError(errors.join("; "))
        })?;
        config.check()?;
        Ok(config)
    }

    /// The rules of `[[rules]]`, validated.
    pub fn rules(&self) -> Result<Vec<Rule>, ConfigError> {
        self.rules
            .iter()
            .enumerate()
            .map(|(i, r)| r.to_rule(i))
            .collect()
    }

    fn check(&self) -> Result<(), ConfigError> {
        let url = &self.database.url;
        if !["mysql://", "mariadb://", "sqlite:"]
            .iter()
            .any(|p| url.starts_with(p))
        {
            return Err(ConfigError(format!(
                "database.url = {url:?}: must start with mysql://, mariadb:// or sqlite:"
            )));
        }
        self.rules()?;
        if !(self.clock.speed.is_finite() && self.clock.speed > 0.0) {
            return Err(ConfigError(format!(
                "clock.speed = {}: must be a positive number",
                self.clock.speed
            )));
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
        assert_eq!(rules[0].robot_id, 7);
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
            let config = Config::load(Path::new(DEFAULT_CONFIG_FILE)).unwrap();
            assert_eq!(config.database.url, "mysql://u:p@db:3306/tinybots");
            assert_eq!(
                (
                    config.status_check.step_id,
                    config.status_check.script_version_id
                ),
                (5, 77)
            );
            jail.set_env("AZI3_STATUS_CHECK__STEP_ID", "five");
            let err = Config::load(Path::new(DEFAULT_CONFIG_FILE)).unwrap_err();
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
}
