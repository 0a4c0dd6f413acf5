//! The command line: clap definitions, dispatch, and how results are shown (a table or
//! sentence for people, one JSON document with `--json` for scripts).
//!
//! Exit codes: 0 success; 1 failure (nothing was changed that should not have been);
//! 3 a backup or restore finished but skipped or could not fully restore something, as
//! the warnings say (like restic).

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use serde::Serialize;

use crate::account::{self as accounts, RegisterOptions, DEFAULT_LIBRARY};
use crate::backup::{self, BackupOptions};
use crate::config::Paths;
use crate::restore::{self, RestoreOptions};
use crate::session::Session;
use crate::store::Store;
use crate::{snapshots, ClientError, Result};

mod account;
mod helper;
mod share;
use crate::units::{count, format_size};

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

fn print_json<T: Serialize>(value: &T) {
    println!(
        "{}",
        serde_json::to_string_pretty(value).expect("serialises")
    );
}

fn run(cli: Cli) -> Result<ExitCode> {
    let paths = Paths::from_env()?;
    let json = cli.json;
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
            let registered = accounts::register(&paths, &options)?;
            if json {
                print_json(&serde_json::json!({
                    "account": registered.account,
                    "recovery_key": registered.recovery_key,
                    "plan_problem": registered.plan_problem,
                }));
            } else {
                println!(
                    "Account {} created and logged in; library `{DEFAULT_LIBRARY}` is ready.\n\n\
                     Your recovery key (shown only this once; keep it somewhere safe):\n\n    {}\n\n\
                     It lets you set a new password without losing your data if you forget \
                     yours. ibackup cannot read your files, so without the password or this \
                     key nobody can recover them.\n\nA link to confirm your address was mailed to \
                     {}; news and offers, if you chose them, wait for it.",
                    registered.account.email, registered.recovery_key, registered.account.email
                );
            }
            if let Some(problem) = &registered.plan_problem {
                eprintln!(
                    "ibackup: the account is on the free plan for now: {problem}. Run `ibackup \
                     account card add`, then `ibackup account plan NAME`."
                );
                return Ok(ExitCode::from(3));
            }
        }
        Command::Login { server, email } => {
            let account = accounts::login(
                &paths,
                &server.server,
                &email,
                server.trust_new,
                server.password_stdin,
            )?;
            if json {
                print_json(&account);
            } else {
                println!(
                    "Logged in as {} ({} plan, {} of {} used).",
                    account.email,
                    account.plan,
                    format_size(account.used_bytes),
                    format_size(account.quota_bytes)
                );
            }
        }
        Command::Logout => {
            let confirmed = accounts::logout(&paths)?;
            if json {
                print_json(
                    &serde_json::json!({ "logged_out": true, "server_confirmed": confirmed }),
                );
            } else if confirmed {
                println!("Logged out.");
            } else {
                println!(
                    "Logged out here; the server could not be reached, so the session stays \
                     valid there until it expires."
                );
            }
        }
        Command::Backup {
            paths: sources,
            library,
            tags,
        } => {
            let session = Session::load(&paths)?;
            let options = BackupOptions {
                paths: sources,
                library,
                tags,
                progress: !json && std::io::stderr().is_terminal(),
            };
            let summary = backup::run(&session, &options)?;
            for warning in &summary.warnings {
                eprintln!("warning: {}", shown(warning));
            }
            if json {
                print_json(&summary);
            } else {
                println!(
                    "Files: {} new, {} changed, {} unmodified; {} directories\n\
                     Read {}, uploaded {} ({} chunks) in {:.1}s\n\
                     Snapshot {} saved",
                    summary.files_new,
                    summary.files_changed,
                    summary.files_unmodified,
                    summary.dirs,
                    format_size(summary.bytes_read),
                    format_size(summary.bytes_uploaded),
                    summary.chunks_uploaded,
                    summary.duration_secs,
                    summary.snapshot.map(|id| id.short()).unwrap_or_default(),
                );
            }
            if !summary.warnings.is_empty() {
                return Ok(ExitCode::from(3));
            }
        }
        Command::Snapshots { library } => {
            let session = Session::load(&paths)?;
            let open = session.open_library(&library)?;
            let store = Store::new(&session.remote, &open);
            let list = snapshots::list(&store)?;
            if json {
                print_json(&list);
            } else if list.is_empty() {
                println!("No snapshots yet in `{library}`; run `ibackup backup PATH`.");
            } else {
                println!(
                    "{:<10} {:<22} {:<24} {:<16} {:>10}  PATHS",
                    "ID", "TIME", "AUTHOR", "HOST", "SIZE"
                );
                // Author, host and paths are what any writer of the library put there.
                for s in &list {
                    println!(
                        "{:<10} {:<22} {:<24} {:<16} {:>10}  {}{}",
                        s.short_id,
                        s.time,
                        shown(&s.author),
                        shown(&s.host),
                        format_size(s.summary.bytes),
                        shown(&s.paths.join(", ")),
                        if s.latest { "  (latest)" } else { "" }
                    );
                }
            }
        }
        Command::Restore {
            snapshot,
            target,
            library,
        } => {
            let session = Session::load(&paths)?;
            let options = RestoreOptions {
                spec: snapshot,
                target,
                library,
            };
            let summary = restore::run(&session, &options)?;
            for warning in &summary.warnings {
                eprintln!("warning: {}", shown(warning));
            }
            if json {
                print_json(&summary);
            } else {
                let specials = match summary.specials {
                    0 => String::new(),
                    n => format!(", {n} FIFOs, sockets or devices"),
                };
                println!(
                    "Restored {} files, {} directories, {} symlinks{specials} ({}) in {:.1}s",
                    summary.files,
                    summary.dirs,
                    summary.symlinks,
                    format_size(summary.bytes),
                    summary.duration_secs
                );
            }
            if !summary.warnings.is_empty() {
                return Ok(ExitCode::from(3));
            }
        }
        Command::Mount(options) if options.install_unit => {
            let (path, name) = crate::mount::install_unit(&paths, &options)?;
            if json {
                print_json(&serde_json::json!({ "unit": path, "name": name }));
            } else {
                println!("Wrote {}", path.display());
                println!("Turn it on (mounts now and at every login):");
                println!(
                    "  systemctl --user daemon-reload && systemctl --user enable --now {name}"
                );
            }
        }
        Command::Mount(options) => {
            let mountpoint = crate::mount::mount(&paths, &options)?;
            if !options.foreground {
                if json {
                    print_json(&serde_json::json!({ "mounted": mountpoint }));
                } else {
                    println!(
                        "Mounted at {}; `ibackup umount` ends it.",
                        mountpoint.display()
                    );
                }
            }
        }
        Command::Umount {
            mountpoint,
            no_wait,
        } => {
            let progress = !json && std::io::stderr().is_terminal();
            let record = crate::mount::umount(&paths, mountpoint.as_deref(), no_wait, progress)?;
            if json {
                print_json(&record);
            } else if record.uploads.pending_operations > 0 {
                println!(
                    "Unmounted {}; {} ({}) stay queued and upload at the next mount.",
                    record.mountpoint.display(),
                    count(record.uploads.pending_files, "file"),
                    format_size(record.uploads.pending_bytes)
                );
            } else {
                println!(
                    "Unmounted {}; all changes are uploaded.",
                    record.mountpoint.display()
                );
            }
        }
        Command::Status => {
            let mounts = crate::mount::status(&paths);
            // Works without a session or the server; what the server says of shares is
            // added when it can be asked.
            let queued = crate::mount::queued(&paths);
            let warnings = match Session::load(&paths) {
                Ok(session) => crate::sharing::roster_warnings(&session)
                    .unwrap_or_else(|e| vec![format!("the server could not be asked: {e}")]),
                Err(_) => Vec::new(),
            };
            if !json {
                for warning in &warnings {
                    eprintln!("warning: {}", shown(warning));
                }
            }
            if json {
                print_json(&serde_json::json!({
                    "mounts": mounts,
                    "queued": queued,
                    "warnings": warnings,
                }));
            } else if mounts.is_empty() {
                println!("Nothing mounted.");
                if let Some(queued) = &queued {
                    println!(
                        "{} ({}, {}) queued for upload by the next `ibackup mount`",
                        count(queued.pending_operations, "change"),
                        count(queued.pending_files, "file"),
                        format_size(queued.pending_bytes)
                    );
                }
            } else {
                for m in &mounts {
                    println!(
                        "{}: {} ({}) pending upload{}",
                        m.mountpoint.display(),
                        count(m.uploads.pending_files, "file"),
                        format_size(m.uploads.pending_bytes),
                        m.uploads
                            .last_error
                            .as_ref()
                            .map(|e| format!("; last error: {e}"))
                            .unwrap_or_default()
                    );
                    if m.passthrough {
                        println!("  writes go straight to local disk (FUSE passthrough)");
                    }
                    for conflict in &m.uploads.conflicts {
                        println!("  conflict kept as: {conflict}");
                    }
                    for kept in &m.uploads.set_aside {
                        println!(
                            "  not uploaded (the library is no longer shared with you), kept \
                             in: {kept}"
                        );
                    }
                }
            }
        }
        Command::Account { command } => self::account::run(&paths, json, command)?,
        Command::Feedback { rating, message } => {
            self::account::feedback(&paths, json, rating, message)?
        }
        Command::Library { command } => share::library(&Session::load(&paths)?, json, command)?,
        Command::Share { command } => share::share(&Session::load(&paths)?, json, command)?,
        Command::Contact { command } => share::contact(&Session::load(&paths)?, json, command)?,
        Command::Forget {
            snapshots,
            library,
            dry_run,
        } => {
            let session = Session::load(&paths)?;
            let done = crate::retention::forget(&session, &library, &snapshots, dry_run)?;
            if json {
                print_json(&done);
            } else {
                if !done.decisions.is_empty() {
                    println!("{:<10} {:<22} {:<24} {:<6} WHY", "ID", "TIME", "AUTHOR", "");
                    for d in &done.decisions {
                        println!(
                            "{:<10} {:<22} {:<24} {:<6} {}",
                            d.id,
                            d.time,
                            d.author,
                            if d.keep { "keep" } else { "forget" },
                            if d.keep {
                                d.reasons.join(", ")
                            } else {
                                "no rule keeps it".into()
                            }
                        );
                    }
                }
                println!(
                    "{} {} of `{}`{}",
                    if dry_run { "Would forget" } else { "Forgot" },
                    count(done.forgotten, "snapshot"),
                    done.library,
                    if dry_run || done.forgotten == 0 {
                        ".".to_owned()
                    } else {
                        "; the server frees their space at its next collection.".to_owned()
                    }
                );
            }
        }
        Command::Check {
            library,
            read_data,
            read_data_subset,
        } => {
            let session = Session::load(&paths)?;
            let share = if read_data {
                Some(1.0)
            } else {
                read_data_subset
            };
            let report = crate::check::run(&session, &library, share)?;
            if json {
                print_json(&report);
            } else {
                println!(
                    "Checked `{}`: {}, {}, {} ({} read, {})",
                    report.library,
                    count(report.snapshots, "snapshot"),
                    count(report.trees, "tree"),
                    count(report.chunks, "chunk"),
                    report.chunks_read,
                    format_size(report.bytes_read)
                );
                for d in &report.damage {
                    println!(
                        "DAMAGED: snapshot {} {}: object {}: {}",
                        d.snapshot, d.path, d.object, d.problem
                    );
                }
                if report.damage.is_empty() {
                    println!("No errors were found.");
                }
            }
            if !report.damage.is_empty() {
                return Ok(ExitCode::FAILURE);
            }
        }
        Command::Link { command } => share::link(&Session::load(&paths)?, json, command)?,
        Command::Get {
            url,
            target,
            password_stdin,
        } => {
            let link = crate::links::parse(&url)?;
            let password = if password_stdin {
                let mut line = String::new();
                std::io::stdin()
                    .read_line(&mut line)
                    .map_err(ClientError::io("standard input"))?;
                Some(zeroize::Zeroizing::new(
                    line.trim_end_matches(['\r', '\n']).to_owned(),
                ))
            } else {
                std::env::var("IBACKUP_LINK_PASSWORD")
                    .ok()
                    .map(zeroize::Zeroizing::new)
            };
            let target = target.unwrap_or_else(|| crate::links::default_target(&link));
            let summary = crate::links::get(&link, &target, password)?;
            for warning in &summary.warnings {
                eprintln!("warning: {}", shown(warning));
            }
            if json {
                print_json(&summary);
            } else {
                println!(
                    "Downloaded {} files, {} directories ({}) into {}",
                    summary.files,
                    summary.dirs,
                    format_size(summary.bytes),
                    target.display()
                );
            }
            if !summary.warnings.is_empty() {
                return Ok(ExitCode::from(3));
            }
        }
    }
    Ok(ExitCode::SUCCESS)
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
