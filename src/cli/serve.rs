//! `azi3-status-jobs serve`: the live service.

use std::process::ExitCode;

use clap::Args;
use jiff::Timestamp;

use super::ConfigArg;
use crate::config::check_clock_speed;
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
    #[command(flatten)]
    config: ConfigArg,

    /// Run service time from this instant (simulated clock); with --clock-speed. Example:
    /// `--clock-start 2025-03-30T05:55:00Z`
    #[arg(long, value_name = "RFC 3339")]
    clock_start: Option<Timestamp>,

    /// How many service seconds pass per real second, more than 0 and at most 10000 (needs
    /// --clock-start). Example: `--clock-speed 60`
    #[arg(long, value_name = "N", requires = "clock_start", value_parser = clock_speed)]
    clock_speed: Option<f64>,
}

fn clock_speed(text: &str) -> Result<f64, String> {
    let speed: f64 = text.parse().map_err(|e| format!("not a number ({e})"))?;
    check_clock_speed(speed)
}

/// Runs `serve` until SIGTERM/SIGINT.
pub fn run(args: ServeArgs) -> ExitCode {
    if let Err(e) = telemetry::init_logging() {
        // No subscriber is installed: standard error is the only place to say it.
        eprintln!("error: {e}");
        return ExitCode::from(2);
    }
    let mut config = match args.config.load() {
        Ok(config) => config,
        Err(e) => return fail(&e.to_string()),
    };
    if let Some(start) = args.clock_start {
        config.clock.start = Some(start);
    }
    if let Some(speed) = args.clock_speed {
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
