//! Administration sub-commands: `migrate`, `seed-template` and `rules list | set | disable`.
//! Each reads the configuration (`--config`, then `AZI3_` environment variables).

use std::io::Write;
use std::process::ExitCode;

use clap::{Args, Subcommand};

use super::ConfigArg;
use crate::config::{Config, ConfigError};
use crate::domain::{
    DEFAULT_ALARM_EVENT, DEFAULT_WATCHED_EVENT, Gap, PartialFinalWindow, RobotId, RuleInput,
};
use crate::redact::redact_url;
use crate::store::{Store, StoreError};

/// Arguments of `migrate`.
#[derive(Debug, Args)]
pub struct MigrateArgs {
    #[command(flatten)]
    config: ConfigArg,
    /// Also create the shared status_check* tables (always done on SQLite). Never on a
    /// production MySQL: there they belong to the typ-e migrations.
    #[arg(long)]
    bootstrap_shared_schema: bool,
    /// Print the SQL of the migrations that would run, and change nothing.
    #[arg(long)]
    dry_run: bool,
}

/// Arguments of `seed-template`.
#[derive(Debug, Args)]
pub struct SeedTemplateArgs {
    #[command(flatten)]
    config: ConfigArg,
}

/// Arguments of `rules`.
#[derive(Debug, Args)]
pub struct RulesArgs {
    #[command(flatten)]
    config: ConfigArg,
    #[command(subcommand)]
    command: RulesCommand,
}

#[derive(Debug, Subcommand)]
enum RulesCommand {
    /// Print every stored rule.
    List,
    /// Create or change the rule of a robot; a running session follows the change (a new end
    /// re-clamps it, a new gap applies from the next window).
    Set(SetRuleArgs),
    /// Disable the rule of a robot; its running session ends as DISABLED.
    Disable {
        /// The robot.
        #[arg(long)]
        robot_id: RobotId,
    },
}

#[derive(Debug, Args)]
struct SetRuleArgs {
    /// The robot.
    #[arg(long)]
    robot_id: RobotId,
    /// IANA time zone of the resident, e.g. Europe/Amsterdam.
    #[arg(long)]
    timezone: String,
    /// Daily local start, HH:MM or HH:MM:SS.
    #[arg(long)]
    start: String,
    /// Daily local end, HH:MM or HH:MM:SS (at or before the start: the session crosses midnight).
    #[arg(long)]
    end: String,
    /// Longest silence tolerated: 120m, 2h, 1h30m.
    #[arg(long, default_value_t = Gap::DEFAULT.to_string())]
    gap: String,
    /// What a window cut short by the end does: ignore or alarm.
    #[arg(long, default_value_t = PartialFinalWindow::Ignore.to_string())]
    partial_final_window: String,
    /// The watched event.
    #[arg(long, default_value = DEFAULT_WATCHED_EVENT)]
    event_name: String,
    /// The alarm event.
    #[arg(long, default_value = DEFAULT_ALARM_EVENT)]
    alarm_event: String,
}

/// Runs `migrate`.
pub fn migrate(args: MigrateArgs) -> ExitCode {
    run(&args.config, async |config, store| {
        let bootstrap = args.bootstrap_shared_schema || config.database.bootstrap_shared_schema;
        if args.dry_run {
            let pending = store.pending_migrations(bootstrap).await?;
            let mut text = String::new();
            if pending.is_empty() {
                text.push_str("-- nothing to migrate\n");
            }
            for m in pending {
                text.push_str(&format!(
                    "-- {}: migration {} ({})\n{}\n\n",
                    m.set.table(),
                    m.version,
                    m.description,
                    m.sql.trim_end()
                ));
            }
            // A reader that stops early (`| head`) is not an error.
            let _ = std::io::stdout().write_all(text.as_bytes());
        } else {
            store.migrate(bootstrap).await?;
            println!(
                "migrated{}",
                if bootstrap {
                    " (with the shared schema)"
                } else {
                    ""
                }
            );
        }
        Ok(())
    })
}

/// Runs `seed-template`.
pub fn seed_template(args: SeedTemplateArgs) -> ExitCode {
    run(&args.config, async |config, store| {
        store
            .migrate(config.database.bootstrap_shared_schema)
            .await?;
        let template = store.seed_template().await?;
        println!(
            "template TOILET_ACTIVITY_MONITORING version 1: id {}{}",
            template.id,
            if template.is_active {
                ""
            } else {
                " (inactive)"
            }
        );
        Ok(())
    })
}

/// Runs `rules …`.
pub fn rules(args: RulesArgs) -> ExitCode {
    let command = args.command;
    run(&args.config, async move |config, store| {
        // The service's own tables are always brought up to date first.
        store
            .migrate(config.database.bootstrap_shared_schema)
            .await?;
        // Rules are stamped in the service's time (a simulated clock's, when it runs one).
        let now = crate::startup::service_clock(store).await?.now();
        match command {
            RulesCommand::List => {
                println!(
                    "robot_id\ttimezone\tstart\tend\tgap\tpartial_final_window\twatched_event\talarm_event\tenabled\tversion\tupdated_at"
                );
                for r in store.rules().await? {
                    let rule = &r.rule;
                    println!(
                        "{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}",
                        rule.robot_id,
                        rule.timezone_name(),
                        rule.start,
                        rule.end,
                        rule.gap,
                        rule.partial_final_window,
                        rule.watched_event,
                        rule.alarm_event,
                        rule.enabled,
                        r.version,
                        r.updated_at
                    );
                }
            }
            RulesCommand::Set(a) => {
                let rule = RuleInput {
                    robot_id: a.robot_id,
                    timezone: a.timezone,
                    start: a.start,
                    end: a.end,
                    gap: a.gap,
                    watched_event: a.event_name,
                    alarm_event: a.alarm_event,
                    partial_final_window: a.partial_final_window,
                    enabled: true,
                }
                .validate()
                .map_err(|e| Failure::Usage(e.to_string()))?;
                if let Some(warning) = rule.never_alarms() {
                    eprintln!("warning: {warning}");
                }
                let change = store.set_rule(&rule, now).await?;
                if change.changed {
                    println!(
                        "robot {}: rule version {} saved; applied to {} running session(s)",
                        rule.robot_id,
                        change.version,
                        change.sessions.len()
                    );
                } else {
                    println!(
                        "robot {}: rule version {} unchanged",
                        rule.robot_id, change.version
                    );
                }
            }
            RulesCommand::Disable { robot_id } => match store.disable_rule(robot_id, now).await? {
                Some(change) => println!(
                    "robot {robot_id}: disabled (rule version {}); {} running session(s) ended as DISABLED",
                    change.version,
                    change.sessions.len()
                ),
                None => {
                    return Err(Failure::Usage(format!(
                        "robot_id = {robot_id}: no rule for this robot"
                    )));
                }
            },
        }
        Ok(())
    })
}

/// Why an admin command failed: a usage error (exit 2) or a database error (exit 1).
enum Failure {
    Usage(String),
    Store(StoreError),
}

impl From<StoreError> for Failure {
    fn from(e: StoreError) -> Self {
        Failure::Store(e)
    }
}

impl From<ConfigError> for Failure {
    fn from(e: ConfigError) -> Self {
        Failure::Usage(e.to_string())
    }
}

/// Loads the configuration, connects, runs `body` and turns its outcome into an exit code.
fn run(
    config: &ConfigArg,
    body: impl AsyncFnOnce(&Config, &Store) -> Result<(), Failure>,
) -> ExitCode {
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let outcome = runtime.block_on(async {
        let config = config.load()?;
        let url = &config.database.url;
        let store = Store::connect(url).await.map_err(|e| match e {
            StoreError::Invalid(msg) => Failure::Usage(msg),
            other => Failure::Usage(format!("database.url = {:?}: {other}", redact_url(url))),
        })?;
        let result = body(&config, &store).await;
        store.close().await;
        result
    });
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure::Usage(msg)) => {
            eprintln!("error: {msg}");
            ExitCode::from(2)
        }
        Err(Failure::Store(e)) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
