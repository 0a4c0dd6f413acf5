//! The command line: clap definitions, dispatch, and how results are shown (a table or
//! sentence for people, one JSON document with `--json` for scripts).
//!
//! Exit codes: 0 success; 1 failure (nothing was changed that should not have been);
//! 3 a backup or restore finished but skipped or could not fully restore something, as
//! the warnings say (like restic).

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use serde::Serialize;

use crate::account::{RegisterOptions, DEFAULT_LIBRARY};
use crate::config::Paths;
use crate::restore::RestoreOptions;
use crate::session::Session;
use crate::Result;

mod account;
mod backup;
mod check;
mod helper;
mod login;
mod mount;
mod restore;
mod share;
mod snapshots;

#[derive(Parser)]
#[command(
    name = "ibackup",
    version,
    about = "Encrypted online backup: back up, restore, browse"
)]
pub struct Cli {
    /// Print results as JSON, for scripts.
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(clap::Args)]
struct ServerArgs {
    /// Server URL, e.g. https://backup.example.com:8443
    #[arg(long, env = "IBACKUP_SERVER")]
    server: String,
    /// Trust the server's certificate without asking, if it was never seen before.
    #[arg(long)]
    trust_new: bool,
    /// Read the password from the first line of standard input.
    #[arg(long)]
    password_stdin: bool,
}

#[derive(Subcommand)]
enum Command {
    /// Create an account (and its default library `Backups`) and log in.
    Register {
        #[command(flatten)]
        server: ServerArgs,
        #[arg(long)]
        email: String,
        #[arg(long)]
        first_name: String,
        #[arg(long)]
        last_name: String,
        /// Subscription plan (default: free).
        #[arg(long)]
        plan: Option<String>,
        /// Agree to receive marketing e-mail (off unless given).
        #[arg(long)]
        marketing_email: bool,
        /// For a paid plan: read the card from four lines of stdin (number, expiry MM/YY,
        /// security code, name) instead of being asked.
        #[arg(long)]
        card_stdin: bool,
    },
    /// Log in on this computer.
    Login {
        #[command(flatten)]
        server: ServerArgs,
        #[arg(long)]
        email: String,
    },
    /// End this computer's session and forget its keys.
    Logout,
    /// Back up files and directories as a new snapshot.
    Backup {
        #[arg(required = true)]
        paths: Vec<PathBuf>,
        #[arg(long, default_value = DEFAULT_LIBRARY)]
        library: String,
        /// Tag the snapshot (repeatable).
        #[arg(long = "tag")]
        tags: Vec<String>,
    },
    /// List a library's snapshots.
    Snapshots {
        #[arg(long, default_value = DEFAULT_LIBRARY)]
        library: String,
    },
    /// Restore a snapshot, or a path in it (SNAPSHOT:PATH), into a directory.
    Restore {
        /// `latest`, a snapshot id or unique prefix, optionally followed by `:PATH`.
        snapshot: String,
        #[arg(long)]
        target: PathBuf,
        #[arg(long, default_value = DEFAULT_LIBRARY)]
        library: String,
    },
    /// Mount your libraries and their snapshots as a folder (default ~/ibackup).
    Mount(crate::mount::MountOptions),
    /// Unmount, after uploading pending changes unless --no-wait.
    Umount {
        mountpoint: Option<PathBuf>,
        /// Unmount at once; pending changes stay queued for the next mount.
        #[arg(long)]
        no_wait: bool,
    },
    /// Mounts and their pending uploads.
    Status,
    /// Your account: profile, plan, card, consent, sessions, password, export, delete.
    Account {
        #[command(subcommand)]
        command: self::account::AccountCommand,
    },
    /// Tell us how satisfied you are (1 to 5), optionally with a message.
    Feedback {
        #[arg(long, value_parser = clap::value_parser!(u8).range(1..=5))]
        rating: u8,
        #[arg(long)]
        message: Option<String>,
    },
    /// Libraries you own or that were shared with you.
    Library {
        #[command(subcommand)]
        command: share::LibraryCommand,
    },
    /// Share libraries with other accounts, and see who has them.
    Share {
        #[command(subcommand)]
        command: share::ShareCommand,
    },
    /// Account keys of people you share with, pinned on this computer.
    Contact {
        #[command(subcommand)]
        command: share::ContactCommand,
    },
    /// Links to folders, for people without an account.
    Link {
        #[command(subcommand)]
        command: share::LinkCommand,
    },
    /// Forget snapshots (by id or prefix), or with none named those the library's policy
    /// no longer keeps; their space is freed at the server's next collection.
    Forget {
        snapshots: Vec<String>,
        #[arg(long, default_value = DEFAULT_LIBRARY)]
        library: String,
        /// Show what would be forgotten and why each snapshot stays; change nothing.
        #[arg(long)]
        dry_run: bool,
    },
    /// Check that every snapshot of a library can be restored (exit 1 if anything is
    /// damaged, naming the snapshots and files).
    Check {
        #[arg(long, default_value = DEFAULT_LIBRARY)]
        library: String,
        /// Also fetch and verify every chunk.
        #[arg(long, conflicts_with = "read_data_subset")]
        read_data: bool,
        /// Fetch and verify a random share of the chunks, e.g. 10%.
        #[arg(long, value_parser = parse_share)]
        read_data_subset: Option<f64>,
    },
    /// Download the folder a link shows (no account or login needed).
    Get {
        url: String,
        /// Where to write it (default: ./ibackup-link-ID).
        #[arg(long)]
        target: Option<PathBuf>,
        /// Read the link's password from the first line of standard input.
        #[arg(long)]
        password_stdin: bool,
    },
}

/// A share typed as `10%` or `0.1`.
fn parse_share(text: &str) -> std::result::Result<f64, String> {
    let value = match text.trim().strip_suffix('%') {
        Some(percent) => percent.trim().parse::<f64>().map(|p| p / 100.0),
        None => text.trim().parse::<f64>(),
    }
    .map_err(|_| format!("`{text}` is not a share; write e.g. 10%"))?;
    if (0.0..=1.0).contains(&value) && value > 0.0 {
        Ok(value)
    } else {
        Err(format!("`{text}` is not between 0% and 100%"))
    }
}

/// Parses the command line, runs it, and reports.
pub fn main() -> ExitCode {
    let args: Vec<std::ffi::OsString> = std::env::args_os().collect();
    if helper::is_helper(&args) {
        return helper::main(args);
    }
    let cli = Cli::parse_from(args);
    let json = cli.json;
    match run(cli) {
        Ok(code) => code,
        Err(error) => {
            if json {
                let body = serde_json::json!({ "error": error.to_string() });
                println!("{body}");
            }
            // An error may carry a server's words: its lines are kept, nothing else that
            // would steer the terminal.
            let text = error.to_string();
            let lines: Vec<_> = text.split('\n').map(shown).collect();
            eprintln!("ibackup: {}", lines.join("\n"));
            ExitCode::FAILURE
        }
    }
}

/// Each warning on standard error, as shown on a terminal.
fn print_warnings(warnings: &[String]) {
    for warning in warnings {
        eprintln!("warning: {}", shown(warning));
    }
}

/// `value` as one pretty JSON document on standard output (`--json`).
pub(super) fn print_json<T: Serialize>(value: &T) {
    println!(
        "{}",
        serde_json::to_string_pretty(value).expect("serialises")
    );
}

fn run(cli: Cli) -> Result<ExitCode> {
    let paths = Paths::from_env()?;
    let json = cli.json;
    let done = |result: Result<()>| result.map(|()| ExitCode::SUCCESS);
    match cli.command {
        Command::Register {
            server,
            email,
            first_name,
            last_name,
            plan,
            marketing_email,
            card_stdin,
        } => {
            let options = RegisterOptions {
                server: server.server,
                email,
                first_name,
                last_name,
                plan,
                marketing_email,
                trust_new: server.trust_new,
                password_stdin: server.password_stdin,
                card_stdin,
            };
            login::register(&paths, json, &options)
        }
        Command::Login { server, email } => login::login(&paths, json, &server, &email),
        Command::Logout => login::logout(&paths, json),
        Command::Backup {
            paths: sources,
            library,
            tags,
        } => backup::run(&paths, json, sources, library, tags),
        Command::Snapshots { library } => snapshots::list(&paths, json, &library),
        Command::Restore {
            snapshot,
            target,
            library,
        } => {
            let options = RestoreOptions {
                spec: snapshot,
                target,
                library,
            };
            restore::run(&paths, json, &options)
        }
        Command::Mount(options) if options.install_unit => {
            mount::install_unit(&paths, json, &options)
        }
        Command::Mount(options) => mount::mount(&paths, json, &options),
        Command::Umount {
            mountpoint,
            no_wait,
        } => mount::umount(&paths, json, mountpoint.as_deref(), no_wait),
        Command::Status => mount::status(&paths, json),
        Command::Account { command } => done(self::account::run(&paths, json, command)),
        Command::Feedback { rating, message } => {
            done(self::account::feedback(&paths, json, rating, message))
        }
        Command::Library { command } => {
            done(share::library(&Session::load(&paths)?, json, command))
        }
        Command::Share { command } => done(share::share(&Session::load(&paths)?, json, command)),
        Command::Contact { command } => {
            done(share::contact(&Session::load(&paths)?, json, command))
        }
        Command::Forget {
            snapshots,
            library,
            dry_run,
        } => snapshots::forget(&paths, json, &snapshots, &library, dry_run),
        Command::Check {
            library,
            read_data,
            read_data_subset,
        } => {
            let share = if read_data {
                Some(1.0)
            } else {
                read_data_subset
            };
            check::run(&paths, json, &library, share)
        }
        Command::Link { command } => done(share::link(&Session::load(&paths)?, json, command)),
        Command::Get {
            url,
            target,
            password_stdin,
        } => restore::get(json, &url, target, password_stdin),
    }
}

/// `text` with its control characters escaped (`\u{1b}`), for a terminal: names, hosts and
/// paths from other writers of a library, or from the server, must not move the cursor,
/// retitle the window or hide what follows (issue 26).
pub fn shown(text: &str) -> std::borrow::Cow<'_, str> {
    if !text.chars().any(char::is_control) {
        return std::borrow::Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        if c.is_control() {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    std::borrow::Cow::Owned(out)
}

#[cfg(test)]
mod shown_tests {
    #[test]
    fn control_characters_are_escaped_and_the_rest_kept() {
        assert_eq!(super::shown("plain ✓"), "plain ✓");
        assert_eq!(
            super::shown("a\u{1b}]0;x\u{7}b\nc"),
            "a\\u{1b}]0;x\\u{7}b\\nc"
        );
    }
}
