//! The command line: one sub-command per job the binary does.

mod admin;
mod replay;
mod serve;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

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
