//! `azi3-status-jobs serve`: the live service.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;
use jiff::Timestamp;

use crate::config::{Config, DEFAULT_CONFIG_FILE};
use crate::telemetry;

const AFTER_HELP: &str = "\
With no configuration file the service runs on its embedded default: the SQLite file
azi3-status-jobs.db in the working directory, HTTP on 127.0.0.1:8080, events through
POST /internal/v1/status-jobs/robots/{robotId}/events, alarms recorded and logged.

Examples:
  azi3-status-jobs serve
  azi3-status-jobs serve --config /etc/azi3-status-jobs.toml
  # a demo day at 60x speed, starting at 07:55 Amsterdam time
  azi3-status-jobs serve --clock-start 2025-03-30T05:55:00Z --clock-speed 60";

/// Arguments of `serve`.
#[derive(Debug, Args)]
#[command(after_long_help = AFTER_HELP)]
pub struct ServeArgs {
    /// The configuration file (TOML); a missing file means defaults plus environment.
    #[arg(long, env = "AZI3_CONFIG", default_value = DEFAULT_CONFIG_FILE)]
    config: PathBuf,

    /// Run service time from this instant (simulated clock); with --clock-speed. Example:
    /// `--clock-start 2025-03-30T05:55:00Z`
    #[arg(long, value_name = "RFC 3339")]
    clock_start: Option<Timestamp>,

    /// How many service seconds pass per real second (with --clock-start). Example: `--clock-speed 60`
    #[arg(long, value_name = "N")]
    clock_speed: Option<f64>,
}

/// Runs `serve` until SIGTERM/SIGINT.
pub fn run(args: ServeArgs) -> ExitCode {
    telemetry::init_logging();
    let mut config = match Config::load(&args.config) {
        Ok(config) => config,
        Err(e) => return fail(&e.to_string()),
    };
    if let Some(start) = args.clock_start {
        config.clock.start = Some(start);
    }
    if let Some(speed) = args.clock_speed {
        if !(speed.is_finite() && speed > 0.0) {
            return fail(&format!("--clock-speed {speed}: must be a positive number"));
        }
        config.clock.speed = speed;
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => return fail(&format!("cannot start the async runtime: {e}")),
    };
    match runtime.block_on(crate::startup::serve(config)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => fail(&e.to_string()),
    }
}

fn fail(message: &str) -> ExitCode {
    tracing::error!("{message}");
    eprintln!("error: {message}");
    ExitCode::from(2)
}
