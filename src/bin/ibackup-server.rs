//! `ibackup-server`: see `ibackup-server --help`.

use std::path::PathBuf;

use clap::{Parser, Subcommand};
use ibackup::server;

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
        #[arg(long, env = "IBACKUP_DATA_DIR")]
        data_dir: PathBuf,
        #[command(subcommand)]
        command: AdminCommand,
    },
}

#[derive(Subcommand)]
enum AdminCommand {
    /// Accounts.
    User {
        #[command(subcommand)]
        command: UserCommand,
    },
}

#[derive(Subcommand)]
enum UserCommand {
    /// List accounts with plan, quota and usage.
    List,
    /// Override an account's storage quota (e.g. `10GiB`), or `plan` to follow its plan.
    SetQuota { email: String, size: String },
}

fn main() -> std::process::ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Serve(options) => tokio::runtime::Runtime::new()
            .map_err(anyhow::Error::from)
            .and_then(|rt| rt.block_on(server::serve(options))),
        Command::Admin { data_dir, command } => match command {
            AdminCommand::User {
                command: UserCommand::List,
            } => server::admin::user_list(&data_dir).map(|out| print!("{out}")),
            AdminCommand::User {
                command: UserCommand::SetQuota { email, size },
            } => server::admin::set_quota(&data_dir, &email, &size).map(|out| println!("{out}")),
        },
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("ibackup-server: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
