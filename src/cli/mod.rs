//! The command line: one sub-command per job the binary does.

mod admin;
mod replay;
mod serve;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};

use crate::config::{Config, ConfigError};

/// Watches care-robot residents for missing toilet activity and raises
/// NO_TOILET_ACTIVITY_ALARM exactly once per missed window.
#[derive(Debug, Parser)]
#[command(name = "azi3-status-jobs", version, about, long_about = None)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the live service (embedded default without a configuration file).
    Serve(serve::ServeArgs),
    /// Evaluate one rule over a file of historical events and report the alarms it would raise.
    Replay(replay::ReplayArgs),
    /// Create or update the database tables (--dry-run prints the SQL).
    Migrate(admin::MigrateArgs),
    /// Create or update the TOILET_ACTIVITY_MONITORING status-check template.
    SeedTemplate(admin::SeedTemplateArgs),
    /// List, set or disable the monitoring rules stored in the database.
    Rules(admin::RulesArgs),
}

/// The configuration file option of every command that reads the configuration. Global, so
/// that a command with sub-commands takes it after them too (`rules list --config X`).
#[derive(Debug, Args)]
pub(crate) struct ConfigArg {
    /// The configuration file (TOML). Default: azi3-status-jobs.toml in the working directory,
    /// which may be absent (defaults plus environment); a file named here must exist.
    #[arg(long, env = "AZI3_CONFIG", global = true, value_name = "FILE")]
    config: Option<PathBuf>,
}

impl ConfigArg {
    /// Reads the named (or default) file and the environment.
    pub(crate) fn load(&self) -> Result<Config, ConfigError> {
        Config::load(self.config.as_deref())
    }
}

/// Parses the command line and runs the chosen sub-command; the exit code says how it went.
pub fn run() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Serve(args) => serve::run(args),
        Command::Replay(args) => replay::run(args),
        Command::Migrate(args) => admin::migrate(args),
        Command::SeedTemplate(args) => admin::seed_template(args),
        Command::Rules(args) => admin::rules(args),
    }
}
