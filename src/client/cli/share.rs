//! `ibackup library ...`, `ibackup share ...` and `ibackup contact ...`: definitions and how
//! results are shown.

use clap::Subcommand;
use serde::Serialize;

use super::print_json;
use crate::api::types::Permission;
use crate::session::{Listed, Session};
use crate::units::format_size;
use crate::{links, sharing, ClientError, Result};

#[derive(Subcommand)]
pub enum LibraryCommand {
    /// Your libraries and those shared with you (`NAME@OWNER`).
    List,
    /// Create a library.
    Create { name: String },
    /// Rename a library you own (names are encrypted: the server never sees them).
    Rename { old: String, new: String },
    /// Show a library's retention policy, or change it with the --keep-* options.
    Policy {
        library: String,
        #[arg(long)]
        keep_last: Option<u32>,
        /// Keep every snapshot this close to the newest, e.g. 30d.
        #[arg(long, value_parser = humantime::parse_duration)]
        keep_within: Option<std::time::Duration>,
        #[arg(long)]
        keep_hourly: Option<u32>,
        #[arg(long)]
        keep_daily: Option<u32>,
        #[arg(long)]
        keep_weekly: Option<u32>,
        #[arg(long)]
        keep_monthly: Option<u32>,
        #[arg(long)]
        keep_yearly: Option<u32>,
        /// Always keep snapshots with this tag (repeatable; replaces the list).
        #[arg(long = "keep-tag")]
        keep_tags: Vec<String>,
    },
    /// Delete a library you own, for everyone it is shared with.
    Delete {
        name: String,
        /// The library's name again, to confirm without being asked.
        #[arg(long)]
        confirm: Option<String>,
    },
    /// Take the library's state as the server shows it now, after this computer refused
    /// it as older than what it had seen (a server restored from a backup).
    AcceptRollback { name: String },
}

#[derive(Subcommand)]
pub enum ShareCommand {
    /// Share a library you own with another account.
    Add {
        library: String,
        email: String,
        /// Members can read, not change.
        #[arg(
            long,
            conflicts_with = "read_write",
            required_unless_present = "read_write"
        )]
        read: bool,
        /// Members can read and change.
        #[arg(long)]
        read_write: bool,
        /// The member's key fingerprint as they read it to you; the share is refused if
        /// the server's key for them does not match.
        #[arg(long)]
        fingerprint: Option<String>,
        /// Share with a key seen for the first time without asking: its fingerprint is
        /// printed (on standard error) for you to compare later. Without it, a terminal
        /// asks first and a script must give --fingerprint.
        #[arg(long)]
        yes: bool,
    },
    /// What you share and what is shared with you, with permissions.
    List { library: Option<String> },
    /// Stop sharing with someone; the library's key is rotated in the same step.
    Remove { library: String, email: String },
    /// Leave a library shared with you (`NAME@OWNER`).
    Leave { library: String },
}

#[derive(Subcommand)]
pub enum LinkCommand {
    /// Make a link to a folder of a library you own (LIBRARY or LIBRARY:PATH); prints the
    /// URL to send. Its key is in the part after `#`, which the server never sees.
    Create {
        spec: String,
        /// A snapshot id or prefix (default: the newest).
        #[arg(long)]
        snapshot: Option<String>,
        /// End the link after this long, e.g. 7d, 12h.
        #[arg(long, value_parser = humantime::parse_duration)]
        expires: Option<std::time::Duration>,
        /// Ask visitors for a password (from IBACKUP_LINK_PASSWORD, or asked).
        #[arg(long)]
        password: bool,
        /// Always show the newest snapshot's folder (re-pointed at each of your commits).
        #[arg(long)]
        follow: bool,
    },
    /// Your links and whether each is active, expired or revoked.
    List,
    /// End a link at once (by id or unique prefix).
    Revoke { id: String },
}

#[derive(Subcommand)]
pub enum ContactCommand {
    /// The key fingerprint this computer pinned for EMAIL.
    Show { email: String },
    /// Pin EMAIL's key after comparing its fingerprint with them out of band.
    Verify { email: String, fingerprint: String },
}

#[derive(Serialize)]
struct LibraryRow {
    id: String,
    name: Option<String>,
    display: Option<String>,
    owner: String,
    permission: Permission,
    stored_bytes: u64,
    epoch: u32,
    refused: Option<String>,
}

pub fn library(session: &Session, json: bool, command: LibraryCommand) -> Result<()> {
    match command {
        LibraryCommand::List => {
            let rows: Vec<LibraryRow> = session
                .list()?
                .into_iter()
                .map(|listed| match listed {
                    Listed::Open(l) => LibraryRow {
                        display: Some(l.display()),
                        name: Some(l.name),
                        id: l.info.id,
                        owner: l.info.owner_email,
                        permission: l.info.permission,
                        stored_bytes: l.info.stored_bytes,
                        epoch: l.info.epoch,
                        refused: None,
                    },
                    Listed::Refused { info, reason } => LibraryRow {
                        id: info.id,
                        name: None,
                        display: None,
                        owner: info.owner_email,
                        permission: info.permission,
                        stored_bytes: info.stored_bytes,
                        epoch: info.epoch,
                        refused: Some(reason),
                    },
                })
                .collect();
            if json {
                print_json(&rows);
                return Ok(());
            }
            println!("{:<40} {:<12} {:>10}", "NAME", "ACCESS", "STORED");
            for row in &rows {
                match (&row.display, &row.refused) {
                    (Some(display), _) => println!(
                        "{:<40} {:<12} {:>10}",
                        display,
                        row.permission.as_str(),
                        format_size(row.stored_bytes)
                    ),
                    (None, Some(reason)) => eprintln!("ibackup: {reason}"),
                    (None, None) => {}
                }
            }
        }
        LibraryCommand::Create { name } => {
            let library = session.create_library(&name)?;
            if json {
                print_json(&serde_json::json!({ "id": library.info.id, "name": library.name }));
            } else {
                println!("Library `{}` created.", library.name);
            }
        }
        LibraryCommand::Policy {
            library,
            keep_last,
            keep_within,
            keep_hourly,
            keep_daily,
            keep_weekly,
            keep_monthly,
            keep_yearly,
            keep_tags,
        } => {
            let change = crate::retention::PolicyChange {
                keep_last,
                keep_within,
                keep_hourly,
                keep_daily,
                keep_weekly,
                keep_monthly,
                keep_yearly,
                keep_tags: (!keep_tags.is_empty()).then_some(keep_tags),
            };
            let view = crate::retention::policy(session, &library, change)?;
            if json {
                print_json(&view);
            } else {
                println!(
                    "`{}` keeps the last {}, hourly {}, daily {}, weekly {}, monthly {}, \
                     yearly {}{}{}",
                    view.library,
                    view.keep_last,
                    view.keep_hourly,
                    view.keep_daily,
                    view.keep_weekly,
                    view.keep_monthly,
                    view.keep_yearly,
                    view.keep_within
                        .as_ref()
                        .map(|w| format!(", everything within {w} of the newest"))
                        .unwrap_or_default(),
                    if view.keep_tags.is_empty() {
                        String::new()
                    } else {
                        format!(", and snapshots tagged {}", view.keep_tags.join(", "))
                    }
                );
            }
        }
        LibraryCommand::Rename { old, new } => {
            sharing::rename(session, &old, &new)?;
            if json {
                print_json(&serde_json::json!({ "renamed": old, "to": new.trim() }));
            } else {
                println!("Library `{old}` is now `{}`.", new.trim());
            }
        }
        LibraryCommand::Delete { name, confirm } => {
            sharing::delete(session, &name, confirm.as_deref())?;
            if json {
                print_json(&serde_json::json!({ "deleted": name }));
            } else {
                println!("Library `{name}` deleted, with all its snapshots.");
            }
        }
        LibraryCommand::AcceptRollback { name } => {
            let library = session.open_library(&name)?;
            let forgotten = match session.remote.seen() {
                Some(seen) => seen.forget(&library.info.id)?,
                None => false,
            };
            let store = crate::store::Store::new(&session.remote, &library);
            let head = crate::repo::Repo::head(&store)?;
            if json {
                print_json(
                    &serde_json::json!({ "library": name, "head": head, "forgotten": forgotten }),
                );
            } else {
                println!(
                    "Library `{name}` is taken as the server shows it now (head {}).",
                    head.map(|h| h.short()).unwrap_or_else(|| "none".into())
                );
            }
        }
    }
    Ok(())
}

pub fn share(session: &Session, json: bool, command: ShareCommand) -> Result<()> {
    match command {
        ShareCommand::Add {
            library,
            email,
            read: _,
            read_write,
            fingerprint,
            yes,
        } => {
            let permission = if read_write {
                Permission::ReadWrite
            } else {
                Permission::Read
            };
            // A key seen for the first time is shown before anything is granted to it.
            let confirm = |email: &str, presented: &str| -> crate::Result<()> {
                if yes {
                    eprintln!("{email}'s key fingerprint is {presented}; compare it with them.");
                    return Ok(());
                }
                if !std::io::IsTerminal::is_terminal(&std::io::stdin()) {
                    return Err(ClientError::Usage(format!(
                        "{email}'s key fingerprint is {presented}. Compare it with what \
                         `ibackup account fingerprint` shows them, then run this again with \
                         `--fingerprint {}` (or `--yes` to share with it unchecked). Nothing \
                         was shared.",
                        presented.replace(' ', "")
                    )));
                }
                let answer = crate::account::password::prompt_line(&format!(
                    "{email}'s key fingerprint is\n    {presented}\nIt should match what \
                     `ibackup account fingerprint` shows them. Share with this key? [y/N] "
                ))?;
                match answer.trim() {
                    "y" | "Y" | "yes" => Ok(()),
                    _ => Err(ClientError::Usage("nothing was shared".into())),
                }
            };
            let shared = sharing::add(
                session,
                &library,
                &email,
                permission,
                fingerprint.as_deref(),
                &confirm,
            )?;
            if json {
                print_json(&shared);
                return Ok(());
            }
            println!(
                "Shared `{}` with {} ({}).",
                shared.library,
                shared.email,
                shared.permission.as_str()
            );
            if shared.newly_pinned {
                println!(
                    "{}'s key fingerprint is\n    {}\nand is now pinned on this computer. \
                     Compare it with what `ibackup account fingerprint` shows them; if it \
                     differs, remove the share.",
                    shared.email, shared.fingerprint
                );
            }
        }
        ShareCommand::List { library } => {
            let listings = sharing::list(session, library.as_deref())?;
            if json {
                print_json(&listings);
                return Ok(());
            }
            println!("{:<40} {:<32} PERMISSION", "LIBRARY", "MEMBER");
            for listing in &listings {
                if listing.permission != Permission::Owner {
                    println!(
                        "{:<40} {:<32} {} (shared with you)",
                        listing.library,
                        "you",
                        listing.permission.as_str()
                    );
                }
                for member in &listing.members {
                    println!(
                        "{:<40} {:<32} {}{}",
                        listing.library,
                        super::shown(&member.email),
                        member.permission.as_str(),
                        match member.added_by_you {
                            Some(false) =>
                                "  NOT ADDED BY YOU: given no key; refused at the \
                                            next new key (`ibackup share remove` now)",
                            _ => "",
                        }
                    );
                }
            }
        }
        ShareCommand::Remove { library, email } => {
            let epoch = sharing::remove(session, &library, &email)?;
            if json {
                print_json(
                    &serde_json::json!({ "library": library, "removed": email, "epoch": epoch }),
                );
            } else {
                println!(
                    "{email} can no longer reach `{library}`. Its key was rotated (epoch \
                     {epoch}): what is written from now on is unreadable with any key they \
                     held. What they could read before was not re-encrypted; they may have \
                     kept copies."
                );
            }
        }
        ShareCommand::Leave { library } => {
            sharing::leave(session, &library)?;
            if json {
                print_json(&serde_json::json!({ "left": library }));
            } else {
                println!("You left `{library}`.");
            }
        }
    }
    Ok(())
}

pub fn link(session: &Session, json: bool, command: LinkCommand) -> Result<()> {
    match command {
        LinkCommand::Create {
            spec,
            snapshot,
            expires,
            password,
            follow,
        } => {
            let password = if password {
                Some(crate::account::password::read_secret_line(
                    "IBACKUP_LINK_PASSWORD",
                    "Password visitors must give: ",
                )?)
            } else {
                None
            };
            let options = links::CreateOptions {
                spec,
                snapshot,
                expires_in: expires,
                password,
                follow,
            };
            let created = links::create(session, &options)?;
            if json {
                print_json(&created);
            } else {
                println!("{}", created.url);
                eprintln!(
                    "Link {} to `{}:{}`{}{}. Anyone with the URL can read that folder; the \
                     part after `#` is its key and never reaches the server.",
                    &created.id[..8],
                    created.library,
                    created.path,
                    if created.follow {
                        ", following the newest snapshot"
                    } else {
                        ""
                    },
                    created
                        .expires_at
                        .map(|at| format!(", until {}", super::account::date(at)))
                        .unwrap_or_default()
                );
            }
        }
        LinkCommand::List => {
            let views = links::list(session)?;
            if json {
                print_json(&views);
                return Ok(());
            }
            println!(
                "{:<10} {:<8} {:<30} {:<10} {:<19} PASSWORD",
                "ID", "STATE", "FOLDER", "SNAPSHOT", "EXPIRES"
            );
            for view in &views {
                println!(
                    "{:<10} {:<8} {:<30} {:<10} {:<19} {}",
                    &view.id[..8],
                    view.state,
                    format!("{}:{}", view.library, view.path),
                    view.snapshot.as_deref().unwrap_or("newest"),
                    view.expires_at
                        .map(super::account::date)
                        .unwrap_or_else(|| "never".into()),
                    if view.password { "yes" } else { "no" }
                );
            }
        }
        LinkCommand::Revoke { id } => {
            let id = links::revoke(session, &id)?;
            if json {
                print_json(&serde_json::json!({ "revoked": id }));
            } else {
                println!("Link {} revoked; it no longer opens.", &id[..8]);
            }
        }
    }
    Ok(())
}

pub fn contact(session: &Session, json: bool, command: ContactCommand) -> Result<()> {
    match command {
        ContactCommand::Show { email } => {
            let pinned = sharing::contact_show(session, &email)?;
            if json {
                print_json(&serde_json::json!({ "email": email, "fingerprint": pinned }));
                return Ok(());
            }
            match pinned {
                Some(fingerprint) => println!("{email}: {fingerprint}"),
                None => {
                    return Err(ClientError::Usage(format!(
                        "no key is pinned for {email} on this computer; it is pinned when you \
                         share with them, or with `ibackup contact verify {email} FINGERPRINT`"
                    )))
                }
            }
        }
        ContactCommand::Verify { email, fingerprint } => {
            let pinned = sharing::contact_verify(session, &email, &fingerprint)?;
            if json {
                print_json(&serde_json::json!({ "email": email, "fingerprint": pinned }));
            } else {
                println!("Pinned {email}: {pinned}");
            }
        }
    }
    Ok(())
}
