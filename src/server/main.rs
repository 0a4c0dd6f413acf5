//! `ibackup-server`: see `ibackup-server --help`.

use std::path::PathBuf;

use clap::{Parser, Subcommand};
use ibackup_server as server;

#[derive(Parser)]
#[command(name = "ibackup-server", version, about = "The ibackup storage server")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the API (HTTPS with a self-signed certificate made on first start).
    Serve(server::ServeOptions),
    /// Operator commands on a data directory.
    Admin {
        #[command(flatten)]
        data: server::DataDirOptions,
        #[command(subcommand)]
        command: AdminCommand,
    },
    /// Send a message to every account that agreed to marketing e-mail.
    Announce {
        #[command(flatten)]
        data: server::DataDirOptions,
        #[arg(long)]
        subject: String,
        /// A text file holding the message.
        #[arg(long)]
        body_file: PathBuf,
    },
    /// Surveys: answered voluntarily, reported only in aggregate.
    Survey {
        #[command(flatten)]
        data: server::DataDirOptions,
        #[command(subcommand)]
        command: SurveyCommand,
    },
    /// Apply retention policies and collect what no kept snapshot needs, now.
    Gc {
        #[command(flatten)]
        data: server::DataDirOptions,
        /// Show what would go; change nothing.
        #[arg(long)]
        dry_run: bool,
        /// Only this library (its id).
        #[arg(long)]
        library: Option<String>,
        /// Spare data written or reused this recently (default: `maintenance.gc_grace` of
        /// server.toml). `0s` only when no upload can be running.
        #[arg(long, value_parser = humantime::parse_duration)]
        grace: Option<std::time::Duration>,
    },
    /// Check every stored blob against the checksum recorded at upload; damaged ones are
    /// marked so the next upload of the same content heals them (exit 1 if any).
    Verify {
        #[command(flatten)]
        data: server::DataDirOptions,
        /// Only this library (its id).
        #[arg(long)]
        library: Option<String>,
    },
    /// Satisfaction feedback users sent with `ibackup feedback`.
    Feedback {
        #[command(flatten)]
        data: server::DataDirOptions,
        #[command(subcommand)]
        command: FeedbackCommand,
    },
}

#[derive(Subcommand)]
enum AdminCommand {
    /// Accounts.
    User {
        #[command(subcommand)]
        command: UserCommand,
    },
    /// Run maintenance now: purge old records, renew, end canceled accounts, collect.
    Maintenance,
    /// Stored bytes per account.
    Usage,
}

#[derive(Subcommand)]
enum UserCommand {
    /// List accounts with plan, status, quota and usage.
    List,
    /// Override an account's storage quota (e.g. `10GiB`), or `plan` to follow its plan.
    SetQuota { email: String, size: String },
}

#[derive(Subcommand)]
enum SurveyCommand {
    /// Create a survey from a TOML file: `title`, then `[[questions]]` with `text`, `choices`.
    Create { file: PathBuf },
    /// List surveys with their number of respondents.
    List,
    /// Show a survey's counts, hiding any below the configured minimum.
    Report { id: String },
}

#[derive(Subcommand)]
enum FeedbackCommand {
    /// List ratings and messages.
    List,
}

fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Serve(options) => {
            tokio::runtime::Runtime::new()?.block_on(server::serve(options))?;
        }
        Command::Admin { data, command } => match command {
            AdminCommand::User {
                command: UserCommand::List,
            } => print!("{}", server::admin::user_list(&data)?),
            AdminCommand::User {
                command: UserCommand::SetQuota { email, size },
            } => println!("{}", server::admin::set_quota(&data, &email, &size)?),
            AdminCommand::Usage => print!("{}", server::admin::usage(&data)?),
            AdminCommand::Maintenance => {
                let report = server::admin::maintenance(&data)?;
                println!("{}", serde_json::to_string_pretty(&report)?);
            }
        },
        Command::Announce {
            data,
            subject,
            body_file,
        } => {
            let sent = server::admin::announce(&data, &subject, &body_file)?;
            println!("sent to {sent} accounts that agreed to marketing e-mail");
        }
        Command::Survey { data, command } => match command {
            SurveyCommand::Create { file } => {
                let id = server::admin::survey_create(&data, &file)?;
                println!("survey {id} created; users answer it with `ibackup account survey {id}`");
            }
            SurveyCommand::List => print!("{}", server::admin::survey_list(&data)?),
            SurveyCommand::Report { id } => {
                print!("{}", server::admin::survey_report(&data, &id)?)
            }
        },
        Command::Feedback {
            data,
            command: FeedbackCommand::List,
        } => print!("{}", server::admin::feedback_list(&data)?),
        Command::Verify { data, library } => {
            let found = server::open_data_dir(&data)?;
            let report = server::verify::verify(&found.db, &*found.blobs, library.as_deref())?;
            println!("{}", serde_json::to_string_pretty(&report)?);
            if !report.damaged.is_empty() {
                anyhow::bail!(
                    "{} damaged objects; the next upload of the same content heals each",
                    report.damaged.len()
                );
            }
        }
        Command::Gc {
            data,
            dry_run,
            library,
            grace,
        } => {
            let config = server::config::ServerConfig::load_or_create(&data.data_dir)?;
            let mut options = server::gc::GcOptions::new(grace.unwrap_or(config.gc_grace));
            options.dry_run = dry_run;
            options.library = library;
            let report = server::admin::gc(&data, &options)?;
            println!("{}", serde_json::to_string_pretty(&report)?);
        }
    }
    Ok(())
}

fn main() -> std::process::ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    match run(Cli::parse()) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("ibackup-server: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
